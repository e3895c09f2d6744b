"""One attempt: fetch one resource from one mirror, verify it, or say why not.

Used by ``pip_91n.chain.failover.Failover`` (which runs attempts in threads and races them).
An ``Attempter`` is built from what it uses: the run's memory (known files, serials), the
wire of each mirror and the timeout. Requests go out through the mirror's ``Wire``; wire
errors become failure reasons here, at one boundary.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Literal

from pip_91n._urls import SECRET_HEADERS, same_origin, split_credentials, split_sha256
from pip_91n.chain.memory import KnownFiles, Serials
from pip_91n.downloads.files import sha256_mismatch
from pip_91n.index.pages import JSON_TYPE, ProjectPage, is_page_content_type, parse_page
from pip_91n.index.routing import (
    KIND_FILE,
    KIND_INDEX,
    KIND_METADATA,
    KIND_PAGE,
    Resource,
    resource_url,
)
from pip_91n.index.staleness import judge_page
from pip_91n.net.wire import (
    READ_TIMEOUT,
    Wire,
    WireError,
    WireResponse,
    decode_body,
    describe,
    follow,
)
from pip_91n.settings.catalog import Mirror

__all__ = ["PIN_EXTENSION", "Ask", "AttemptState", "Attempter", "Fetched", "Outcome",
           "OutcomeKind"]

log = logging.getLogger("pip_91n")

PIN_EXTENSION = "pip_91n.pin"
_SPOOL_MAX = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_DROP = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_FILE_DROP = _DROP | {"range", "if-range", "accept-encoding"}
_CROSS_DROP = SECRET_HEADERS | {"if-none-match", "if-modified-since"}  # stay on their origin
_PAGE_ACCEPT = (
    f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


class Ask:
    """What the caller asked for: the URL as asked (a ``#sha256=`` fragment names the
    file's hash), its request headers, and ``pin``, the exact version a project page must
    list (a ``packaging`` Version or a string) while another mirror may have it."""

    __slots__ = ("headers", "pin", "url")

    def __init__(self, url: str, headers: Sequence[tuple[str, str]] = (),
                 pin: Any = None) -> None:
        self.url, self.headers, self.pin = url, list(headers), pin

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


class Fetched:
    """A verified answer: status, headers (lower-case names), the body as the mirror sent
    it (``chunks``; spooled to disk above 16 MiB), the URL and mirror that gave it, and the
    seconds until its headers came (``latency``). ``content()`` is the body with its
    Content-Encoding undone."""

    __slots__ = ("body", "headers", "latency", "mirror", "nbytes", "reason", "spool", "status",
                 "url")

    def __init__(self, status: int, headers: dict[str, str], spool: IO[bytes], *,
                 reason: str = "", url: str = "", mirror: str = "", nbytes: int = 0,
                 body: bytes | None = None, latency: float | None = None) -> None:
        self.status, self.headers, self.spool, self.reason = status, headers, spool, reason
        self.url, self.mirror, self.nbytes, self.body = url, mirror, nbytes, body
        self.latency = latency

    def chunks(self) -> Iterator[bytes]:
        self.spool.seek(0)
        while chunk := self.spool.read(_CHUNK):
            yield chunk

    def content(self) -> bytes:
        if self.body is None:
            self.spool.seek(0)
            self.body = decode_body(self.spool.read(), self.headers.get("content-encoding"))
        return self.body

    def close(self) -> None:
        self.spool.close()


class AttemptState:
    """Shared between an attempt's thread and the race: cancel flag, headers-seen flag, and
    the URL being asked (for the log line of an attempt that never answered)."""

    __slots__ = ("cancel", "headers", "url")

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.headers = False
        self.url = ""


#: How one attempt ended: ok, missing (404/410 or not on the page), pin (the page lacks the
#: pinned version), stale, fault (counts against the mirror's health), cancelled.
OutcomeKind = Literal["ok", "missing", "pin", "stale", "fault", "cancelled"]


class Outcome:
    """How one attempt ended (``kind``), why, and what it fetched."""

    __slots__ = ("fetched", "kind", "latency", "mirror", "nbytes", "reason", "seconds",
                 "status", "url")

    def __init__(self, mirror: Mirror, kind: OutcomeKind, reason: str = "", url: str = "",
                 status: int | None = None, nbytes: int = 0, seconds: float = 0.0,
                 latency: float | None = None, fetched: Fetched | None = None) -> None:
        self.mirror, self.kind, self.reason, self.url, self.status = (mirror, kind, reason,
                                                                      url, status)
        self.nbytes, self.seconds, self.latency, self.fetched = nbytes, seconds, latency, fetched

    def __repr__(self) -> str:
        return f"Outcome({self.mirror.name}, {self.kind}, {self.reason!r})"


class _Fail(Exception):
    def __init__(self, kind: OutcomeKind, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


def _parse(got: Fetched) -> ProjectPage:
    """The project page ``got`` holds; a page that cannot be read is the mirror's fault."""
    try:
        return parse_page(got.body or b"", got.url, got.headers.get("content-type"),
                          got.headers)
    except ValueError as exc:
        got.close()
        raise _Fail("fault", f"unreadable page: {exc}", got.status) from exc


def _mime(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


class Attempter:
    """Runs attempts. ``files`` and ``serials`` are the run's memory, ``wire_for(mirror)``
    the wire that reaches a mirror, ``timeout`` the connect and first-byte bound."""

    def __init__(self, files: KnownFiles, serials: Serials, wire_for: Callable[[Mirror], Wire],
                 timeout: float) -> None:
        self.files, self.serials = files, serials
        self.wire_for, self.timeout = wire_for, timeout

    def attempt(self, mirror: Mirror, res: Resource, ask: Ask, state: AttemptState) -> Outcome:
        t0 = time.monotonic()
        url = ""
        try:
            if res.kind in (KIND_PAGE, KIND_INDEX):
                url = resource_url(res, mirror) or ""
                got = self._fetch(mirror, url, self._headers(ask, url, res), res, state)
                kind, reason = self._judge(mirror, res, ask, got)
            else:
                got = self._file(mirror, res, ask, state)
                kind, reason = "ok", ""
            return Outcome(mirror, kind, reason, got.url, got.status, got.nbytes,
                           time.monotonic() - t0, got.latency, got)
        except _Fail as f:
            return Outcome(mirror, f.kind, f.reason, url, f.status, 0, time.monotonic() - t0)
        except Exception as exc:  # a bug must cost one mirror, not the install
            log.exception("pip-91n: internal error while trying %s", mirror.name)
            return Outcome(mirror, "fault", f"internal error: {exc!r}", url, None, 0,
                           time.monotonic() - t0)

    def read_page(self, mirror: Mirror, project: str, user_agent: str | None = None
                  ) -> tuple[ProjectPage | None, str | None]:
        """Read ``mirror``'s page of ``project`` into the known files: (the page, None), or
        (None, why not)."""
        try:
            return self._project_page(mirror, project, user_agent, AttemptState()), None
        except _Fail as f:
            return None, f.reason
        except Exception as exc:  # one mirror's page: never the install
            return None, f"{type(exc).__name__}: {exc}"

    # -- pages -----------------------------------------------------------------------------

    def _judge(self, mirror: Mirror, res: Resource, ask: Ask, got: Fetched
               ) -> tuple[OutcomeKind, str]:
        if res.kind != KIND_PAGE or got.body is None or res.project is None:
            return "ok", ""
        page = _parse(got)
        self.files.learn(mirror.name, page, res.project)
        verdict = judge_page(
            seen_serial=self.serials.seen(res.project), serial=page.serial,
            filenames=[f.filename for f in page.files], pin=ask.pin,
        )
        if verdict.serve:
            self.serials.accept(res.project, page.serial)
            return "ok", ""
        if verdict.reason.startswith("stale"):
            got.close()
            raise _Fail("stale", verdict.reason, got.status)
        return "pin", verdict.reason

    def _project_page(self, mirror: Mirror, project: str, user_agent: str | None,
                      state: AttemptState) -> ProjectPage:
        """``mirror``'s page of ``project``, learned into the known files."""
        page_res = Resource(KIND_PAGE, project=project, mirror=mirror.name)
        url = resource_url(page_res, mirror) or ""
        headers = [("accept", _PAGE_ACCEPT)]
        if user_agent:
            headers.append(("user-agent", user_agent))
        got = self._fetch(mirror, url, headers, page_res, state)
        got.close()
        page = _parse(got)
        self.files.learn(mirror.name, page, project)
        return page

    # -- files -----------------------------------------------------------------------------

    def _file(self, mirror: Mirror, res: Resource, ask: Ask, state: AttemptState) -> Fetched:
        assert res.filename is not None
        # The first hash seen for a filename stays the expected one even when a later page
        # disagreed (KnownFiles never takes URLs from a disagreeing mirror): never mix files.
        usable = self.files.get(res.filename)
        meta = res.kind == KIND_METADATA
        expect = (usable.metadata_sha256 if meta else usable.sha256) if usable else None
        asked, named = split_sha256(ask.url)
        if not meta and named:
            expect = named
        if res.mirror == mirror.name:
            direct: str | None = asked
        else:
            direct = resource_url(res, mirror, usable.urls if usable else None)
        if direct is not None:
            try:
                return self._fetch(mirror, direct, self._headers(ask, direct, res), res,
                                   state, expect)
            except _Fail as f:
                if f.kind != "missing" or res.project is None:
                    raise
        if res.project is None:
            raise _Fail("missing", "cannot tell which project page lists this file", 404)
        if self.files.page_read(mirror.name, res.project) and not (usable and mirror.name in
                                                                      usable.urls):
            raise _Fail("missing", f"{res.filename} is not on {mirror.name}'s project page", 404)
        file_sha = usable.sha256 if usable else (None if meta else expect)
        found = self._lookup(mirror, res.project, res.filename, file_sha, ask, state)
        if found is None:
            raise _Fail("missing", f"{res.filename} is not on {mirror.name}'s project page", 404)
        url = found + (".metadata" if meta else "")
        if url == direct:
            raise _Fail("missing", f"HTTP 404 for {res.filename}", 404)
        return self._fetch(mirror, url, self._headers(ask, url, res), res, state, expect)

    def _lookup(self, mirror: Mirror, project: str, filename: str, sha256: str | None,
                ask: Ask, state: AttemptState) -> str | None:
        """Find ``filename`` (with ``sha256`` when known) on ``mirror``'s own project page."""
        try:
            page = self._project_page(mirror, project, ask.header("user-agent"), state)
        except _Fail as f:
            if f.kind == "missing":
                return None
            raise
        found = page.find(filename, sha256)
        return found.url if found is not None else None

    # -- the wire --------------------------------------------------------------------------

    def _headers(self, ask: Ask, url: str, res: Resource) -> list[tuple[str, str]]:
        """The caller's headers for ``url``: conditional and secret ones only to the origin
        it asked, and files always whole and undecoded."""
        is_file = res.kind in (KIND_FILE, KIND_METADATA)
        drop = _FILE_DROP if is_file else _DROP
        if not same_origin(ask.url, url):
            drop = drop | _CROSS_DROP
        items = [(k, v) for k, v in ask.headers if k.lower() not in drop]
        if is_file:
            items.append(("accept-encoding", "identity"))
        return items

    def _creds(self, mirror: Mirror, url: str) -> tuple[str, str] | None:
        own_url, own = split_credentials(mirror.simple_url)
        return own if own and same_origin(own_url, url) else None

    def _fetch(
        self, mirror: Mirror, url: str, headers: list[tuple[str, str]], res: Resource,
        state: AttemptState, expect: str | None = None,
    ) -> Fetched:
        timeout = self.timeout
        started = time.monotonic()
        state.url = url
        try:
            resp, final = follow(self.wire_for(mirror), url, headers, timeout,
                                 credentials=lambda bare: self._creds(mirror, bare))
        except (WireError, OSError) as exc:
            raise _Fail("fault", describe(exc, timeout)) from exc
        state.headers = True
        return self._read(resp, final, mirror, res, state, expect, time.monotonic() - started)

    def _read(
        self, resp: WireResponse, url: str, mirror: Mirror, res: Resource,
        state: AttemptState, expect: str | None, latency: float,
    ) -> Fetched:
        status = resp.status
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
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115
        digest, n = hashlib.sha256(), 0
        try:
            try:
                for chunk in resp:
                    if state.cancel.is_set():
                        raise _Fail("cancelled", "cancelled: another mirror answered first")
                    spool.write(chunk)
                    digest.update(chunk)
                    n += len(chunk)
            except WireError as exc:
                if exc.kind == READ_TIMEOUT:
                    raise _Fail("fault", f"body stalled: {exc}") from exc
                raise _Fail("fault", f"body cut short after {n} bytes: {exc}") from exc
            except OSError as exc:
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
                try:
                    body = decode_body(spool.read(), encoding)
                except ValueError as exc:
                    raise _Fail("fault", str(exc), status) from exc
            if expect and status == 200:
                got = digest.hexdigest() if body is None else hashlib.sha256(body).hexdigest()
                if got != expect.lower():
                    raise _Fail("fault", sha256_mismatch(got, expect), status)
        except BaseException:
            spool.close()
            raise
        return Fetched(status, resp.headers, spool, reason=resp.reason, url=url,
                       mirror=mirror.name, nbytes=n, body=body if is_page else None,
                       latency=latency)
