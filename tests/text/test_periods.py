"""Reporting periods as comparable keys, whatever the wording."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mograg.text.periods import asked_keys, date_value, period_keys

_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth"}


@given(q=st.integers(1, 4), year=st.integers(2000, 2069))
def test_every_wording_of_a_quarter_gives_the_same_key(q: int, year: int) -> None:
    yy = f"{year % 100:02d}"
    wordings = [f"Q{q} {year}", f"Q{q} FY{yy}", f"Q{q} FY '{yy}", f"Q{q} Fiscal {year}",
                f"the {_ORDINAL[q]} quarter of fiscal {year}", f"{_ORDINAL[q]} quarter {year}",
                f"{_ORDINAL[q].title()} Quarter Fiscal Year {year}"]
    for w in wordings:
        assert period_keys(f"Results for {w} were strong.") == {f"q{q}-{year}", f"y{year}"}, w
        assert asked_keys(f"What grew in {w}?") == {f"q{q}-{year}"}, w


def test_years_fiscal_or_bare_and_quarters_named_by_their_end() -> None:
    for text in ("fiscal year 2023", "fiscal 2023", "FY2023", "FY23", "in 2023"):
        assert asked_keys(f"What was the margin {text}?") == {"y2023"}, text
    # which fiscal quarter ends in March depends on the company: only the year is known
    assert period_keys("the quarter ended March 31, 2023") == {"y2023"}
    assert asked_keys("Between Q3 2021 and Q3 2023, how did cash change?") == {"q3-2021", "q3-2023"}
    # amounts and plain numbers are no years; a date is a date (not its year)
    assert asked_keys("Revenue of $2023 million and 12,2023 units") == set()
    assert asked_keys("What happened on 12/17/2007 and on December 8, 2007?") == {
        "d20071217", "d20071208"}
    assert period_keys("No periods here; 42 customers.") == set()


def test_dates_as_found_in_documents() -> None:
    assert date_value("May 26, 2022") == (2022, 5, 26)
    assert date_value("Sept. 8, 2022") == (2022, 9, 8)
    assert date_value("25 May 2022") == (2022, 5, 25)
    assert date_value("12/17/2007") == (2007, 12, 17)
    assert date_value("2022-05-25") == (2022, 5, 25)
    assert date_value("Smarch 3, 2022") is None


def test_year_first_quarters_as_in_titles() -> None:
    title = "Microsoft FY23 Third Quarter Earnings Conference Call"
    assert period_keys(title) == {"q3-2023", "y2023"}
    assert asked_keys("In the fiscal 2023 second quarter, what grew?") == {"q2-2023"}
