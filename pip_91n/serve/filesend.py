"""The file routes of the local index: ``/files/<project>/<sha256>/<filename>`` and its
``.metadata``. Every file passes ``FileServer.release_file`` (the gate) first.

A large file being downloaded goes out as it arrives (``STREAM_FROM``); if the download
fails (every source, or a sha256 mismatch after bytes went out), the connection is cut: no
client sees such a file complete. Smaller files go out once verified. ``Range`` (one range)
and ``HEAD`` are honoured; a range goes out once the whole file is verified.
"""

from __future__ import annotations

import os

import anyio
from starlette.responses import Response

from pip_91n._urls import redact_text
from pip_91n.errors import AllMirrorsFailed, HashNotConfirmed
from pip_91n.serve.exchange import (
    Aborted,
    Exchange,
    Pool,
    no_receive,
    raw_headers,
    text,
    why,
)
from pip_91n.serve.files import FileServer, NotListed
from pip_91n.serve.flights import FlightFailed, Reader
from pip_91n.serve.http import FILE_CACHE, ByteRange, etag_matches, parse_range
from pip_91n.serve.paths import Route
from pip_91n.serve.simple import Entry

__all__ = ["STREAM_FROM", "FileRoutes"]

#: Files this large stream to the client as they download; smaller ones (most wheels) go
#: out once verified, so a mirror that sends a corrupt copy never costs a client a retry.
STREAM_FROM = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_OCTETS = "application/octet-stream"


#: Why a file or its metadata cannot be handed out (``_refusal`` says it to the client).
_REFUSED = (NotListed, HashNotConfirmed, AllMirrorsFailed, FlightFailed)


def _refusal(ex: Exchange, exc: Exception) -> Response:
    """The answer when a file or its metadata cannot be handed out: 404 when no page names
    it, else 502 with why (no credential in it)."""
    if isinstance(exc, NotListed):
        return text(404, "not found")
    if isinstance(exc, HashNotConfirmed):
        ex.note = "hash not confirmed"
        return text(502, redact_text(str(exc)))
    if isinstance(exc, AllMirrorsFailed) and exc.attempts:
        return text(502, f"every mirror failed: {why(exc)}")
    ex.note = "download failed"
    first = (redact_text(str(exc)).splitlines() or [type(exc).__name__])[0]
    return text(502, f"the file could not be fetched whole and verified: {first}")


