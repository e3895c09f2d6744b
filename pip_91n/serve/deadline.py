"""A deadline for each request head: a client that opens a connection (or keeps one open
after a response) and sends its request line and headers slowly, or never, is cut off after
``HEAD_TIMEOUT`` seconds, so slow or idle clients cannot hold all ``MAX_CONNECTIONS``
(uvicorn's h11 protocol has a keep-alive timeout, but none while a head is arriving)."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEAD_TIMEOUT", "head_deadline"]

#: Seconds a request head may take to arrive, from the connection or the last response.
HEAD_TIMEOUT = 30.0


def head_deadline(seconds: float = HEAD_TIMEOUT) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request head is not in
    within ``seconds``."""

    class HeadDeadline(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(seconds, self._late)

        def _late(self) -> None:
            self._head_timer = None
            # IDLE: no complete request head since the timer was armed
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadline
