"""Help output that reads like a man page: ``mograg index [OPTIONS] SOURCES...``.

typer (≥ 0.2x) renders a required argument as ``{sources}...`` in usage lines and lists it
with its Python type (``<list[str]>``). :func:`name_arguments` makes every argument of every
command render as its upper-case name instead (``SOURCES...``, optional ones in brackets).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument


class NamedArgument(TyperArgument):
    """A typer argument shown by its upper-case name in usage lines and argument lists."""

    def _name(self) -> str:
        return self.display_name_raw.upper() + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        return self._name() if self.required else f"[{self._name()}]"

    def _rich_display_name(self) -> str:
        return self._name()

    def display_type_rich(self, ctx: Any) -> str:
        return ""  # the name and the help say what it is; "<list[str]>" does not


def name_arguments(group: Any) -> None:
    """Show the arguments of every command of ``group`` (a click group) by name."""
    if not hasattr(TyperArgument, "_usage_display_name"):  # older typer: click's own format
        return
    for command in getattr(group, "commands", {}).values():
        for param in command.params:
            if type(param) is TyperArgument:
                param.__class__ = NamedArgument
        name_arguments(command)
