"""API keys: where the key comes from, and the FastAPI dependencies that check it.

An API key (``MOGRAG_API_KEY`` or ``--api-key-file``) is required for every write, and for
reads too with ``private=True``; keys are compared in constant time.
"""

import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mograg.errors import MogragError


def resolve_api_key(
    api_key: str | None = None, api_key_file: str | Path | None = None
) -> str | None:
    """The API key: given directly, else read from ``api_key_file``, else ``MOGRAG_API_KEY``."""
    if api_key is None and api_key_file is not None:
        try:
            api_key = Path(api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MogragError(f"cannot read the API key file {api_key_file} ({exc})") from None
        if not api_key:
            raise MogragError(f"the API key file {api_key_file} is empty; put the key in it")
    if api_key is None:
        api_key = os.environ.get("MOGRAG_API_KEY", "").strip() or None
    if api_key is not None and len(api_key) < 8:
        raise MogragError("the API key is too short; use at least 8 characters (16+ random)")
    return api_key


def given_key(headers: Any) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def auth_dependencies(
    api_key: str | None, private: bool
) -> tuple[Callable[..., None], Callable[..., None]]:
    """``(require_read, require_write)``: FastAPI dependencies enforcing the key."""
    from fastapi import HTTPException, Request

    key_bytes = api_key.encode("utf-8") if api_key else None

    def _check_key(request: Request) -> None:
        if key_bytes is None:
            raise HTTPException(403, "this server is read-only: start it with an API key "
                                     "(MOGRAG_API_KEY or --api-key-file) to allow writes")
        given = given_key(request.headers)
        if given is None:
            raise HTTPException(
                401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.encode("utf-8"), key_bytes):
            raise HTTPException(403, "wrong API key")

    def require_write(request: Request) -> None:
        _check_key(request)

    def require_read(request: Request) -> None:
        if private:
            _check_key(request)

    return require_read, require_write
