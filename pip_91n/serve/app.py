"""The ASGI app of ``pip-91n serve`` (Starlette's request and response types; runs on
uvicorn, see ``pip_91n.serve.runner``).

Read-only: GET and HEAD, nothing else (405), no request body (413), no listing of anything
but the index. The blocking chain work (pages, the gate, downloads) runs in a worker
pool (``exchange.THREADS`` threads); the event loop only moves bytes, so hundreds of
requests can be in flight. Files: ``pip_91n.serve.filesend``; what handlers share:
``pip_91n.serve.exchange``.
"""

from __future__ import annotations

import logging
import time

import anyio
from starlette.responses import Response

from pip_91n.errors import AllMirrorsFailed
from pip_91n.serve.accesslog import AccessLog, printable
from pip_91n.serve.exchange import (
    Aborted,
    Exchange,
    Pool,
    Receive,
    Scope,
    Send,
    no_receive,
    raw_headers,
    text,
    why,
)
from pip_91n.serve.files import FileServer
from pip_91n.serve.filesend import FileRoutes
from pip_91n.serve.http import PAGE_FRESH, ROOT_FRESH, etag_matches, negotiate, page_cache_control
from pip_91n.serve.paths import Route, parse_path
from pip_91n.serve.roots import render_root
from pip_91n.serve.upstream import Chain

__all__ = ["MAX_HEADERS", "MAX_PATH", "ServeApp"]

log = logging.getLogger("pip_91n")

#: Bounds of a request (uvicorn's h11 bounds what it buffers before the app sees it).
MAX_PATH = 4096
MAX_HEADERS = 16 * 1024
_STALE_WARNING = '110 pip-91n "Response is Stale"'


