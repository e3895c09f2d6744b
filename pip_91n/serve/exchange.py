"""What every handler of the local index shares: one request (``Exchange``: the ASGI scope,
the status and bytes sent, for the request log), plain-text answers, the worker pool the
blocking work runs in, and ``Aborted`` (a body that cannot be completed: the connection is
cut)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import Response

from pip_91n._urls import redact_text
from pip_91n.errors import AllMirrorsFailed

__all__ = ["THREADS", "Aborted", "Exchange", "Message", "Pool", "Receive", "Scope", "Send",
           "no_receive", "raw_headers", "text", "why"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Worker threads for the blocking work; each waiting client of a download holds one.
THREADS = 256


class Pool:
    """The worker pool (``THREADS`` threads) for the chain's blocking calls."""

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._limiter is None:  # made inside the event loop
            self._limiter = anyio.CapacityLimiter(THREADS)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter,
                                              abandon_on_cancel=True)


class Aborted(Exception):
    """The body could not be completed: the connection is cut (``reason`` is logged)."""


class Exchange:
    """One request: what the access log needs to know about it."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope, self._send = scope, send
        self.status = 0
        self.nbytes = 0
        self.note = ""
        self.disconnected = False
        self.complete = False
        self.headers = Headers(scope=scope)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            if self.scope["method"] != "HEAD":
                self.nbytes += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)


def text(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status, headers=headers, media_type="text/plain")


def why(exc: AllMirrorsFailed) -> str:
    return redact_text("; ".join(f"{a.mirror}: {a.reason}" for a in exc.attempts)
                       or "no mirror was usable")


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def no_receive() -> Message:  # responses here never read the request
    return {"type": "http.disconnect"}
