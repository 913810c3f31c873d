"""HTTP with retries, shared by the OpenAI-compatible embedder and generator (extra ``openai``).

:func:`send_with_retries` runs the attempt loop (timeouts, connection errors and retryable
statuses are retried after a caller-chosen delay); each caller words its own errors from
the :class:`Failure` it gets back.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mograg.errors import MissingExtraError


def import_httpx(what: str) -> Any:
    """The httpx module, or a one-line error naming the ``openai`` extra."""
    try:
        import httpx
    except ImportError as exc:
        raise MissingExtraError("httpx", "openai", what) from exc
    return httpx


def retry_after_seconds(value: str | None, http_dates: bool = True) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds, or an HTTP date if allowed)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if not http_dates:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Failure:
    """Why the last attempt failed: a timeout, a transport error, or an HTTP status.

    ``response`` (for ``status``) is still open: read its body if needed, then close it.
    """

    kind: Literal["timeout", "transport", "status"]
    attempt: int  # 0-based index of the failed attempt
    error: Exception | None = None
    response: Any = None


def send_with_retries(
    send: Callable[[], Any],
    attempts: int,
    ok: Callable[[int], bool],
    retryable: Callable[[int], bool],
    delay: Callable[[int, Any], float],
    httpx: Any,
) -> tuple[Any, Failure | None]:
    """Call ``send()`` up to ``attempts`` times; return ``(response, None)`` on success.

    A timeout, a transport error or a ``retryable`` status is retried after
    ``delay(attempt, response or None)`` seconds (the response is closed first); any other
    status that is not ``ok`` fails at once. On failure returns ``(None, Failure)``.
    """
    failure: Failure | None = None
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            resp = send()
        except httpx.TimeoutException as exc:
            failure = Failure("timeout", attempt, error=exc)
        except httpx.TransportError as exc:
            failure = Failure("transport", attempt, error=exc)
        else:
            if ok(resp.status_code):
                return resp, None
            failure = Failure("status", attempt, response=resp)
            if not retryable(resp.status_code) or last:
                return None, failure
            resp.close()
        if not last:
            time.sleep(delay(attempt, failure.response))
    return None, failure
