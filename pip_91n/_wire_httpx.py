"""httpx on both sides of a ``Wire``.

``HttpxWire`` sends the chain's requests through an httpx transport (the default pool, a
user's own, ``httpx.MockTransport`` in tests). ``WireTransport`` is the other way round: an
httpx transport over a wire, so the download engine (an httpx client) reaches the mirrors
the way the chain does, over pip's own pools inside pip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from pip_91n.wire import (
    CONNECT,
    CONNECT_TIMEOUT,
    PROTOCOL,
    PROXY,
    READ,
    READ_TIMEOUT,
    Wire,
    WireError,
    WireResponse,
)

__all__ = ["HttpxWire", "WireTransport"]

_TO_HTTPX: dict[str, type[httpx.TransportError]] = {
    CONNECT: httpx.ConnectError,
    CONNECT_TIMEOUT: httpx.ConnectTimeout,
    READ_TIMEOUT: httpx.ReadTimeout,
    READ: httpx.ReadError,
    PROXY: httpx.ProxyError,
    PROTOCOL: httpx.RemoteProtocolError,
}


def _wire_error(exc: httpx.TransportError, *, reading: bool) -> WireError:
    text = str(exc) or type(exc).__name__
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


class _WireStream(httpx.SyncByteStream):
    def __init__(self, resp: WireResponse) -> None:
        self._resp = resp

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._resp
        except WireError as exc:
            raise _TO_HTTPX[exc.kind](str(exc)) from exc

    def close(self) -> None:
        self._resp.close()


class WireTransport(httpx.BaseTransport):
    """An httpx transport (GET only) over ``wire``, which stays open: its owner closes it."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            raise httpx.UnsupportedProtocol(f"{request.method}: the chain's wire sends GET only",
                                            request=request)
        timeouts = request.extensions.get("timeout", {})
        try:
            resp = self.wire.open(str(request.url), request.headers.multi_items(),
                                  timeouts.get("read"))
        except WireError as exc:
            raise _TO_HTTPX[exc.kind](str(exc), request=request) from exc
        return httpx.Response(resp.status, headers=list(resp.headers.items()),
                              stream=_WireStream(resp), request=request,
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": resp.reason.encode("ascii",
                                                                              "replace")})

    def close(self) -> None:
        pass
