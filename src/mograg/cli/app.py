"""The ``mograg`` command line: parsing, progress display and printing only.

All logic lives in the library; every user error ends as one ``error: ...`` line on
stderr with exit code 2 (bad input files: exit 1 after the good ones are indexed). An
unexpected exception -- a bug -- is one line too, with a hint to report it, and exit
code 3; ``--debug`` or ``MOGRAG_DEBUG=1`` print its traceback as well.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer

from mograg import __version__
from mograg.cli import demo, doc_cmds, eval_cmds, index_cmds, mcp_cmd, search_cmds, serve_cmd
from mograg.cli.console import one_line, out, say
from mograg.cli.usage import name_arguments
from mograg.errors import MogragError

app = typer.Typer(
    name="mograg",
    help="Mix-of-Granularity retrieval: index documents at several chunk sizes, "
    "and route each question to the right one.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"mograg {__version__}")
        raise typer.Exit()


_debug = {"on": False}


def _debug_on() -> bool:
    return _debug["on"] or os.environ.get("MOGRAG_DEBUG", "").strip() not in ("", "0")


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of an unexpected error "
                     "(also MOGRAG_DEBUG=1)."),
    ] = False,
) -> None:
    """Mix-of-Granularity retrieval for RAG."""
    _debug["on"] = debug
    if debug:  # the server (and anything else below) logs tracebacks too
        os.environ["MOGRAG_DEBUG"] = "1"


# the commands, in the order `mograg --help` lists them
app.command("index")(index_cmds.index_cmd)
app.command()(search_cmds.search)
app.command()(index_cmds.delete)
app.command()(index_cmds.info)
app.command("list")(doc_cmds.list_cmd)
app.command()(doc_cmds.show)
app.command("eval")(eval_cmds.eval_cmd)
app.command()(search_cmds.ask)
app.command("serve")(serve_cmd.serve_cmd)
app.command("train-router")(eval_cmds.train_router_cmd)
app.command("tune")(eval_cmds.tune_cmd)
app.command()(demo.demo)
app.command("mcp")(mcp_cmd.mcp_cmd)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: run the app and turn user errors into one line."""
    # typer may bundle its own click: take the exception classes from where typer's are
    exc = importlib.import_module(typer.BadParameter.__module__)
    no_args = getattr(exc, "NoArgsIsHelpError", None)
    command = typer.main.get_command(app)
    name_arguments(command)  # usage lines say `SOURCES...`, not `{sources}...`
    code = 0
    try:
        rv = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="mograg",
            standalone_mode=False,
        )
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except exc.ClickException as e:
        if no_args is not None and isinstance(e, no_args):
            e.show()
        else:
            say(f"error: {one_line(e.format_message())}")
        code = 2
    except MogragError as e:
        say(f"error: {one_line(e)}")
        code = 2
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        say(f"error: {where}{one_line(e.strerror or e)}")
        code = 2
    except Exception as e:  # the top-level guard: a bug is one line, not a traceback
        if _debug_on():
            traceback.print_exc()
        hint = "" if _debug_on() else " (--debug or MOGRAG_DEBUG=1 shows the traceback)"
        say(f"error: unexpected {type(e).__name__}: {one_line(e)[:300]}; this is a bug in "
            f"mograg, please report it{hint}")
        code = 3
    if code == 130:  # typer turns KeyboardInterrupt into exit code 130
        say("interrupted")
    sys.exit(code)


if __name__ == "__main__":
    main()