class FileRoutes:
    """The handlers of files and metadata over a ``FileServer``."""

    def __init__(self, files: FileServer, pool: Pool) -> None:
        self.files, self.pool = files, pool

    def _released(self, route: Route) -> Entry:
        assert route.project is not None and route.filename is not None
        return self.files.release_file(route.project, route.filename, route.sha256)

    def _metadata_of(self, route: Route) -> tuple[Entry, bytes | None]:
        entry = self._released(route)
        if entry.metadata is None:
            return entry, None
        return entry, self.files.metadata(route.project or "", entry)

    async def metadata(self, ex: Exchange, route: Route, query: str) -> Response:
        try:
            entry, data = await self.pool.run(self._metadata_of, route)
        except _REFUSED as exc:
            return _refusal(ex, exc)
        if data is None:
            return text(404, "no core metadata for this file")
        headers = {"Cache-Control": FILE_CACHE, "X-Content-Type-Options": "nosniff"}
        if entry.metadata:
            headers["ETag"] = f'"{entry.metadata}"'
        return Response(data, 200, headers=headers, media_type=_OCTETS)

    def _prepare(self, route: Route, method: str, ranged: bool) -> _Prepared:
        """Everything before the first byte of a file, in one trip to the worker pool: the
        gate, the cache, and (for a small file, a range or HEAD) the verified download."""
        entry = self._released(route)
        if entry.sha256 is None:
            return _Prepared(entry)
        cached = self.files.cache.open(entry.sha256)
        if cached is None and method == "HEAD" and entry.size is not None:
            return _Prepared(entry, size=entry.size)
        if cached is None:
            reader = self.files.join(route.project or "", entry)
            small = entry.size is not None and entry.size < STREAM_FROM
            if not (ranged or small or method == "HEAD"):
                return _Prepared(entry, reader=reader)
            try:  # a part of a file, and a small file, go out once the whole is verified
                if not reader.wait_done(3600.0):
                    raise FlightFailed("the download did not finish")
                fd = reader.dup()
            finally:
                reader.close()
            cached = fd, os.fstat(fd).st_size
        fd, size = cached
        if size <= _CHUNK and not ranged and method != "HEAD":
            try:
                return _Prepared(entry, size=size, data=os.pread(fd, size, 0))
            finally:
                os.close(fd)
        return _Prepared(entry, fd=fd, size=size)

    async def file(self, ex: Exchange, route: Route, query: str) -> Response | None:
        method = ex.scope["method"]
        try:
            with anyio.CancelScope(shield=True):  # what it opens must come back to be closed
                prep = await self.pool.run(self._prepare, route, method,
                                          bool(ex.headers.get("range")))
        except _REFUSED as exc:
            return _refusal(ex, exc)
        entry = prep.entry
        if entry.sha256 is None:
            return await self._unhashed(route, entry)
        etag = f'"{entry.sha256}"'
        headers = {"ETag": etag, "Cache-Control": FILE_CACHE, "Accept-Ranges": "bytes",
                   "Content-Type": _OCTETS, "X-Content-Type-Options": "nosniff"}
        if prep.fd is not None:
            if etag_matches(ex.headers.get("if-none-match"), etag):
                os.close(prep.fd)
                return Response(status_code=304, headers=headers)
            await self._send_fd(ex, prep.fd, prep.size or 0, headers, close=True)
            return None
        if prep.reader is None:
            if etag_matches(ex.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            headers["Content-Length"] = str(prep.size)
            return Response(prep.data or b"", 200, headers=headers)
        reader = prep.reader
        try:
            if etag_matches(ex.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            await self._stream(ex, reader, headers)
            return None
        except FlightFailed as exc:
            if ex.status:
                raise Aborted(redact_text(str(exc))) from None
            return _refusal(ex, exc)
        finally:
            reader.close()  # at once, even when the request was cancelled

    async def _stream(self, ex: Exchange, reader: Reader, headers: dict[str, str]) -> None:
        size = await self.pool.run(reader.wait_size, 3600.0)
        if size is not None:
            headers["Content-Length"] = str(size)
        await ex.send({"type": "http.response.start", "status": 200,
                       "headers": raw_headers(headers)})
        while True:
            data = await self.pool.run(reader.read, _CHUNK, 1.0)
            if data is None:
                continue
            if not data:
                break
            await ex.send({"type": "http.response.body", "body": data, "more_body": True})
        await ex.send({"type": "http.response.body", "body": b""})

    async def _send_fd(self, ex: Exchange, fd: int, size: int, headers: dict[str, str],
                       *, close: bool) -> None:
        try:
            wanted = parse_range(ex.headers.get("range"), size)
            if_range = ex.headers.get("if-range")
            if if_range and not etag_matches(if_range, headers["ETag"]):
                wanted = None
            if wanted is False:
                headers["Content-Range"] = f"bytes */{size}"
                await text(416, "range not satisfiable", **headers)(
                    ex.scope, no_receive, ex.send)
                return
            part = wanted if isinstance(wanted, ByteRange) else ByteRange(0, size, size)
            headers["Content-Length"] = str(part.end - part.start)
            status = 200
            if isinstance(wanted, ByteRange):
                status, headers["Content-Range"] = 206, part.content_range
            await ex.send({"type": "http.response.start", "status": status,
                           "headers": raw_headers(headers)})
            if ex.scope["method"] != "HEAD":
                for start in range(part.start, part.end, _CHUNK):
                    n = min(_CHUNK, part.end - start)
                    data = await self.pool.run(os.pread, fd, n, start)
                    if len(data) != n:
                        raise Aborted("a cached file shrank while being sent")
                    await ex.send({"type": "http.response.body", "body": data,
                                   "more_body": True})
            await ex.send({"type": "http.response.body", "body": b""})
        finally:
            if close:
                os.close(fd)

    async def _unhashed(self, route: Route, entry: Entry) -> Response:
        try:
            fetched = await self.pool.run(self.files.unhashed, route.project, entry)
        except AllMirrorsFailed as exc:
            return text(502, f"every mirror failed: {why(exc)}")
        try:
            if fetched.status != 200:
                return text(404, "not found")
            data = await self.pool.run(fetched.content)
        finally:
            fetched.close()
        return Response(data, 200, headers={"Cache-Control": "no-store"}, media_type=_OCTETS)


class _Prepared:
    """A file ready to go: its entry and one of: ``data`` (small, whole), ``fd`` (with
    ``size``; closed by the sender), ``reader`` (a download to stream), or only ``size``
    (HEAD of a file not fetched yet)."""

    __slots__ = ("data", "entry", "fd", "reader", "size")

    def __init__(self, entry: Entry, *, data: bytes | None = None, fd: int | None = None,
                 size: int | None = None, reader: Reader | None = None) -> None:
        self.entry, self.data, self.fd, self.size, self.reader = entry, data, fd, size, reader
