"""One attempt: fetch one resource from one mirror, verify it, or say why not.

Used by ``pip_91n.transport.FailoverTransport`` (which runs attempts in threads and races
them). Third-party errors are translated into failure reasons here, at one boundary.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx

from pip_91n.catalog import Mirror
from pip_91n.pages import JSON_TYPE, is_page_content_type, parse_page
from pip_91n.routing import (
    KIND_FILE,
    KIND_INDEX,
    KIND_METADATA,
    KIND_PAGE,
    Resource,
    cross_host_headers,
    resource_url,
    split_credentials,
)
from pip_91n.staleness import judge_page

if TYPE_CHECKING:
    from packaging.version import Version

    from pip_91n.transport import FailoverTransport

__all__ = ["PIN_EXTENSION", "AttemptState", "Attempter", "Outcome"]

log = logging.getLogger("pip_91n")

PIN_EXTENSION = "pip_91n.pin"
_SPOOL_MAX = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DROP = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_FILE_DROP = frozenset({"range", "if-range", "accept-encoding"})
_CONDITIONAL = frozenset({"if-none-match", "if-modified-since"})
_PAGE_ACCEPT = (
    f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


@dataclass
class AttemptState:
    """Shared between an attempt's thread and the race: cancel flag, headers-seen flag."""

    cancel: threading.Event = field(default_factory=threading.Event)
    headers: bool = False


@dataclass
class Outcome:
    """How one attempt ended. ``kind``: ok, missing (404/410 or not on the page), pin (page
    lacks the pinned version), stale, fault (counts against the mirror's health), cancelled."""

    mirror: Mirror
    kind: str
    reason: str = ""
    url: str = ""
    status: int | None = None
    nbytes: int = 0
    seconds: float = 0.0
    latency: float | None = None
    response: httpx.Response | None = None


