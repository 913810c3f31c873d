"""serve.json: which recorded servers a CLI may talk to."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mograg.server.endpoint import (
    ENDPOINT,
    find_server,
    generator_fingerprint,
    new_endpoint,
    read_endpoint,
    remove_endpoint,
    write_endpoint,
)


def _endpoint(root: Path, host: str = "127.0.0.1"):
    return new_endpoint(root, host, 8123, private=False, max_budget=8192,
                        max_query_chars=2000, generator="g")


def test_live_loopback_server_of_this_directory_is_found(tmp_path: Path) -> None:
    ep = _endpoint(tmp_path)
    assert write_endpoint(tmp_path, ep)
    assert find_server(tmp_path) == ep
    assert _endpoint(tmp_path, "0.0.0.0").host == "127.0.0.1"  # wildcard: connect locally
    assert _endpoint(tmp_path, "::").base_url == "http://[::1]:8123"


@pytest.mark.parametrize("host", ["192.0.2.7", "example.org", "10.0.0.1"])
def test_only_loopback_servers_are_used(tmp_path: Path, host: str) -> None:
    write_endpoint(tmp_path, replace(_endpoint(tmp_path), host=host))
    assert find_server(tmp_path) is None  # the CLI may send MOGRAG_API_KEY: never off-host


def test_copied_index_or_dead_process_or_garbage_is_ignored(tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    ix.mkdir()
    write_endpoint(ix, _endpoint(ix))
    copy = tmp_path / "copy"
    shutil.copytree(ix, copy)
    assert find_server(copy) is None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    write_endpoint(ix, replace(_endpoint(ix), pid=int(done.stdout)))  # exited already
    assert find_server(ix) is None
    for junk in ("", "[]", "{}", json.dumps({"host": "127.0.0.1"}), "\xff"):
        (ix / ENDPOINT).write_text(junk)
        assert read_endpoint(ix) is None and find_server(ix) is None


def test_remove_leaves_another_servers_file(tmp_path: Path) -> None:
    mine, theirs = _endpoint(tmp_path), _endpoint(tmp_path)
    write_endpoint(tmp_path, theirs)
    remove_endpoint(tmp_path, mine)
    assert read_endpoint(tmp_path) == theirs
    remove_endpoint(tmp_path, theirs)
    assert not (tmp_path / ENDPOINT).exists()


def test_unwritable_directory_is_reported_not_raised(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    assert not write_endpoint(missing, _endpoint(tmp_path))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_generator_fingerprint_ignores_timeouts_only() -> None:
    base = {"kind": "openai", "model": "m", "timeout": 60.0, "retries": 2, "max_tokens": 256}
    assert generator_fingerprint(base) == generator_fingerprint({**base, "timeout": 5.0,
                                                                 "retries": 0})
    assert generator_fingerprint(base) != generator_fingerprint({**base, "model": "n"})
    assert generator_fingerprint(base) != generator_fingerprint({**base, "max_tokens": 9})
