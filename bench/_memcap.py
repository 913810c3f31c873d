"""Run a bench command inside a Linux memory cgroup capped at N MB (needs root).

A memory-mapped index counts its mapped page-cache pages in the server's RSS; under a
memory cap the kernel drops the cold ones instead of failing, and the cgroup also
charges the page cache its process reads. So "does a 1M-chunk server fit in 2 GB" is
answered by running it in a 2 GB cgroup after dropping the page cache (pages cached by
other processes are not charged to the group): its RSS then stays under the cap by
construction, and the latency shows what the cap costs.

cgroup v1 (``/sys/fs/cgroup/memory``) and v2 (``/sys/fs/cgroup`` with the memory
controller) are supported; swap is capped too where the kernel allows it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def _group_root() -> tuple[Path, int]:
    if (V2 / "cgroup.controllers").exists() and "memory" in (
            V2 / "cgroup.controllers").read_text().split():
        return V2, 2
    if (V1 / "memory.limit_in_bytes").exists():
        return V1, 1
    raise SystemExit("--memory-cap-mb needs a writable memory cgroup (Linux, root)")


def drop_page_cache() -> None:
    """Write back and drop clean page-cache pages, so the capped run reads its own."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def run_capped(cmd: list[str], env: dict[str, str], cap_mb: int,
               drop_caches: bool = True) -> tuple[subprocess.CompletedProcess[str],
                                                  dict[str, Any]]:
    """Run ``cmd`` in a fresh cgroup limited to ``cap_mb``; return the finished process
    and what the group recorded (its peak usage and how often it hit the cap)."""
    root, version = _group_root()
    group = root / f"mograg-bench-{os.getpid()}"
    group.mkdir()
    limit = str(cap_mb * 2**20)
    try:
        if version == 2:
            (group / "memory.max").write_text(limit)
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
        else:
            (group / "memory.limit_in_bytes").write_text(limit)
            if (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(limit)
        if drop_caches:
            drop_page_cache()
        procs = group / "cgroup.procs"

        def join() -> None:  # runs in the child before exec
            procs.write_text(str(os.getpid()))

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              preexec_fn=join)
        if version == 2:
            peak = int((group / "memory.peak").read_text()) if (
                group / "memory.peak").exists() else None
            events = (group / "memory.events").read_text().split()
            hits = int(events[events.index("max") + 1]) if "max" in events else None
        else:
            peak = int((group / "memory.max_usage_in_bytes").read_text())
            hits = int((group / "memory.failcnt").read_text())
        info = {"cap_mb": cap_mb, "cgroup": f"v{version}", "dropped_page_cache": drop_caches,
                "group_peak_mb": round(peak / 2**20, 1) if peak is not None else None,
                "times_at_cap": hits}
        return done, info
    finally:
        group.rmdir()
