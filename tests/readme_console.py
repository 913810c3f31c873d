"""README's CLI session (the ```console block under "## CLI"), replayed for real.

``python tests/readme_console.py --write`` reruns every ``$ mograg ...`` line of that block
and writes the real output back into README.md; tests/cli/test_readme_examples.py checks
that README shows what the commands print today (timings masked).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"(## CLI\n\n```console\n)(.*?)(```)", re.S)
_TIMING = re.compile(r"\b\d+(?:\.\d+)? s\b")
_COMMENT = re.compile(r"\s+# exit code \d+$")
# the index size varies by a byte or two (the manifest's creation time is a float)
_BYTES = re.compile(r"^(bytes\s+)\d+$", re.M)
_SECONDS = re.compile(r"(seconds: )\d+(?:\.\d+)?")  # the graph build time inside `info`


def session(readme: str) -> list[tuple[str, str]]:
    """``[(command line, shown output)]`` of the README's CLI block."""
    body = _BLOCK.search(readme)
    assert body, "README.md has no ```console block under ## CLI"
    steps: list[tuple[str, str]] = []
    for line in body.group(2).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], ""))
        elif steps:
            cmd, shown = steps[-1]
            steps[-1] = (cmd, shown + line + "\n")
    return [(cmd, shown.rstrip("\n") + "\n" if shown.strip() else "") for cmd, shown in steps]


def masked(text: str) -> str:
    """Output with timings, the index size and the exit-code notes masked."""
    lines = [_COMMENT.sub("", line).rstrip() for line in text.splitlines()]
    text = _SECONDS.sub(r"\1N", _TIMING.sub("N s", "\n".join(lines)))
    return _BYTES.sub(r"\1N", text).strip()


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A fresh directory where ``src/`` is this checkout's (so $D resolves) and ``ix`` is new."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        (Path(tmp) / "src").symlink_to(ROOT / "src")
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def _run_interleaved(args: list[str]) -> tuple[str, int]:
    """Run the CLI in-process with stdout and stderr into one buffer, as a terminal shows."""
    import io

    from mograg.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
    return buf.getvalue(), code


def replay(steps: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """Run each command; ``[(command line, stdout + stderr, exit code)]``."""
    env: dict[str, str] = {}
    done = []
    with _workdir():
        for cmd, _ in steps:
            if re.fullmatch(r"\w+=\S+", cmd):  # D=src/mograg/data/demo
                name, value = cmd.split("=", 1)
                env[name] = value
                done.append((cmd, "", 0))
                continue
            for name, value in env.items():
                cmd_run = cmd.replace(f"${name}", value)
                cmd = cmd_run
            argv = shlex.split(cmd)
            assert argv[0] == "mograg", f"README console block runs {argv[0]!r}, not mograg"
            done.append((cmd, *_run_interleaved(argv[1:])))
    return done


def write() -> None:
    """Rewrite README's CLI block with real output (timings as measured now)."""
    text = README.read_text(encoding="utf-8")
    steps = session(text)
    results = replay(steps)
    parts = []
    for (shown_cmd, _), (_, output, code) in zip(steps, results, strict=True):
        lines = [line.rstrip() for line in output.rstrip("\n").splitlines()]
        if code and lines:
            lines[-1] += f"        # exit code {code}"
        parts.append("$ " + shown_cmd + ("\n" + "\n".join(lines) if lines else ""))
    block = "\n\n".join(p for p in parts if p)
    # keep `$ D=...` glued to the command that uses it, as written
    block = re.sub(r"(\$ \w+=\S+)\n\n", r"\1\n", block)
    new = _BLOCK.sub(lambda m: m.group(1) + block + "\n" + m.group(3), text, count=1)
    README.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/readme_console.py --write")
    write()
