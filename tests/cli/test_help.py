"""`--help` says what each option accepts, and README's command table matches it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clirun import run

README = Path(__file__).resolve().parents[2] / "README.md"
# options that take one of a fixed set of values: --help must list them
CHOICES = {
    "search": {"--mode": "hybrid dense bm25", "--strategy": "auto argmax mix blend spans"},
    "ask": {"--mode": "hybrid dense bm25", "--strategy": "auto argmax mix blend spans",
            "--generator": "openai local extractive"},
    "eval": {"--mode": "hybrid dense bm25", "--generator": "openai local extractive"},
    "train-router": {"--mode": "hybrid dense bm25", "--model": "ridge prior softmax mlp shipped",
                     "--loss": "ce bce", "--labels": "softmax mog"},
    "index": {"--level-vectors": "embed pool"},
    "serve": {"--generator": "openai local extractive"},
    "mcp": {"--transport": "stdio http", "--generator": "openai local extractive"},
}
OPTION = re.compile(r"^\s+(--[a-z0-9-]+)(?:,\s*-\w)?(?: / (--no-[a-z0-9-]+))?(?:\s+<([^>]*)>)?",
                    re.M)


def _help(*command: str) -> str:
    code, out, err = run(*command, "--help")
    assert code == 0, err
    return out


def _options(help_text: str) -> dict[str, str | None]:
    """``--option -> "<a|b>" contents`` of the Options section of a help text."""
    section = help_text.split("Options:", 1)[1]
    options: dict[str, str | None] = {}
    for m in OPTION.finditer(section):
        options[m.group(1)] = m.group(3)
        if m.group(2):  # a --flag / --no-flag pair
            options[m.group(2)] = None
    return options


def _commands() -> list[str]:
    out = _help()  # `mograg --help`
    listing = out.split("Commands:", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _readme_rows() -> dict[str, str]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `mograg ([a-z-]+)(.*?)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2).replace("\\|", "|")
    return rows


@pytest.mark.parametrize("command", sorted(CHOICES))
def test_options_with_choices_list_them(command: str) -> None:
    options = _options(_help(command))
    for option, allowed in CHOICES[command].items():
        shown = options.get(option)
        assert shown is not None and set(shown.split("|")) == set(allowed.split()), (
            f"mograg {command} --help: {option} shows <{shown}>, expected {allowed}")


def test_usage_lines_name_the_arguments() -> None:
    for command in _commands():
        text = _help(command)
        usage = text.splitlines()[0]
        assert usage.startswith(f"Usage: mograg {command} [OPTIONS]"), usage
        assert "{" not in text and "<list[" not in text, f"mograg {command} --help:\n{text}"
    assert _help("search").startswith("Usage: mograg search [OPTIONS] QUESTION\n")
    assert _help("index").startswith("Usage: mograg index [OPTIONS] SOURCES...\n")


def test_readme_command_table_matches_help() -> None:
    rows = _readme_rows()
    commands = _commands()
    assert set(rows) == set(commands), "README's command table lists other commands than --help"
    for command, row in rows.items():
        options = _options(_help(command))
        documented = set(re.findall(r"(?<![\w-])(--[a-z0-9-]+)", row))
        shown = set(options) - {"--help"}
        assert documented == shown, (
            f"README row for mograg {command}: missing {sorted(shown - documented)}, "
            f"stale {sorted(documented - shown)}")
        for option, values in re.findall(r"(--[a-z0-9-]+) ([a-z0-9]+(?:\|[a-z0-9]+)+)", row):
            if "|" in (options.get(option) or ""):  # README lists exactly --help's choices
                assert set(values.split("|")) == set(options[option].split("|")), (
                    f"README row for mograg {command}: {option} {values} vs <{options[option]}>")


def test_generator_choices_are_the_config_kinds() -> None:
    from typing import get_args

    from mograg.cli.options import Generator
    from mograg.config import KINDS

    assert get_args(Generator) == KINDS