class _Fail(Exception):
    def __init__(self, kind: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


class _SpoolStream(httpx.SyncByteStream):
    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool

    def __iter__(self) -> Iterator[bytes]:
        self._spool.seek(0)
        while chunk := self._spool.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        self._spool.close()


@dataclass
class _Stored:
    response: httpx.Response
    url: str
    nbytes: int
    latency: float
    body: bytes | None = None  # decoded, for pages only


def _mime(headers: httpx.Headers) -> str:
    value: str = headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return (p.scheme, (p.hostname or "").lower(), p.port)


def _transport_reason(exc: Exception, timeout: float) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout after {timeout:g}s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no first byte within {timeout:g}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {text}"
    low = text.lower()
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"TLS error: {text}"
    if isinstance(exc, httpx.ConnectError):
        dns = ("name or service", "nodename", "name resolution", "getaddrinfo")
        return ("DNS failure: " if any(d in low for d in dns) else "connect failed: ") + text
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {text}"
    return f"{type(exc).__name__}: {text}"


def _pin(request: httpx.Request) -> Version | None:
    raw: Any = request.extensions.get(PIN_EXTENSION)
    if raw is None:
        return None
    from packaging.version import InvalidVersion, Version

    if isinstance(raw, Version):
        return raw
    try:
        return Version(str(raw))
    except InvalidVersion:
        return None


class Attempter:
    def __init__(self, owner: FailoverTransport) -> None:
        self.t = owner

    def attempt(
        self, mirror: Mirror, res: Resource, request: httpx.Request, state: AttemptState
    ) -> Outcome:
        t0 = time.monotonic()
        url = ""
        try:
            if res.kind in (KIND_PAGE, KIND_INDEX):
                url = resource_url(res, mirror) or ""
                stored = self._fetch(mirror, url, self._headers(request, url, res), res, state)
                kind, reason = self._judge(mirror, res, request, stored)
            else:
                stored = self._file(mirror, res, request, state)
                kind, reason = "ok", ""
            return Outcome(mirror, kind, reason, stored.url, stored.response.status_code,
                           stored.nbytes, time.monotonic() - t0, stored.latency, stored.response)
        except _Fail as f:
            return Outcome(mirror, f.kind, f.reason, url, f.status, 0, time.monotonic() - t0)
        except Exception as exc:  # a bug must cost one mirror, not the install
            log.exception("pip-91n: internal error while trying %s", mirror.name)
            return Outcome(mirror, "fault", f"internal error: {exc!r}", url, None, 0,
                           time.monotonic() - t0)

    # -- pages -----------------------------------------------------------------------------

    def _judge(
        self, mirror: Mirror, res: Resource, request: httpx.Request, stored: _Stored
    ) -> tuple[str, str]:
        if res.kind != KIND_PAGE or stored.body is None or res.project is None:
            return "ok", ""
        page = parse_page(stored.body, stored.url, stored.response.headers.get("content-type"),
                          stored.response.headers)
        self.t.files.learn(mirror.name, page, res.project)
        verdict = judge_page(
            seen_serial=self.t.seen_serial(res.project), serial=page.serial,
            filenames=[f.filename for f in page.files], pin=_pin(request),
        )
        if verdict.serve:
            self.t.accept_serial(res.project, page.serial)
            return "ok", ""
        if verdict.reason.startswith("stale"):
            stored.response.close()
            raise _Fail("stale", verdict.reason, stored.response.status_code)
        return "pin", verdict.reason

    # -- files -----------------------------------------------------------------------------

    def _file(
        self, mirror: Mirror, res: Resource, request: httpx.Request, state: AttemptState
    ) -> _Stored:
        assert res.filename is not None
        # The first hash seen for a filename stays the expected one even when a later page
        # disagreed (KnownFiles never takes URLs from a disagreeing mirror): never mix files.
        usable = self.t.files.get(res.filename)
        meta = res.kind == KIND_METADATA
        expect = (usable.metadata_sha256 if meta else usable.sha256) if usable else None
        frag = request.url.fragment
        if not meta and frag.lower().startswith("sha256="):
            expect = frag[7:].lower()
        if res.mirror == mirror.name:
            direct: str | None = str(request.url.copy_with(fragment=None))
        else:
            direct = resource_url(res, mirror, usable.urls if usable else None)
        if direct is not None:
            try:
                return self._fetch(mirror, direct, self._headers(request, direct, res), res,
                                   state, expect)
            except _Fail as f:
                if f.kind != "missing" or res.project is None:
                    raise
        if res.project is None:
            raise _Fail("missing", "cannot tell which project page lists this file", 404)
        if self.t.files.page_read(mirror.name, res.project) and not (usable and mirror.name in
                                                                      usable.urls):
            raise _Fail("missing", f"{res.filename} is not on {mirror.name}'s project page", 404)
        file_sha = usable.sha256 if usable else (None if meta else expect)
        found = self._lookup(mirror, res.project, res.filename, file_sha, request, state)
        if found is None:
            raise _Fail("missing", f"{res.filename} is not on {mirror.name}'s project page", 404)
        url = found + (".metadata" if meta else "")
        if url == direct:
            raise _Fail("missing", f"HTTP 404 for {res.filename}", 404)
        return self._fetch(mirror, url, self._headers(request, url, res), res, state, expect)

    def _lookup(
        self, mirror: Mirror, project: str, filename: str, sha256: str | None,
        request: httpx.Request, state: AttemptState,
    ) -> str | None:
        """Find ``filename`` (with ``sha256`` when known) on ``mirror``'s own project page."""
        page_res = Resource(KIND_PAGE, project=project, mirror=mirror.name)
        url = resource_url(page_res, mirror) or ""
        headers = [("accept", _PAGE_ACCEPT)]
        ua = request.headers.get("user-agent")
        if ua:
            headers.append(("user-agent", ua))
        try:
            stored = self._fetch(mirror, url, headers, page_res, state)
        except _Fail as f:
            if f.kind == "missing":
                return None
            raise
        stored.response.close()
        page = parse_page(stored.body or b"", stored.url,
                          stored.response.headers.get("content-type"), stored.response.headers)
        self.t.files.learn(mirror.name, page, project)
        found = page.find(filename, sha256)
        return found.url if found is not None else None

    # -- the wire --------------------------------------------------------------------------

    def _headers(self, request: httpx.Request, url: str, res: Resource) -> list[tuple[str, str]]:
        src = str(request.url)
        items = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROP]
        if res.kind in (KIND_FILE, KIND_METADATA):
            items = [(k, v) for k, v in items if k.lower() not in _FILE_DROP]
            items.append(("accept-encoding", "identity"))
        if _origin(src) != _origin(url):
            items = [(k, v) for k, v in items if k.lower() not in _CONDITIONAL]
        return cross_host_headers(items, src, url)

    def _creds(self, mirror: Mirror, url: str) -> tuple[str, str] | None:
        own_url, own = split_credentials(mirror.simple_url)
        return own if own and _origin(own_url) == _origin(url) else None

    def _fetch(
        self, mirror: Mirror, url: str, headers: list[tuple[str, str]], res: Resource,
        state: AttemptState, expect: str | None = None,
    ) -> _Stored:
        transport = self.t.transport_for(mirror)
        timeout = self.t.timeout
        current = url
        for _hop in range(_MAX_REDIRECTS + 1):
            bare, creds = split_credentials(current)
            creds = creds or self._creds(mirror, bare)
            send = [(k, v) for k, v in headers if k.lower() != "authorization" or not creds]
            if creds:
                token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
                send.append(("authorization", f"Basic {token}"))
            req = httpx.Request("GET", bare, headers=send, extensions={"timeout": {
                "connect": timeout, "read": timeout, "write": timeout, "pool": timeout}})
            started = time.monotonic()
            try:
                resp = transport.handle_request(req)
            except (httpx.TransportError, OSError) as exc:
                raise _Fail("fault", _transport_reason(exc, timeout)) from exc
            state.headers = True
            latency = time.monotonic() - started
            location = resp.headers.get("location")
            if resp.status_code not in _REDIRECTS or not location:
                break
            resp.close()
            nxt = urljoin(bare, location)
            if urlsplit(bare).scheme == "https" and urlsplit(nxt).scheme != "https":
                raise _Fail("fault", f"redirect to non-https URL refused: {nxt}")
            headers = cross_host_headers(headers, bare, nxt)
            current = nxt
        else:
            raise _Fail("fault", "too many redirects")
        return self._read(resp, bare, mirror, res, state, expect, latency)

    def _read(
        self, resp: httpx.Response, url: str, mirror: Mirror, res: Resource,
        state: AttemptState, expect: str | None, latency: float,
    ) -> _Stored:
        status = resp.status_code
        if status in (404, 410):
            resp.close()
            raise _Fail("missing", f"HTTP {status}", status)
        if not (200 <= status < 300 or status == 304):
            resp.close()
            after = resp.headers.get("retry-after")
            raise _Fail("fault", f"HTTP {status}" + (f" (Retry-After {after})" if after else ""),
                        status)
        is_page = res.kind in (KIND_PAGE, KIND_INDEX)
        mime = _mime(resp.headers)
        if status != 304 and (
            (is_page and not is_page_content_type(mime)) or (not is_page and mime == "text/html")
        ):
            resp.close()
            raise _Fail("fault", f"wrong Content-Type {mime or '(none)'}", status)
        stream = resp.stream
        if not isinstance(stream, httpx.SyncByteStream):
            resp.close()
            raise _Fail("fault", "inner transport returned an async stream")
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115
        digest, n = hashlib.sha256(), 0
        try:
            try:
                for chunk in stream:
                    if state.cancel.is_set():
                        raise _Fail("cancelled", "cancelled: another mirror answered first")
                    spool.write(chunk)
                    digest.update(chunk)
                    n += len(chunk)
            except httpx.TimeoutException as exc:
                raise _Fail("fault", f"body stalled: {exc}") from exc
            except (httpx.TransportError, OSError) as exc:
                raise _Fail("fault", f"body cut short after {n} bytes: {exc}") from exc
            finally:
                resp.close()
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and status != 304 and int(declared) != n:
                raise _Fail("fault", f"body cut short: {n} of {declared} bytes")
            encoding = resp.headers.get("content-encoding", "identity").strip().lower()
            body: bytes | None = None
            if res.kind == KIND_PAGE or (expect and encoding not in ("", "identity")):
                spool.seek(0)
                raw = spool.read()
                body = raw if encoding in ("", "identity") else httpx.Response(
                    200, headers={"content-encoding": encoding}, content=raw).content
            if expect and status == 200:
                got = digest.hexdigest() if body is None else hashlib.sha256(body).hexdigest()
                if got != expect.lower():
                    raise _Fail("fault", f"sha256 mismatch (got {got[:12]}…, want "
                                f"{expect[:12]}…)", status)
        except BaseException:
            spool.close()
            raise
        out = httpx.Response(
            status, headers=resp.headers, stream=_SpoolStream(spool),
            extensions={"pip_91n.mirror": mirror.name, "pip_91n.url": url,
                        "http_version": resp.extensions.get("http_version", b"HTTP/1.1")},
        )
        return _Stored(out, url, n, latency, body if is_page else None)
