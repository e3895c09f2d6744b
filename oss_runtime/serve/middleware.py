"""The ASGI layer in front of the routes: header bound (431), API key (401), one log line.

The log line, one per request, on the ``oss_runtime.serve`` logger::

    POST /v1/chat/completions 200 prompt=57 completion=12 finish=stop 1.234s

(method, path, status, prompt and generated tokens, finish reason, seconds from the request to
the last byte). It holds no prompt text, headers or key unless ``--log-prompts`` is set, which
appends the request's messages (or prompt) as JSON. The key is compared as a SHA-256 digest with
`hmac.compare_digest`, so the time taken does not depend on how much of it matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any, Callable

from oss_runtime.errors import RequestError
from oss_runtime.serve.responses import error_body

__all__ = ["Gate", "send_error"]

log = logging.getLogger("oss_runtime.serve")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


async def send_error(send: Callable[..., Any], exc: RequestError) -> None:
    body = json.dumps(error_body(exc)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    if exc.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="oss-runtime"'))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Gate:
    """Pure ASGI middleware; ``settings`` is a `ServeSettings`."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.max_header = settings.max_header
        self.key = _digest(settings.api_key) if settings.api_key else None

    def _check(self, scope: dict[str, Any]) -> RequestError | None:
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
        if size > self.max_header:
            return RequestError(f"the request line and headers are {size} bytes, over this "
                                f"server's limit of {self.max_header} (--max-header-bytes).",
                                status=431, code="headers_too_large")
        if self.key is None or not scope["path"].startswith("/v1/"):
            return None
        given = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return RequestError("this server needs an API key: send the header 'Authorization: "
                                "Bearer <key>' (the openai SDK's api_key).", status=401,
                                code="missing_api_key")
        if not hmac.compare_digest(_digest(token.strip()), self.key):
            return RequestError("the API key is not valid for this server.", status=401,
                                code="invalid_api_key")
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record: dict[str, Any] = {}
        scope["oss_log"] = record
        status = [0]

        async def send_logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            problem = self._check(scope)
            if problem is not None:
                await send_error(send_logged, problem)
            else:
                await self.app(scope, receive, send_logged)
        finally:
            self._log(scope, status[0] or 499, record, time.perf_counter() - started)

    @staticmethod
    def _log(scope: dict[str, Any], status: int, record: dict[str, Any], seconds: float) -> None:
        parts = [scope.get("method", "-"), scope.get("path", "-"), str(status)]
        if "prompt_tokens" in record:
            parts.append(f"prompt={record['prompt_tokens']} "
                         f"completion={record.get('completion_tokens', 0)}")
        if record.get("finish"):
            parts.append(f"finish={record['finish']}")
        if record.get("error"):
            parts.append(f"error={record['error']}")
        parts.append(f"{seconds:.3f}s")
        if "prompt_text" in record:
            parts.append("prompt=" + json.dumps(record["prompt_text"], ensure_ascii=True))
        log.info(" ".join(parts))
