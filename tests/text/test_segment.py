"""Tests for mograg.text.segment: sentence spans with character offsets."""

from __future__ import annotations

import nupunkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mograg.text.segment import split_sentences, split_with_counts
from mograg.text.tokens import count_tokens, token_char_offsets


def check_invariants(text: str, max_tokens: int) -> list[str]:
    """Assert every documented property; return the span texts."""
    spans, counts = split_with_counts(text, max_tokens)
    assert len(spans) == len(counts)
    covered = [False] * len(text)
    prev_end = 0
    for s, e in spans:
        assert prev_end <= s < e <= len(text)
        prev_end = e
        piece = text[s:e]
        assert not piece[0].isspace() and not piece[-1].isspace()
        for k in range(s, e):
            covered[k] = True
    for k, ch in enumerate(text):
        if not ch.isspace():
            assert covered[k], f"char {k} {ch!r} not covered"
    for (s, e), c in zip(spans, counts, strict=True):
        # over the cap only where no token boundary exists to cut at
        assert 0 <= c <= max_tokens or len(set(token_char_offsets(text[s:e]))) == 1, (s, e, c)
    assert counts == count_tokens([text[s:e] for s, e in spans])
    assert split_sentences(text, max_tokens) == spans
    return [text[s:e] for s, e in spans]


SENTENCES = [
    "Yes.",
    "Dr. Smith went to the U.S. in 1999.",
    "The quick brown fox jumps over the lazy dog!",
    "Is it raining?",
    "Ünïcode façade naïve café.",
    "日本語の文です。",
    "Emoji 😀🎉 here.",
    "supercalifragilisticexpialidocious" * 3,
    "e.g. this, i.e. that...",
    "- a list item",
    "# A heading",
    "1. first item",
    "| a | b |",
    "x\u200by\u00a0z\ttab.",
    "\x00\x01 control chars.",
]

piece = st.one_of(
    st.sampled_from(SENTENCES),
    st.text(min_size=0, max_size=40),
    st.text(alphabet="ab. \n!?-#|1", max_size=30),
)
separator = st.sampled_from([" ", "  ", "\n", "\n\n", "\r\n", "\n \n", "\t", "", "\n\n\n"])
texts = st.lists(st.tuples(piece, separator), max_size=25).map(
    lambda parts: "".join(p + s for p, s in parts)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, max_tokens=st.sampled_from([1, 2, 3, 5, 16, 64, 512]))
def test_properties(text: str, max_tokens: int) -> None:
    check_invariants(text, max_tokens)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300), max_tokens=st.integers(1, 8))
def test_properties_arbitrary_unicode(text: str, max_tokens: int) -> None:
    check_invariants(text, max_tokens)


def test_empty_and_whitespace() -> None:
    assert split_sentences("", 10) == []
    assert split_sentences("  \n\n\t ", 10) == []


def test_abbreviations_not_split() -> None:
    out = check_invariants("Dr. Smith went to the U.S. yesterday. He liked it.", 128)
    assert out == ["Dr. Smith went to the U.S. yesterday.", "He liked it."]


def test_repeated_sentences_have_distinct_offsets() -> None:
    text = "Yes. Yes. Yes. No."
    spans = split_sentences(text, 128)
    assert len(set(spans)) == len(spans)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


def test_blank_line_paragraphs_split() -> None:
    text = "First paragraph has no end mark\n\nSecond one starts here. It ends."
    out = check_invariants(text, 128)
    assert out[0] == "First paragraph has no end mark"
    assert out[1:] == ["Second one starts here.", "It ends."]


def test_markdown_blocks() -> None:
    text = "# Title\nIntro text.\n- one\n- two\n* three\n1. four\n| a | b |\n| c | d |"
    out = check_invariants(text, 128)
    assert out == [
        "# Title",
        "Intro text.",
        "- one",
        "- two",
        "* three",
        "1. four",
        "| a | b |",
        "| c | d |",
    ]


def test_single_newline_inside_paragraph_not_a_boundary() -> None:
    out = check_invariants("This sentence is\nwrapped over lines. Next.", 128)
    assert out == ["This sentence is\nwrapped over lines.", "Next."]


def test_unicode_offsets() -> None:
    text = "Héllo wörld. 😀 Yes it is. 日本語の文です。次の文。 Ünïcode!"
    out = check_invariants(text, 128)
    # Offsets are Python character offsets: the slices equal nupunkt's own sentences.
    expected = [text[a:b] for a, b in nupunkt.sent_spans(text) if text[a:b].strip()]
    assert [" ".join(o.split()) for o in out] == [" ".join(x.split()) for x in expected]
    assert out[0].startswith("Héllo wörld.")
    assert out[-1].endswith("Ünïcode!")


def test_crlf_and_nul() -> None:
    check_invariants("One.\r\nTwo.\r\n\r\nThree\x00four. Five.", 128)


def test_hard_cap_prefers_word_boundaries() -> None:
    words = " ".join(f"word{i}" for i in range(60)) + "."
    spans, counts = split_with_counts(words, 10)
    assert len(spans) > 1
    assert all(c <= 10 for c in counts)
    for s, e in spans:  # each piece starts and ends on a whole word
        assert s == 0 or words[s - 1] == " "
        assert e == len(words) or words[e] == " "
    check_invariants(words, 10)


def test_hard_cap_long_word_without_spaces() -> None:
    text = "abc" * 30 + "-" + "xyz" * 30  # punctuation but no spaces
    check_invariants(text, 3)
    check_invariants("互联网" * 50, 7)


def test_max_tokens_validated() -> None:
    with pytest.raises(ValueError):
        split_sentences("Hi.", 0)


def test_indivisible_character_over_the_cap_is_kept_whole() -> None:
    # found by hypothesis: one Hangul syllable is three WordPieces (jamo) on one character
    text = "슝 "
    assert count_tokens(["슝"]) == [3]
    for cap in (1, 2):
        assert split_with_counts(text, cap) == ([(0, 1)], [3])
        check_invariants(text, cap)
    # a cap it fits under behaves as before, and neighbours are still cut normally
    assert split_with_counts(text, 3) == ([(0, 1)], [3])
    mixed = "슝 ab cd ef"  # "ef" is two WordPieces: cut at the cap like any word
    spans, counts = split_with_counts(mixed, 1)
    assert [mixed[a:b] for a, b in spans] == ["슝", "ab", "cd", "e", "f"]
    assert counts == [3, 1, 1, 1, 1]
    check_invariants(mixed, 1)
