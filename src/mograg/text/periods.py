"""Reporting periods in text, as comparable keys.

Filings and calls name one quarter many ways: "Q3 2023", "Q3 FY23", "Q3 FY '23",
"Q3 Fiscal 2023", "third quarter of fiscal 2023", "the third quarter 2023". A year is
"fiscal 2023", "fiscal year 2023", "FY2023", "FY23" or, in a question, "2023". These
become keys ``q3-2023`` and ``y2023`` so a question's period can be compared with a
document's whatever wording either uses. Fiscal and calendar years are not told apart
(a document rarely says which calendar its title uses); a quarter's key implies its
year's (``q3-2023`` -> ``y2023``).
"""

from __future__ import annotations

import re

__all__ = [
    "DATE_RE",
    "PERIOD_RE",
    "PERIOD_WORDS",
    "YEAR_RE",
    "asked_keys",
    "date_key",
    "date_value",
    "period_keys",
]

MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_YEAR = r"(?:19|20)\d{2}"
_ORD = r"(?:first|second|third|fourth|1st|2nd|3rd|4th)"
# "Q1 2023", "Q3 FY23", "Q1 Fiscal 2023", "first quarter of fiscal 2023", "fiscal year
# 2023", "FY2023", "quarter ended March 31, 2023"
PERIOD_RE = re.compile(
    rf"\bQ[1-4]\s*(?:FY\s*'?|fiscal\s+(?:year\s+)?)?(?:{_YEAR}|'?\d{{2}})\b"
    rf"|\b{_ORD}\s+(?:fiscal\s+)?quarter\s+(?:of\s+)?(?:fiscal\s+(?:year\s+)?)?{_YEAR}\b"
    rf"|\b(?:quarter|year|period|(?:three|six|nine|twelve)\s+months)\s+ended\s+"
    rf"{MONTH}\s+\d{{1,2}},?\s+{_YEAR}\b"
    rf"|\bfiscal\s+(?:year\s+)?{_YEAR}\b|\bFY\s?'?(?:{_YEAR}|\d{{2}})\b",
    re.IGNORECASE,
)
# a calendar date: "May 25, 2022", "25 May 2022", "12/17/2007", "2022-05-25"
DATE_RE = re.compile(
    rf"\b{MONTH}\s+\d{{1,2}},?\s+{_YEAR}\b|\b\d{{1,2}}\s+{MONTH}\s+{_YEAR}\b"
    rf"|\b\d{{1,2}}/\d{{1,2}}/{_YEAR}\b|\b{_YEAR}-\d{{2}}-\d{{2}}\b"
)
# "FY23 Third Quarter", "fiscal 2023 second quarter": keys only (not in context lines)
_YEAR_FIRST_RE = re.compile(
    rf"\b(?:FY\s?'?(?:{_YEAR}|\d{{2}})|fiscal\s+(?:year\s+)?{_YEAR})\s+{_ORD}\s+quarter\b",
    re.IGNORECASE,
)
YEAR_RE = re.compile(rf"(?<![\d/.,$€£-]){_YEAR}(?![\d/-]|\.\d|,\d)")
_QUARTER_NO = {"q1": 1, "q2": 2, "q3": 3, "q4": 4, "first": 1, "second": 2, "third": 3,
               "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}
_QUARTER = re.compile(r"\b(q[1-4]|first|second|third|fourth|1st|2nd|3rd|4th)\b", re.I)
_YEAR_IN = re.compile(rf"({_YEAR})|(?:FY\s*'?|')(\d{{2}})\b|(?<=\s)(\d{{2}})$", re.I)
_ENDED = re.compile(r"\bended\b", re.I)
# words that only say "a period": left out when titles are compared word by word
_PERIOD_WORDS = (
    "q1 q2 q3 q4 fy fiscal year years quarter quarters quarterly annual first second third "
    "fourth 1st 2nd 3rd 4th half month months ended"
)
PERIOD_WORDS = frozenset(_PERIOD_WORDS.split())


def _year(s: str) -> int | None:
    m = _YEAR_IN.search(s)
    if m is None:
        return None
    if m.group(1):
        return int(m.group(1))
    yy = int(m.group(2) or m.group(3))
    return 2000 + yy if yy < 70 else 1900 + yy


def _keys_of(period: str) -> set[str]:
    """Keys of one period mention ("Q3 FY '23" -> {q3-2023, y2023})."""
    year = _year(period)
    if year is None:
        return set()
    keys = {f"y{year}"}
    q = _QUARTER.search(period)
    # "quarter ended March 31, 2023": which fiscal quarter that is depends on the company
    if q is not None and not _ENDED.search(period):
        keys.add(f"q{_QUARTER_NO[q.group(1).lower()]}-{year}")
    return keys


def period_keys(text: str) -> set[str]:
    """Keys of every period named in ``text`` (quarters and fiscal years)."""
    keys: set[str] = set()
    for m in _YEAR_FIRST_RE.finditer(text):
        keys |= _keys_of(m.group(0))
    for m in PERIOD_RE.finditer(_YEAR_FIRST_RE.sub(" ", text)):
        keys |= _keys_of(m.group(0))
    return keys


def date_key(date: str) -> str | None:
    """The key of a calendar date ("December 8, 2007", "12/08/2007" -> d20071208)."""
    when = date_value(date)
    return f"d{when[0]:04d}{when[1]:02d}{when[2]:02d}" if when else None


def asked_keys(text: str) -> set[str]:
    """The periods a question asks about, each as precisely as it names it: "Q3 FY23"
    -> {q3-2023} (not the whole year), "fiscal year 2023" or "in 2023" -> {y2023},
    "on December 8, 2007" -> {d20071208}."""
    keys: set[str] = set()
    for m in _YEAR_FIRST_RE.finditer(text):
        keys |= {k for k in _keys_of(m.group(0)) if k.startswith("q")}
    rest = _YEAR_FIRST_RE.sub(" ", text)
    for m in PERIOD_RE.finditer(rest):
        found = _keys_of(m.group(0))
        quarters = {k for k in found if k.startswith("q")}
        keys |= quarters or found
    rest = PERIOD_RE.sub(" ", rest)
    for m in DATE_RE.finditer(rest):
        key = date_key(m.group(0))
        if key:
            keys.add(key)
    rest = DATE_RE.sub(" ", rest)
    keys |= {f"y{m.group(0)}" for m in YEAR_RE.finditer(rest)}
    return keys


_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec"
_MONTH_NO = {m: i + 1 for i, m in enumerate(_MONTHS.split())}
_DMY = re.compile(r"(\d{1,2})\s+([A-Za-z]+)\.?\s+(\d{4})")
_MDY = re.compile(r"([A-Za-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})")
_NUMERIC = re.compile(r"(\d{1,4})[/-](\d{1,2})[/-](\d{1,4})")


def date_value(date: str) -> tuple[int, int, int] | None:
    """``(year, month, day)`` of a date as :mod:`mograg.text.context` finds them ("May 26,
    2022", "26 May 2022", "12/17/2007" (US order), "2022-05-26"), else None."""
    s = date.strip()
    if m := _MDY.fullmatch(s):
        mon, day, year = _MONTH_NO.get(m.group(1)[:3].lower()), m.group(2), m.group(3)
    elif m := _DMY.fullmatch(s):
        day, mon, year = m.group(1), _MONTH_NO.get(m.group(2)[:3].lower()), m.group(3)
    elif m := _NUMERIC.fullmatch(s):
        a, b, c = m.groups()
        year, mon, day = (a, int(b), c) if len(a) == 4 else (c, int(a), b)
    else:
        return None
    return (int(year), mon, int(day)) if mon else None
