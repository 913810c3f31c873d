"""Parse untrusted JSON (JSONL lines, request bodies) into values mograg can store.

``json.loads`` accepts things that break later, far from the input: arrays nested
200,000 deep (``RecursionError``), numbers of thousands of digits (``ValueError`` from
``int``), ``NaN``/``1e999`` (not valid JSON on the way out) and ``"\\ud800"`` (a lone
surrogate that cannot be written as UTF-8). :func:`loads_checked` refuses all of them
with one line saying what is wrong, so one bad record never aborts a whole run.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "JsonValueError",
    "check_value",
    "has_lone_surrogate",
    "loads_checked",
]

MAX_DEPTH = 64
"""Deepest nesting of objects/arrays accepted (metadata is a few levels in practice)."""
MAX_NUMBER_CHARS = 100
"""Longest number literal accepted; longer numbers should be stored as strings."""

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class JsonValueError(ValueError):
    """The text is not JSON mograg accepts; ``str(e)`` is one line saying why."""


def _parse_int(s: str) -> int:
    if len(s) > MAX_NUMBER_CHARS:
        raise JsonValueError(
            f"a number has {len(s)} digits (limit {MAX_NUMBER_CHARS}); store it as a string"
        )
    return int(s)


def _parse_float(s: str) -> float:
    if len(s) > MAX_NUMBER_CHARS:
        raise JsonValueError(
            f"a number has {len(s)} characters (limit {MAX_NUMBER_CHARS}); store it as a string"
        )
    x = float(s)
    if not math.isfinite(x):
        raise JsonValueError(f"number {s[:20]} is out of range; store it as a string")
    return x


def _parse_constant(s: str) -> Any:
    raise JsonValueError(f"{s} is not valid JSON; use null or a string")


def check_value(obj: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`JsonValueError` if ``obj`` nests deeper than ``max_depth`` or holds
    a string that is not valid Unicode (a lone surrogate). Iterative: any depth is safe."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_str(value)
        elif isinstance(value, (dict, list)):
            if depth > max_depth:
                raise JsonValueError(f"nested deeper than {max_depth} levels; flatten it")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_str(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise JsonValueError("a number is NaN or infinite; use null or a string")


def has_lone_surrogate(s: str) -> bool:
    """True if ``s`` cannot be written as UTF-8 (an escaped or undecodable surrogate)."""
    return not s.isascii() and _SURROGATE_RE.search(s) is not None


def _check_str(s: str) -> None:
    if not s.isascii():
        m = _SURROGATE_RE.search(s)
        if m:
            raise JsonValueError(
                f"contains a lone surrogate (\\u{ord(m.group()):04x}), which is not valid "
                "Unicode; fix the escape or the encoding"
            )


def loads_checked(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted input; every refusal is a :class:`JsonValueError`.

    Raises:
        JsonValueError: invalid JSON (with column), nesting deeper than ``max_depth``,
            numbers longer than :data:`MAX_NUMBER_CHARS` or out of range, ``NaN``/
            ``Infinity``, lone surrogates, or bytes that are not UTF-8.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JsonValueError(f"not valid UTF-8 (byte {e.start}); convert it to UTF-8") from None
    try:
        obj = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except JsonValueError:
        raise
    except json.JSONDecodeError as e:
        raise JsonValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise JsonValueError(f"nested deeper than {max_depth} levels; flatten it") from None
    except ValueError as e:  # pragma: no cover - defensive: other parser refusals
        raise JsonValueError(f"invalid JSON ({e})") from None
    check_value(obj, max_depth)
    return obj