class ServeApp:
    """The app over a ``Chain`` and a ``FileServer``; ``log`` gets one line per request."""

    def __init__(self, chain: Chain, files: FileServer, log: AccessLog) -> None:
        self.chain, self.log, self.file_server = chain, log, files
        self.pool = Pool()
        self.files = FileRoutes(files, self.pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        t0 = time.monotonic()
        ex = Exchange(scope, send)
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, ex, tg.cancel_scope)
                try:
                    await self._handle(ex, path)
                except Aborted as exc:  # return unfinished: uvicorn cuts the connection
                    ex.note = f"aborted: {exc}"
                except Exception as exc:
                    log.exception("pip-91n serve: internal error on %s", printable(path))
                    ex.note = f"internal error: {type(exc).__name__}"
                    if not ex.status:
                        await text(500, "internal error")(ex.scope, no_receive, ex.send)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            if ex.disconnected and not ex.note:
                ex.note = "client went away"
            client = scope.get("client") or ("-", 0)
            self.log.request(f"{client[0]}:{client[1]}", scope["method"], path, ex.status,
                             ex.nbytes, time.monotonic() - t0, ex.note)

    async def _watch(self, receive: Receive, ex: Exchange, scope: anyio.CancelScope) -> None:
        """Cancel the request when the client disconnects (uvicorn then drops our writes)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                ex.disconnected = not ex.complete
                scope.cancel()
                return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.file_server.close()
                await anyio.to_thread.run_sync(self.chain.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- dispatch --------------------------------------------------------------------------

    async def _handle(self, ex: Exchange, path: str) -> None:
        method = ex.scope["method"]
        if method not in ("GET", "HEAD"):
            await text(405, "read-only index: GET and HEAD only", Allow="GET, HEAD")(
                ex.scope, no_receive, ex.send)
            return
        if len(path) > MAX_PATH or len(ex.scope.get("query_string", b"")) > MAX_PATH:
            await text(414, "request target too long", Connection="close")(
                ex.scope, no_receive, ex.send)
            return
        if sum(len(k) + len(v) + 4 for k, v in ex.scope["headers"]) > MAX_HEADERS:
            await text(431, "request headers too large", Connection="close")(
                ex.scope, no_receive, ex.send)
            return
        length = ex.headers.get("content-length", "0").strip()
        if (length not in ("", "0")) or "transfer-encoding" in ex.headers:
            await text(413, "requests to this index carry no body", Connection="close")(
                ex.scope, no_receive, ex.send)
            return
        route = parse_path(path)
        if route is None:
            await text(404, "not found")(ex.scope, no_receive, ex.send)
            return
        query = ex.scope.get("query_string", b"").decode("latin-1")
        if route.kind in ("root", "page") and path != route.canonical:
            target = route.canonical + (f"?{query}" if query else "")
            await Response(status_code=301, headers={"Location": target})(
                ex.scope, no_receive, ex.send)
            return
        handler = {"ready": self._ready, "root": self._root, "page": self._page,
                   "file": self.files.file, "metadata": self.files.metadata}[route.kind]
        response = await handler(ex, route, query)
        if response is not None:
            await response(ex.scope, no_receive, ex.send)

    async def _ready(self, ex: Exchange, route: Route, query: str) -> Response:
        return text(200, "ready", **{"Cache-Control": "no-store"})

    def _format(self, ex: Exchange, query: str) -> str | None:
        fmt = None
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "format":
                fmt = value or None
        return negotiate(ex.headers.get("accept"), fmt)

    # -- pages -----------------------------------------------------------------------------

    async def _root(self, ex: Exchange, route: Route, query: str) -> Response | None:
        ctype = self._format(ex, query)
        if ctype is None:
            return text(406, "acceptable: PEP 691 JSON or HTML")
        try:
            copy = await self.pool.run(self.chain.root)
        except AllMirrorsFailed as exc:
            return text(502, f"every mirror failed for the root page: {why(exc)}")
        headers = {"Content-Type": ctype, "Vary": "Accept",
                   "Cache-Control": page_cache_control(ROOT_FRESH, stale=bool(copy.stale)),
                   "X-Content-Type-Options": "nosniff"}
        if copy.stale:
            headers.update({"Warning": _STALE_WARNING, "X-Pip-91n-Stale": printable(copy.stale, spaces=True)})
        await ex.send({"type": "http.response.start", "status": 200,
                       "headers": raw_headers(headers)})
        chunks = render_root(copy.path, copy.is_json, ctype)
        while True:
            chunk = await self.pool.run(next, chunks, None)
            if chunk is None:
                break
            await ex.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await ex.send({"type": "http.response.body", "body": b""})
        return None

    async def _page(self, ex: Exchange, route: Route, query: str) -> Response:
        assert route.project is not None
        ctype = self._format(ex, query)
        if ctype is None:
            return text(406, "acceptable: PEP 691 JSON or HTML")
        try:
            published = await self.pool.run(self.chain.page, route.project)
        except AllMirrorsFailed as exc:
            ex.note = "all mirrors failed"
            return text(502, f"every mirror failed for {route.project}: {why(exc)}",
                         **{"Retry-After": "5", "Cache-Control": "no-store"})
        if published.page is None:
            return text(404, published.missing,
                         **{"Cache-Control": f"public, max-age={PAGE_FRESH}"})
        if not published.stale:
            self.file_server.prefetch_metadata(route.project, published.page)
        body, etag = published.rendered(ctype)
        headers = {"ETag": etag, "Vary": "Accept", "X-Content-Type-Options": "nosniff",
                   "Cache-Control": page_cache_control(PAGE_FRESH,
                                                       stale=bool(published.stale))}
        if published.page.serial is not None:
            headers["X-PyPI-Last-Serial"] = str(published.page.serial)
        if published.stale:
            ex.note = "stale: " + published.stale
            headers.update({"Warning": _STALE_WARNING, "X-Pip-91n-Stale": printable(published.stale, spaces=True)})
        if etag_matches(ex.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, 200, headers=headers, media_type=ctype)

    # -- files -----------------------------------------------------------------------------

