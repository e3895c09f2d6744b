"""A real PyPI-like mirror on 127.0.0.1: threaded HTTP/1.1, faults injectable while it runs.

    with MirrorServer(index, faults=[Throttle(rate=1e6, kind="file")]) as mirror:
        pip install --index-url mirror.simple_url ...
        mirror.stats().bytes_by_file["lib_a-1.0-py3-none-any.whl"]

Everything is bounded: idle keep-alive connections time out, black holes close after their hold
time, every wait ends at :meth:`MirrorServer.stop`, and threads are daemons.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import faults as F
from .index import DistFile, PackageIndex, normalize
from .pages import JSON_V1, Layout, file_path, negotiate, project_page, root_page
from .stats import RequestRecord, ServerStats, StatsRecorder
from .wire import BodyPlan, send_body

__all__ = ["MirrorServer"]

LAST_MODIFIED = "Thu, 01 Jan 2026 00:00:00 GMT"
_names = itertools.count(1)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    mirror: MirrorServer
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.mirror.io_timeout)  # the handshake runs in this thread
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):  # a client that does not trust us: its problem
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        import traceback

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client-side disconnects are expected, faults cause them
            return
        print(f"{self.mirror.name}: error serving {client_address}", file=sys.stderr)
        traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without this each keep-alive request waits
    # for the client's delayed ACK (~40 ms)
    disable_nagle_algorithm = True
    server_version = "pip91n-harness-mirror/1"
    server: _HTTPServer

    def setup(self) -> None:
        self.timeout = self.server.mirror.io_timeout  # type: ignore[misc]
        super().setup()
        self.server.mirror._connections.add(self.connection)

    def finish(self) -> None:
        self.server.mirror._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client reset or vanished between requests: nothing to answer
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.mirror._handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.mirror._handle(self, head=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MirrorServer:
    """A PEP 503/691/658 mirror of a :class:`PackageIndex` with fault injection.

    ``layout``: ``"pypi"`` (``/packages/aa/bb/<hash>/<file>``) or ``"flat"`` (``/files/<file>``).
    ``absolute_urls``: pages link files by absolute URL (like pypi.org) instead of relative
    ``../../packages/...`` (like TUNA). ``io_timeout`` bounds every socket read/write.
    ``tls``: a server-side context (``trustme``'s, say): the mirror then speaks https.
    """

    def __init__(
        self,
        index: PackageIndex,
        *,
        faults: Iterable[F.Fault] = (),
        layout: Layout = "pypi",
        absolute_urls: bool = False,
        name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        io_timeout: float = 20.0,
        page_cache_control: str = "max-age=600, public",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if layout not in ("pypi", "flat"):
            raise ValueError(f"layout must be 'pypi' or 'flat', not {layout!r}")
        self.index = index
        self.layout: Layout = layout
        self.absolute_urls = absolute_urls
        self.name = name or f"mirror-{next(_names)}"
        self.io_timeout = io_timeout
        self.page_cache_control = page_cache_control
        self._plan = F.FaultPlan(faults)
        self._recorder = StatsRecorder()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _Handler, bind_and_activate=True)
        self._httpd.mirror = self
        self._httpd.tls = tls
        self._thread: threading.Thread | None = None
        self.host: str = self._httpd.server_address[0]  # type: ignore[assignment]
        self.port: int = self._httpd.server_address[1]

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` with ``tls``; no trailing slash)."""
        scheme = "https" if self._httpd.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def simple_url(self) -> str:
        """The index URL for pip: ``http://127.0.0.1:<port>/simple/``."""
        return f"{self.url}/simple/"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> MirrorServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.name}-serve",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake every delayed response and close every open connection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __del__(self) -> None:  # a server never started or stopped must not leak its socket
        httpd = getattr(self, "_httpd", None)
        if httpd is not None and not self._stopping.is_set() and self._thread is None:
            httpd.server_close()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MirrorServer {self.name} {self.url} layout={self.layout} faults={self.faults}>"

    # -- faults -------------------------------------------------------------------------------
    @property
    def faults(self) -> tuple[F.Fault, ...]:
        return self._plan.faults

    def set_faults(self, *faults: F.Fault) -> None:
        """Replace the faults (and their ``times`` counters); no argument clears them."""
        self._plan.set(faults)

    def add_fault(self, fault: F.Fault) -> None:
        self._plan.add(fault)

    def clear_faults(self) -> None:
        self._plan.set(())

    # -- stats --------------------------------------------------------------------------------
    def stats(self, wait: float = 2.0) -> ServerStats:
        """A snapshot of the counts, after waiting up to ``wait`` s for requests in progress
        to finish (black-holed requests are not waited for)."""
        return self._recorder.snapshot(wait)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self._recorder.wait_idle(timeout)

    def reset_stats(self) -> None:
        self._recorder.reset()

    @property
    def requests(self) -> Counter[str]:
        """Requests per path (live snapshot)."""
        return Counter(self.stats().requests)

    @property
    def requests_by_kind(self) -> Counter[str]:
        return Counter(self.stats().by_kind)

    @property
    def bytes_by_file(self) -> Counter[str]:
        """Body bytes written per file name (distribution files and ``.metadata`` files)."""
        return Counter(self.stats().bytes_by_file)

    # -- URLs ---------------------------------------------------------------------------------
    def file_url(self, filename: str) -> str:
        dist = self.index.get(filename)
        if dist is None:
            raise KeyError(filename)
        return self.url + file_path(dist, self.layout)

    def project_url(self, project: str) -> str:
        return f"{self.simple_url}{normalize(project)}/"

    # -- request handling ---------------------------------------------------------------------
    def _stale_files(self, project: str, stale: list[F.Stale]) -> tuple[list[DistFile], int]:
        files = self.index.files(project)
        serial = self.index.project_serial(project)
        if not any(s.covers(project) for s in stale) or not files:
            return files, serial
        newest = files[-1].version
        kept = [f for f in files if f.version != newest]
        lower = max((f.serial for f in kept), default=0)
        return kept, min(lower, serial - 1) if lower else max(serial - 1, 0)

    def _route(self, path: str) -> tuple[str, str | None, DistFile | None]:
        """(kind, project, file) of a path; kind ``other`` for unknown paths."""
        if path == "/simple" or path.startswith("/simple/"):
            return "page", None, None
        is_meta = path.endswith(".metadata")
        filename = path.rsplit("/", 1)[-1]
        if is_meta:
            filename = filename[: -len(".metadata")]
        dist = self.index.get(filename)
        kind = "metadata" if is_meta else "file"
        if not path.startswith(("/packages/", "/files/")):
            kind = "other"
        if dist is not None and file_path(dist, self.layout) != path[: len(path) - 9 * is_meta]:
            dist = None
        return kind, None if dist is None else dist.project, dist

    def _handle(self, h: _Handler, *, head: bool) -> None:
        started = time.monotonic()
        split = urlsplit(h.path)
        path = unquote(split.path)
        kind, _, dist = self._route(path)
        taken = self._plan.take(kind, path)
        rec = RequestRecord(h.command, path, kind, name=self.name)
        rec.faults = tuple(type(f).__name__ for f in taken)
        self._recorder.begin(rec)
        try:
            self._serve(h, head, rec, split.query, path, kind, dist, taken)
        except OSError as exc:  # the client went away, or a reset we made
            rec.error = rec.error or f"{type(exc).__name__}: {exc}"
            h.close_connection = True
        finally:
            rec.duration = time.monotonic() - started
            self._recorder.end(rec)

    def _serve(
        self,
        h: _Handler,
        head: bool,
        rec: RequestRecord,
        query: str,
        path: str,
        kind: str,
        dist: DistFile | None,
        taken: list[F.Fault],
    ) -> None:
        hole = next((f for f in taken if isinstance(f, F.BlackHole)), None)
        if hole is not None:
            self._recorder.park(rec)
            self._stopping.wait(hole.hold)
            rec.status = 0
            h.close_connection = True
            return
        delay = sum(f.delay for f in taken if isinstance(f, F.SlowFirstByte))
        if delay:
            self._stopping.wait(delay)
        status_fault = next((f for f in taken if isinstance(f, F.HTTPStatus)), None)
        if status_fault is not None:
            extra = {} if status_fault.retry_after is None else {"Retry-After": str(status_fault.retry_after)}
            self._simple(h, head, rec, status_fault.status, f"injected {status_fault.status}\n", extra)
            return
        stale = [f for f in taken if isinstance(f, F.Stale)]
        ctype_fault = next((f for f in taken if isinstance(f, F.WrongContentType)), None)
        headers: dict[str, str] = {}
        if kind == "page":
            resolved = self._page(h, head, rec, query, path, stale)
            if resolved is None:
                return
            content_type, body, serial = resolved
            headers = {"Content-Type": content_type, "X-PyPI-Last-Serial": str(serial),
                       "Cache-Control": self.page_cache_control, "Vary": "Accept, Accept-Encoding"}
            plan = BodyPlan.from_bytes(body)
        else:
            if dist is not None and stale:
                hidden = {f.filename for f in self.index.files(dist.project)} - {
                    f.filename for f in self._stale_files(dist.project, stale)[0]}
                if dist.filename in hidden:
                    dist = None
            if kind == "metadata" and any(isinstance(f, F.MetadataMissing) for f in taken):
                dist = None
            if dist is None or kind == "other" or (kind == "metadata" and dist.metadata is None):
                self._simple(h, head, rec, 404, "not found\n")
                return
            rec.filename = dist.filename + (".metadata" if kind == "metadata" else "")
            self._recorder.add_bytes(rec, 0)  # a requested file shows up, even with 0 bytes
            if kind == "metadata":
                assert dist.metadata is not None
                plan = BodyPlan.from_bytes(dist.metadata)
                headers = {"Content-Type": "application/octet-stream"}
            else:
                plan = BodyPlan.from_file(dist)
                headers = {"Content-Type": "application/octet-stream"}
            headers["Cache-Control"] = "max-age=365000000, immutable, public"
            headers["Last-Modified"] = LAST_MODIFIED
            headers["Accept-Ranges"] = "bytes"
            headers["ETag"] = plan.etag
            rng = plan.select_range(h.headers.get("Range"), h.headers.get("If-Range"), LAST_MODIFIED)
            if rng == "unsatisfiable":
                self._simple(h, head, rec, 416, "range not satisfiable\n",
                             {"Content-Range": f"bytes */{plan.size}"})
                return
            if rng is not None:
                plan = plan.ranged(*rng)
                headers["Content-Range"] = f"bytes {rng[0]}-{rng[1] - 1}/{plan.size}"
        if ctype_fault is not None:
            headers["Content-Type"] = ctype_fault.content_type
        status = 206 if "Content-Range" in headers else 200
        rec.status = status
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(plan.length))
        h.end_headers()
        if head:
            return
        send_body(h, plan, taken, rec, self._recorder, self._stopping)

    def _page(
        self, h: _Handler, head: bool, rec: RequestRecord, query: str, path: str, stale: list[F.Stale]
    ) -> tuple[str, bytes, int] | None:
        parts = [p for p in path.split("/") if p]
        if not path.endswith("/"):
            self._redirect(h, head, rec, path + "/" + (f"?{query}" if query else ""))
            return None
        fmt = parse_qs(query).get("format", [None])[0]
        fmt = fmt.replace(" ", "+") if fmt else fmt  # an unencoded "+" arrives as a space
        content_type = negotiate(h.headers.get("Accept"), fmt)
        if content_type is None:
            self._simple(h, head, rec, 406, "not acceptable\n")
            return None
        base = self.url if self.absolute_urls else None
        if len(parts) == 1:
            projects = self.index.projects()
            serials = {p: self._stale_files(p, stale)[1] for p in projects}
            serial = max(serials.values(), default=0) if stale else self.index.serial
            body = root_page(projects=projects, serials=serials.__getitem__, serial=serial,
                             content_type=content_type)
            return content_type, body, serial
        if len(parts) != 2:
            self._simple(h, head, rec, 404, "not found\n")
            return None
        project = parts[1]
        if normalize(project) != project:
            self._redirect(h, head, rec, f"/simple/{normalize(project)}/")
            return None
        if project not in self.index:
            self._simple(h, head, rec, 404, "not found\n")
            return None
        files, serial = self._stale_files(project, stale)
        body = project_page(name=project, display=self.index.display_name(project), files=files,
                            serial=serial, content_type=content_type, layout=self.layout, base=base)
        if content_type != JSON_V1:
            content_type += "; charset=utf-8"
        return content_type, body, serial

    def _redirect(self, h: _Handler, head: bool, rec: RequestRecord, location: str) -> None:
        self._simple(h, head, rec, 301, f"moved to {location}\n", {"Location": location})

    def _simple(
        self, h: _Handler, head: bool, rec: RequestRecord, status: int, text: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        body = text.encode()
        rec.status = status
        h.send_response(status)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            send_body(h, BodyPlan.from_bytes(body), [], rec, self._recorder, self._stopping)
