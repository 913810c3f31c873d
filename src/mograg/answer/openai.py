"""Any OpenAI-compatible chat-completions endpoint as a generator (extra ``openai``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mograg.answer.prompt import DEFAULT_OPENAI_CONTEXT, Messages
from mograg.errors import MogragError
from mograg.http import import_httpx, retry_after_seconds, send_with_retries

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


def chat_url(base_url: str) -> str:
    """``…/v1/chat/completions`` for a base URL (``/v1`` is added when the URL has no path)."""
    from urllib.parse import urlsplit

    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"



def _error_detail(resp: Any) -> str:
    try:
        body = resp.read().decode("utf-8", "replace")
    except Exception:
        return ""
    try:
        obj = json.loads(body)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        msg = err.get("message") if isinstance(err, dict) else err
        body = str(msg if msg is not None else err)
    except (ValueError, AttributeError):
        pass
    body = " ".join(body.split())
    return f": {body[:200]}" if body else ""


class OpenAIGenerator:
    """Any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp, Ollama, hosted).

    Retries 408/409/429/5xx responses and connection errors and timeouts with exponential
    backoff (honouring ``Retry-After``), ``retries`` times; a stream is only retried before
    its first piece arrives. Every failure is a one-line :class:`MogragError` naming the URL.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        context_tokens: int | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
    ) -> None:
        httpx = import_httpx("the openai generator")
        self._httpx = httpx
        self.url = chat_url(base_url)
        self.model = model
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.context_tokens = int(context_tokens or DEFAULT_OPENAI_CONTEXT)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.name = f"openai:{model}" if model else "openai"
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _body(self, messages: Messages, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": self.max_tokens,
                                "temperature": self.temperature, "stream": stream}
        if self.model:
            body["model"] = self.model
        return body

    def _fail(self, what: str) -> MogragError:
        return MogragError(f"LLM request to {self.url} failed: {what}")

    def _delay(self, attempt: int, resp: Any = None) -> float:
        if resp is not None:
            after = retry_after_seconds(resp.headers.get("retry-after"))
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        return min(self.backoff * (2**attempt), self.max_backoff)

    def _send(self, body: dict[str, Any], stream: bool) -> Any:
        """The 200 response (streaming or read), after retries; else a one-line error."""
        attempts = self.retries + 1

        def send() -> Any:
            req = self._client.build_request("POST", self.url, json=body)
            return self._client.send(req, stream=stream)

        resp, failure = send_with_retries(
            send, attempts, ok=lambda status: status == 200,
            retryable=lambda status: status in RETRY_STATUS, delay=self._delay,
            httpx=self._httpx,
        )
        if failure is None:
            return resp
        if failure.kind == "timeout":
            raise self._fail(
                f"timed out after {self.timeout:g} s ({attempts} attempt(s)); "
                "is the server overloaded? raise the timeout"
            ) from None
        if failure.kind == "transport":
            msg = " ".join(str(failure.error).split()) or type(failure.error).__name__
            raise self._fail(
                f"cannot connect ({msg}; {attempts} attempt(s)); is the server running?"
            ) from None
        resp = failure.response
        detail = _error_detail(resp)
        resp.close()
        hint = ""
        if resp.status_code in (401, 403):
            hint = "; check the API key (MOGRAG_LLM_API_KEY or the variable in api_key_env)"
        elif resp.status_code == 404:
            hint = "; check the base URL (it usually ends in /v1) and the model name"
        raise self._fail(
            f"HTTP {resp.status_code}{detail} ({failure.attempt + 1} attempt(s)){hint}"
        )

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """The model's answer (or an iterator of streamed pieces)."""
        body = self._body(prompt_messages, stream)
        if stream:
            return self._stream(body, usage)
        resp = self._send(body, stream=False)
        try:
            data = resp.json()
            content = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self._fail("the response is not a chat completion (no choices[0].message)") \
                from None
        if usage is not None and isinstance(data.get("usage"), dict):
            usage.update({k: v for k, v in data["usage"].items()
                          if k in ("prompt_tokens", "completion_tokens", "total_tokens")})
        return str(content)

    def _stream(self, body: dict[str, Any], usage: dict[str, Any] | None) -> Iterator[str]:
        httpx = self._httpx
        resp = self._send(body, stream=True)
        pieces = 0
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    obj = json.loads(payload)
                except ValueError:
                    raise self._fail(f"bad stream event {payload[:80]!r}") from None
                if isinstance(obj, dict) and obj.get("error"):
                    err = obj["error"]
                    msg = err.get("message", err) if isinstance(err, dict) else err
                    raise self._fail(f"the server reported: {' '.join(str(msg).split())}")
                if usage is not None and isinstance(obj.get("usage"), dict):
                    usage.update({k: v for k, v in obj["usage"].items()
                                  if k in ("prompt_tokens", "completion_tokens", "total_tokens")})
                for choice in obj.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        pieces += 1
                        yield delta
        except httpx.TimeoutException:
            raise self._fail(f"the stream stalled for more than {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise self._fail(f"the stream broke ({' '.join(str(exc).split())})") from None
        finally:
            resp.close()
        if usage is not None and "completion_tokens" not in usage:
            usage["completion_tokens"] = pieces
            usage["estimated"] = True

