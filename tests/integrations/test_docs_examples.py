"""The Python examples in docs/ run as written (each needs its framework installed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _blocks(page: str) -> list[str]:
    return FENCE.findall((DOCS / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("page", "module"), [
    ("llamaindex.md", "llama_index.core"),
    ("langchain.md", "langchain_core"),
])
def test_doc_example_runs(page: str, module: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip(module, reason=f"{page} needs {module}")
    blocks = _blocks(page)
    assert len(blocks) == 1, f"{page}: expected one python example"
    assert len(blocks[0].splitlines()) <= 30, f"{page}: keep the example short"
    exec(compile(blocks[0], f"docs/{page}", "exec"), {"__name__": "__doc_example__"})
    assert re.search(r"moon\[\d+:\d+\] level=\d+", capsys.readouterr().out)
