"""Shared output of the bench scripts: one JSON object on stdout, optionally saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], out: str | None) -> int:
    """Print ``result`` as JSON and, with ``out``, also write it there; return exit code 0."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return 0
