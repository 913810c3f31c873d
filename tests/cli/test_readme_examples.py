"""README shows what the CLI prints: its console session is replayed for real.

Regenerate after a deliberate output change: python tests/readme_console.py --write
"""

from __future__ import annotations

from readme_console import README, masked, replay, session


def test_readme_cli_session_matches_real_output(shared_embedder) -> None:
    steps = session(README.read_text(encoding="utf-8"))
    assert any(cmd.startswith("mograg search") for cmd, _ in steps)
    for (cmd, shown), (_, output, _code) in zip(steps, replay(steps), strict=True):
        assert masked(output) == masked(shown), (
            f"README's `$ {cmd}` shows other output than the command prints now; "
            "regenerate with: python tests/readme_console.py --write")
