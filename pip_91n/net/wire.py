"""pip-91n's view of HTTP: one GET, its status, its headers, its body in chunks.

A ``Wire`` is what the failover race, the download engine and the probes send through:
``open(url, headers, timeout)`` returns a ``WireResponse`` or raises ``WireError``, whose
``kind`` says what failed (connect, a timeout, reading the body, the proxy). Inside pip the
wire is pip's own connection pools (``pip_91n.hook.pool``); everywhere else it is an httpx
transport (``pip_91n.net.httpx_wire``). ``describe`` is the one place a failed request
becomes a reason people read. This module imports nothing outside the standard library, so
a pip process fetches without loading httpx.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, Protocol
from urllib.parse import urljoin, urlsplit

from pip_91n._urls import cross_host_headers, redact_text, split_credentials

__all__ = [
    "CONNECT",
    "CONNECT_TIMEOUT",
    "PROTOCOL",
    "PROXY",
    "READ",
    "READ_TIMEOUT",
    "REDIRECTS",
    "Wire",
    "WireError",
    "WireErrorKind",
    "WireResponse",
    "decode_body",
    "describe",
    "follow",
]

WireErrorKind = Literal["connect", "connect_timeout", "read_timeout", "read", "proxy",
                        "protocol"]
CONNECT: WireErrorKind = "connect"
CONNECT_TIMEOUT: WireErrorKind = "connect_timeout"
READ_TIMEOUT: WireErrorKind = "read_timeout"
READ: WireErrorKind = "read"
PROXY: WireErrorKind = "proxy"
PROTOCOL: WireErrorKind = "protocol"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


class WireError(Exception):
    """A request that failed on the wire; ``kind`` is one of the constants above."""

    def __init__(self, kind: WireErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: WireErrorKind = kind


class WireResponse:
    """Status, headers (lower-case names; repeated ones joined by ``", "``) and the body,
    undecoded, as an iterator of chunks that raises ``WireError``. ``close`` gives the
    connection back (after a complete body) or drops it."""

    __slots__ = ("_chunks", "_close", "headers", "reason", "status")

    def __init__(self, status: int, headers: dict[str, str], chunks: Iterable[bytes],
                 close: Callable[[], None], reason: str = "") -> None:
        self.status = status
        self.headers = headers
        self.reason = reason
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def read(self) -> bytes:
        return b"".join(self)

    def close(self) -> None:
        self._close()


class Wire(Protocol):
    def open(self, url: str, headers: Sequence[tuple[str, str]],
             timeout: float | None) -> WireResponse:
        """Send ``GET url``; the response once its headers arrived."""

    def close(self) -> None:
        """Release the connections this wire owns."""


def follow(wire: Wire, url: str, headers: Sequence[tuple[str, str]], timeout: float | None,
           *, credentials: Callable[[str], tuple[str, str] | None] | None = None
           ) -> tuple[WireResponse, str]:
    """``GET url`` through ``wire``, following up to five redirects; the response and the
    URL (without credentials) that gave it. Credentials in a hop's URL, else
    ``credentials(url)``, become its Basic ``Authorization``; secret headers never cross to
    another origin, and https never drops to http."""
    current, sent = url, list(headers)
    for _hop in range(_MAX_REDIRECTS + 1):
        bare, creds = split_credentials(current)
        creds = creds or (credentials(bare) if credentials else None)
        hop = [(k, v) for k, v in sent if not creds or k.lower() != "authorization"]
        if creds:
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            hop.append(("authorization", f"Basic {token}"))
        resp = wire.open(bare, hop, timeout)
        location = resp.headers.get("location")
        if resp.status not in REDIRECTS or not location:
            return resp, bare
        resp.close()
        nxt = urljoin(bare, location)
        if urlsplit(bare).scheme == "https" and urlsplit(nxt).scheme != "https":
            raise WireError(PROTOCOL, f"redirect to non-https URL refused: {nxt}")
        sent = cross_host_headers(sent, bare, nxt)
        current = nxt
    raise WireError(PROTOCOL, "too many redirects")


def describe(exc: BaseException, timeout: float | None = None, *, reading: bool = False
             ) -> str:
    """Why a request failed (a ``WireError`` or an ``OSError``), as the request log, the
    download errors and the probes say it: one short line, passwords hidden. ``reading``:
    the failure came while reading the body, after the headers."""
    kind = exc.kind if isinstance(exc, WireError) else READ if reading else CONNECT
    text = _first_line(exc)
    if kind == CONNECT_TIMEOUT:
        return f"connect timeout after {timeout:g}s" if timeout else "connect timeout"
    if kind == READ_TIMEOUT:
        if reading:
            return f"stalled for {timeout:g}s" if timeout else "read timeout"
        return f"no first byte within {timeout:g}s" if timeout else "read timeout"
    if kind == PROTOCOL:
        return text if text.startswith(("redirect", "too many")) else f"protocol error: {text}"
    if kind == PROXY:
        return f"proxy error: {text}"
    if kind == READ:
        return f"connection lost: {text}"
    low = text.lower()
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"TLS error: {text}"
    if "connection refused" in low:
        return "connect failed: connection refused"
    dns = ("name or service", "nodename", "name resolution", "getaddrinfo", "name lookup")
    return ("DNS failure: " if any(d in low for d in dns) else "connect failed: ") + text


def _first_line(exc: BaseException) -> str:
    """The gist of ``exc``: urllib3 and httpx wrap the cause in long reprs of pools and
    connection objects; keep the innermost reason, one line, at most 160 characters."""
    text = str(exc) or type(exc).__name__
    # "... (Caused by NewConnectionError('<...>: Failed to establish ...: [Errno 111] ...'))"
    for marker in ("Failed to establish a new connection: ", "Caused by "):
        if marker in text:
            text = text.rsplit(marker, 1)[1].rstrip("')\"")
    return redact_text(text.splitlines()[0] if text else "")[:160]


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """``raw`` with its Content-Encoding (gzip, deflate, br when brotli is installed)
    undone; ``ValueError`` for one that cannot be."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        try:
            if coding in ("gzip", "x-gzip"):
                raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    raw = zlib.decompress(raw)
                except zlib.error:
                    raw = zlib.decompress(raw, -zlib.MAX_WBITS)
            elif coding == "br":
                import brotli  # type: ignore[import-not-found]  # optional, as for httpx

                raw = brotli.decompress(raw)
            else:
                raise ValueError(f"unsupported Content-Encoding {coding}")
        except ValueError:
            raise
        except Exception as exc:  # zlib.error, brotli.error, no brotli
            raise ValueError(f"cannot decode Content-Encoding {coding}: {exc}") from exc
    return raw
