"""Extensions: how another package (e.g. ``POST /ask``) adds routes to the app.

Pass ``extensions=[fn]`` to :func:`mograg.server.app.create_app` or call
:func:`register_extension` before the app is built; each ``fn(app, ctx)`` receives the
FastAPI app and a :class:`ServerContext` with the index service and auth dependencies.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mograg.server.service import IndexService


@dataclass
class ServerContext:
    """What an extension (e.g. ``POST /ask``) needs to add routes to the app.

    Attributes:
        service: the index service; ``service.handle().index`` is the index to read.
        require_read: FastAPI dependency enforcing read auth (``Depends(ctx.require_read)``).
        require_write: FastAPI dependency enforcing write auth.
        max_budget: the cap on token budgets.
        max_query_chars: the cap on query length.
    """

    service: IndexService
    require_read: Callable[..., None]
    require_write: Callable[..., None]
    max_budget: int
    max_query_chars: int
    settings: dict[str, Any] = field(default_factory=dict)


Extension = Callable[[Any, ServerContext], None]
_EXTENSIONS: list[Extension] = []


def register_extension(fn: Extension) -> Extension:
    """Register ``fn(app, ctx)`` to add routes to every app built afterwards (a decorator)."""
    if fn not in _EXTENSIONS:
        _EXTENSIONS.append(fn)
    return fn


def registered_extensions() -> list[Extension]:
    """The extensions registered so far, in registration order."""
    return list(_EXTENSIONS)
