"""The CLI's top-level guard: an unexpected exception (a bug) is one line with a hint,
exit code 3; ``--debug`` / ``MOGRAG_DEBUG=1`` add the traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirun import run
from mograg.index.core import Index
from mograg.types import Document


@pytest.fixture()
def index_path(tmp_path: Path) -> Path:
    root = tmp_path / "ix"
    Index.create(root).add([Document("a", "Herons eat fish.")])
    return root


def _bug(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("division by zero\nsecond line")


def test_unexpected_error_is_one_line_with_a_hint(index_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Index, "info", _bug)  # stands for any bug below the CLI
    monkeypatch.delenv("MOGRAG_DEBUG", raising=False)
    code, out, err = run("info", "--index", index_path)
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected ZeroDivisionError: division by zero second line" in err
    assert "please report it" in err and "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(index_path: Path, monkeypatch, how: str) -> None:
    monkeypatch.setattr(Index, "info", _bug)
    if how == "env":
        monkeypatch.setenv("MOGRAG_DEBUG", "1")
        code, _out, err = run("info", "--index", index_path)
    else:
        monkeypatch.setenv("MOGRAG_DEBUG", "0")  # restored after the test (--debug sets it)
        code, _out, err = run("--debug", "info", "--index", index_path)
    assert code == 3
    assert "Traceback" in err and "_bug" in err and "please report it" in err


def test_max_file_mb_option(tmp_path: Path) -> None:
    src = tmp_path / "big.txt"
    src.write_text("Herons fish at dawn. " * 60_000, encoding="utf-8")  # 1.26 MB
    ix = tmp_path / "ix"
    code, _out, err = run("index", src, "--index", ix, "--max-file-mb", "1", "--quiet")
    assert code == 1 and "over the 1 MB limit per file" in err and "--max-file-mb" in err
    code, _out, err = run("index", src, "--index", ix, "--max-file-mb", "0", "--quiet")
    assert code == 2 and "positive" in err
    code, _out, err = run("index", src, "--index", ix, "--max-file-mb", "2", "--quiet")
    assert code == 0, err


def test_undecodable_index_path_is_one_line(tmp_path: Path) -> None:
    import os

    bad = tmp_path / os.fsdecode(b"ix\xff")
    code, _out, err = run("info", "--index", bad)
    assert code == 2 and err.count("\n") == 1
    assert "\\udcff" in err or "\\xff" in err
