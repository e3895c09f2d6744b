"""``HttpxWire``: a ``Wire`` over an httpx transport.

Outside pip, requests go through httpx: the default pool (``default_wire()``), a user's own
transport, or ``httpx.MockTransport`` in tests. httpx's exceptions become ``WireError`` here,
at one boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from pip_91n.net.wire import (
    CONNECT,
    CONNECT_TIMEOUT,
    PROTOCOL,
    PROXY,
    READ,
    READ_TIMEOUT,
    WireError,
    WireErrorKind,
    WireResponse,
)

__all__ = ["HttpxWire", "default_wire"]


def _wire_error(exc: httpx.TransportError, *, reading: bool) -> WireError:
    text = str(exc) or type(exc).__name__
    kind: WireErrorKind
    if isinstance(exc, httpx.ConnectTimeout):
        kind = CONNECT_TIMEOUT
    elif isinstance(exc, httpx.TimeoutException):
        kind = READ_TIMEOUT
    elif isinstance(exc, httpx.ProxyError):
        kind = PROXY
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.LocalProtocolError,
                          httpx.UnsupportedProtocol)):
        kind = PROTOCOL
    else:
        kind = READ if reading else CONNECT
    return WireError(kind, text)


class HttpxWire:
    """A ``Wire`` over an httpx transport."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.transport = transport

    def open(self, url: str, headers: Sequence[tuple[str, str]],
             timeout: float | None) -> WireResponse:
        request = httpx.Request("GET", url, headers=list(headers), extensions={"timeout": {
            "connect": timeout, "read": timeout, "write": timeout, "pool": timeout}})
        try:
            resp = self.transport.handle_request(request)
        except httpx.TransportError as exc:
            raise _wire_error(exc, reading=False) from exc
        return WireResponse(resp.status_code,
                            {k.lower(): v for k, v in resp.headers.items()},
                            self._chunks(resp), resp.close, resp.reason_phrase)

    @staticmethod
    def _chunks(resp: httpx.Response) -> Iterator[bytes]:
        stream = resp.stream
        if not isinstance(stream, httpx.SyncByteStream):
            raise WireError(PROTOCOL, "the transport returned an async stream")
        try:
            yield from stream
        except httpx.TransportError as exc:
            raise _wire_error(exc, reading=True) from exc

    def close(self) -> None:
        self.transport.close()


def default_wire() -> HttpxWire:
    """The wire outside pip: httpx's pools, through the proxy the environment names, with
    TLS verified as ``pip_91n.net.httpx_pool`` says."""
    from pip_91n.net.httpx_pool import EnvProxyTransport

    return HttpxWire(EnvProxyTransport())
