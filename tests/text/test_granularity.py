"""Tests for mograg.text.levels: the level tree built over sentence atoms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mograg.errors import MogragError
from mograg.text.levels import (
    ATOM_DTYPE,
    CHUNK_DTYPE,
    DEFAULT_LEVELS,
    build_levels,
    children_ranges,
    parse_levels,
)


def make_atoms(docs: list[int], tokens: list[int]) -> np.ndarray:
    """Atoms with the given document ids and token counts; 10 characters per atom."""
    atoms = np.zeros(len(tokens), dtype=ATOM_DTYPE)
    atoms["doc"] = docs
    atoms["n_tokens"] = tokens
    start = 0
    prev = None
    for i, d in enumerate(docs):
        if d != prev:
            start = 0
            prev = d
        atoms[i]["start"] = start
        atoms[i]["end"] = start + 9
        start += 10
    return atoms


def check_tree(atoms: np.ndarray, sizes: list[int], levels: list[np.ndarray]) -> None:
    """Assert every structural property of the level tree."""
    assert len(levels) == len(sizes)
    n_atoms = len(atoms)
    atom_tok = atoms["n_tokens"].astype(np.int64)
    prev_units: tuple[np.ndarray, np.ndarray] | None = None  # (first, last) of level below
    for size, lv in zip(sizes, levels, strict=True):
        assert lv.dtype == CHUNK_DTYPE
        if n_atoms == 0:
            assert len(lv) == 0
            continue
        first, last = lv["first_atom"], lv["last_atom"]
        # chunks tile the atoms in order, without gaps or overlaps
        assert first[0] == 0 and last[-1] == n_atoms - 1
        assert np.all(first <= last)
        assert np.all(first[1:] == last[:-1] + 1)
        for c in range(len(lv)):
            a, b = int(first[c]), int(last[c])
            # never mixes documents
            assert len(set(atoms["doc"][a : b + 1].tolist())) == 1
            # n_tokens is the sum of its atoms
            assert int(lv[c]["n_tokens"]) == int(atom_tok[a : b + 1].sum())
        # units this level packs: atoms at level 0, chunks of the level below otherwise
        if prev_units is None:
            u_first = np.arange(n_atoms)
            u_last = np.arange(n_atoms)
        else:
            u_first, u_last = prev_units
        u_tok = np.array([atom_tok[a : b + 1].sum() for a, b in zip(u_first, u_last, strict=True)])
        u_doc = atoms["doc"][u_first]
        for c in range(len(lv)):
            units = np.flatnonzero((u_first >= first[c]) & (u_last <= last[c]))
            # chunk boundaries fall on unit boundaries
            assert u_first[units[0]] == first[c] and u_last[units[-1]] == last[c]
            # no chunk exceeds its size unless it is one over-size unit
            if lv[c]["n_tokens"] > size:
                assert len(units) == 1
            # greedy packing: the next unit of the same document would not have fitted
            nxt = units[-1] + 1
            if nxt < len(u_first) and u_doc[nxt] == u_doc[units[-1]]:
                assert int(lv[c]["n_tokens"]) + int(u_tok[nxt]) > size
        prev_units = (first, last)
    # parent links
    for j in range(len(levels) - 1):
        child, parent = levels[j], levels[j + 1]
        p = child["parent"]
        assert np.all(p >= 0) and np.all(p < len(parent))
        # parents are consecutive runs of children: non-decreasing, no parent skipped
        assert np.all(np.diff(p) >= 0)
        if len(p):
            assert p[0] == 0 and p[-1] == len(parent) - 1
            assert np.all(np.diff(p) <= 1)
        # every chunk lies inside its parent
        assert np.all(parent["first_atom"][p] <= child["first_atom"])
        assert np.all(child["last_atom"] <= parent["last_atom"][p])
        # the parent is exactly the union of its children
        for c in range(len(parent)):
            kids = np.flatnonzero(p == c)
            assert child["first_atom"][kids[0]] == parent["first_atom"][c]
            assert child["last_atom"][kids[-1]] == parent["last_atom"][c]
            assert child["n_tokens"][kids].sum() == parent["n_tokens"][c]
    assert np.all(levels[-1]["parent"] == -1)
    # children_ranges agrees with the parent links
    ranges = children_ranges(levels)
    assert len(ranges) == len(levels) and len(ranges[0]) == 0
    for j in range(1, len(levels)):
        r = ranges[j]
        assert len(r) == len(levels[j]) + 1
        assert r[0] == 0 and r[-1] == len(levels[j - 1])
        for c in range(len(levels[j])):
            assert np.all(levels[j - 1]["parent"][r[c] : r[c + 1]] == c)
            assert r[c + 1] > r[c]  # every chunk has at least one child


def test_hand_made_single_document():
    atoms = make_atoms([0] * 6, [3, 3, 3, 3, 3, 3])
    levels = build_levels(atoms, [6, 12])
    check_tree(atoms, [6, 12], levels)
    assert levels[0][["first_atom", "last_atom"]].tolist() == [(0, 1), (2, 3), (4, 5)]
    assert levels[0]["n_tokens"].tolist() == [6, 6, 6]
    assert levels[0]["parent"].tolist() == [0, 0, 1]
    assert levels[1][["first_atom", "last_atom"]].tolist() == [(0, 3), (4, 5)]
    assert levels[1]["n_tokens"].tolist() == [12, 6]


def test_documents_are_never_mixed():
    # 2 tokens each: everything would fit one 100-token chunk but documents differ
    atoms = make_atoms([0, 0, 1, 1, 1, 4], [2, 2, 2, 2, 2, 2])
    levels = build_levels(atoms, [8, 100])
    check_tree(atoms, [8, 100], levels)
    assert levels[0][["first_atom", "last_atom"]].tolist() == [(0, 1), (2, 4), (5, 5)]
    assert levels[1][["first_atom", "last_atom"]].tolist() == [(0, 1), (2, 4), (5, 5)]


def test_oversize_unit_stands_alone():
    atoms = make_atoms([0, 0, 0, 0], [2, 50, 2, 2])
    levels = build_levels(atoms, [8, 16, 32])
    check_tree(atoms, [8, 16, 32], levels)
    assert levels[0][["first_atom", "last_atom"]].tolist() == [(0, 0), (1, 1), (2, 3)]
    assert levels[0]["n_tokens"].tolist() == [2, 50, 4]
    # the over-size chunk is still alone at every level
    for lv in levels:
        assert (1, 1) in lv[["first_atom", "last_atom"]].tolist()


def test_empty_atoms():
    levels = build_levels(np.zeros(0, dtype=ATOM_DTYPE), [8, 16])
    assert [len(lv) for lv in levels] == [0, 0]
    assert [len(r) for r in children_ranges(levels)] == [0, 1]


def test_single_level():
    atoms = make_atoms([0, 0, 0], [5, 5, 5])
    levels = build_levels(atoms, [10])
    check_tree(atoms, [10], levels)
    assert levels[0]["parent"].tolist() == [-1, -1]


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 80)), min_size=0, max_size=60
    ),
    base=st.integers(4, 40),
    n_levels=st.integers(1, 5),
    growth=st.lists(st.integers(1, 40), min_size=4, max_size=4),
)
def test_tree_properties_random(data, base, n_levels, growth):
    # document ids: non-decreasing with random jumps (doc boundaries anywhere)
    docs, doc = [], 0
    for step, _ in data:
        doc += 1 if step == 0 else 0
        docs.append(doc)
    tokens = [t for _, t in data]
    sizes = [base]
    for g in growth[: n_levels - 1]:
        sizes.append(sizes[-1] + g)
    atoms = make_atoms(docs, tokens)
    check_tree(atoms, sizes, build_levels(atoms, sizes))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("32,64,128", (32, 64, 128)),
        (" 32, 64 ,128 ", (32, 64, 128)),
        ("16", (16,)),
        ([8, 16], (8, 16)),
        ((4,), (4,)),
        ("32,64,", (32, 64)),
    ],
)
def test_parse_levels_ok(value, expected):
    assert parse_levels(value) == expected


def test_parse_levels_default_is_valid():
    assert parse_levels(DEFAULT_LEVELS) == DEFAULT_LEVELS


@pytest.mark.parametrize(
    "value",
    ["", ",", "abc", "32,x", "32.5,64", "3,8", "0,8", "-8,8", "64,32", "32,32", [], [64, 32],
     [2, 4]],
)
def test_parse_levels_errors(value):
    with pytest.raises(MogragError) as err:
        parse_levels(value)
    msg = str(err.value)
    assert "\n" not in msg
    assert "invalid levels" in msg and "32,64" in msg


def test_children_ranges_hand_made():
    atoms = make_atoms([0] * 8, [4] * 8)
    levels = build_levels(atoms, [8, 16, 32])
    r = children_ranges(levels)
    assert r[1].tolist() == [0, 2, 4]
    assert r[2].tolist() == [0, 2]
