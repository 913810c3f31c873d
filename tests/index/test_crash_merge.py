"""SIGKILL of a writer while it merges segments: the index stays at one committed
generation, the next write completes, and the killed writer's leftovers are collected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clirun import run
from corpus import field_notes
from mograg.index.commit import MAX_SEGMENTS
from mograg.index.core import Index
from mograg.types import Document

SRC = Path(__file__).resolve().parents[2] / "src"


def _segments(ix: Path) -> set[str]:
    return {p.name for p in (ix / "segments").iterdir()}


def test_sigkill_during_segment_merge(tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    index = Index.create(ix)
    for i in range(MAX_SEGMENTS):  # one segment per write: the next write merges
        index.add([Document(f"d{i}", field_notes(i, 40))])
    assert len(index.manifest["segments"]) == MAX_SEGMENTS
    gen = index.manifest["generation"]
    before = _segments(ix)
    src = tmp_path / "new.txt"
    src.write_text(field_notes(99, 40), encoding="utf-8")
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mograg.cli import main; main()",
         "index", str(src), "--index", str(ix), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _segments(ix) - before:  # the merged segment is being written
                break
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    info = json.loads(run("info", "--index", ix, "--json")[1])
    assert proc.returncode == -signal.SIGKILL, "the merge finished before it could be killed"
    if info["generation"] == gen:  # killed before the manifest swap: the old index
        assert info["documents"] == MAX_SEGMENTS
        assert len(Index.open(ix).manifest["segments"]) == MAX_SEGMENTS
    else:  # the commit landed before the kill
        assert info["generation"] == gen + 1
        assert info["documents"] == MAX_SEGMENTS + 1
    code, out, err = run("search", "herons", "--index", ix, "--json")
    assert code == 0, err
    assert json.loads(out)["hits"]
    # a re-run completes and collects what the killed writer left behind
    code, _, err = run("index", src, "--index", ix, "--quiet")
    assert code == 0, err
    after = Index.open(ix)
    assert after.info()["documents"] == MAX_SEGMENTS + 1
    assert _segments(ix) == set(after.manifest["segments"])
    assert len(after.manifest["segments"]) <= MAX_SEGMENTS
