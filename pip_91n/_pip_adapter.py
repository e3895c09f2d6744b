"""The shim: a requests adapter (pip's vendored requests) that serves chain URLs.

``ChainShim`` holds what one pip process needs: the resolved configuration, the mirror chain,
one ``Failover`` over pip's own pools (pages, PEP 658 metadata, files whose sha256 is
unknown) and the download options (files whose sha256 a page named go through
``pip_91n.download``: resume across runs and mirrors, segments, and nothing reaches pip
before its sha256 matched). Serving a page builds no httpx object; httpx loads only when
the download engine is needed.

``make_adapter_class(BaseAdapter, Response, CaseInsensitiveDict, stream_error)`` builds the
adapter class from pip's own requests classes, so this module imports no pip; only
``pip_91n._pip_patch`` touches ``pip._internal``. Requests the chain does not own (another
host or path, a method other than GET) go to the adapter pip had mounted for that URL.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pip_91n._attempt import Ask
from pip_91n._pip_body import BUFFER_MAX, EngineBody, RawBody
from pip_91n.catalog import Mirror
from pip_91n.config import MirrorConfig
from pip_91n.download import DownloadOptions, health_reporter
from pip_91n.errors import AllMirrorsFailed, DownloadFailed
from pip_91n.failover import Failover
from pip_91n.health import split_by_health
from pip_91n.routing import (
    KIND_FILE,
    KIND_PAGE,
    Resource,
    classify,
    mirror_for_url,
    redact,
    resource_url,
    split_credentials,
)
from pip_91n.wire import Wire

if TYPE_CHECKING:
    import httpx

__all__ = ["ChainShim", "make_adapter_class"]

_HOP = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


class ChainShim:
    """One process's view of the chain. Thread-safe; built once, at the first PipSession."""

    def __init__(self, config: MirrorConfig, chain: Sequence[Mirror], wire: Wire, *,
                 stream_from: int | None = BUFFER_MAX) -> None:
        self.config = config
        #: files this large stream to pip; smaller ones (all, when None) arrive verified
        self.stream_from = stream_from
        self.chain = tuple(chain)
        self.wire = wire
        self.failover = Failover.from_config(config, chain=self.chain, wire=wire)
        self.options = DownloadOptions.from_config(config)
        self.pins: dict[str, str] = {}  # project -> exact version pip asked for
        self._lock = threading.Lock()
        self._engine_transport: httpx.BaseTransport | None = None
        self._report_health = health_reporter(self.failover.health, self.chain)

    def engine_transport(self) -> httpx.BaseTransport:
        """The wire as an httpx transport, for the download engine (loads httpx)."""
        with self._lock:
            if self._engine_transport is None:
                from pip_91n._wire_httpx import WireTransport

                self._engine_transport = WireTransport(self.wire)
            return self._engine_transport

    # -- bookkeeping -------------------------------------------------------------------------

    def note_pin(self, project: str, version: str) -> None:
        with self._lock:
            self.pins.setdefault(project, version)

    def on_attempt(self, url: str, reason: str | None, seconds: float,
                   nbytes: int = 0, log: bool = True) -> None:
        """Feed the health memory (a 404 is not held against a mirror) and the request log."""
        if log:
            self.failover.log.write(self.mirror_name(url), url, None if reason else 200,
                                    nbytes, seconds, reason or "")
        self._report_health(url, reason, seconds)

    def mirror_name(self, url: str) -> str:
        """The name of the chain mirror ``url`` belongs to, ``-`` for none (for the log)."""
        mirror = mirror_for_url(url, self.chain)
        return mirror.name if mirror else "-"

    def ordered(self) -> list[Mirror]:
        live, resting = split_by_health(self.chain, self.failover.health.snapshot(), time.time())
        return [*live, *resting]

    # -- files -------------------------------------------------------------------------------

    def candidates(self, res: Resource, request_url: str) -> list[str]:
        """The URLs of ``res`` on each chain mirror that can name it, healthiest first."""
        known = self.failover.files.get(res.filename or "")
        urls = known.urls if known else {}
        out: list[str] = []
        for mirror in self.ordered():
            url = resource_url(res, mirror, urls)
            if url is not None:
                out.append(url)
        if res.mirror is not None and request_url not in out:
            out.append(request_url.split("#", 1)[0])
        return list(dict.fromkeys(out))

    def look_up_file(self, res: Resource, *, again: bool = False) -> None:
        """Read the project page of every live mirror that does not know ``res`` yet, so
        its copy of the file becomes a candidate (mirrors with their own layout). A mirror
        whose layout already names the file, or whose page was read, is not asked
        (``again``: resting mirrors and re-reads too, after a failure)."""
        if res.project is None or res.filename is None:
            return
        known = self.failover.files.get(res.filename)
        urls = known.urls if known else {}
        live, resting = split_by_health(self.chain, self.failover.health.snapshot(),
                                        time.time())
        todo = [m for m in (live + resting if again else live)
                if resource_url(res, m, urls) is None
                and (again or not self.failover.files.page_read(m.name, res.project))]
        threads = [threading.Thread(target=self._read_page, args=(m, res.project), daemon=True)
                   for m in todo]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.config.timeout * 2 + 1)

    def _read_page(self, mirror: Mirror, project: str) -> None:
        t0 = time.monotonic()
        reason = self.failover.read_page(mirror, project)
        if reason is not None:
            url = resource_url(Resource(KIND_PAGE, project=project), mirror) or ""
            self.on_attempt(split_credentials(url)[0], reason, time.monotonic() - t0)

    def open_file(self, res: Resource, sha256: str, request_url: str) -> EngineBody:
        return EngineBody(self, res, sha256, request_url)

    def close(self) -> None:
        self.failover.close()


def make_adapter_class(base: type, response_cls: type, headers_cls: type,
                       stream_error: Callable[[str, str], Exception]) -> type:
    """The adapter class, built on pip's vendored requests classes. ``stream_error(url,
    message)`` makes the exception raised when a streamed body fails midway."""

    class ChainAdapter(base):  # type: ignore[misc]
        """Serves chain URLs from the mirror chain; the rest from pip's own adapters."""

        def __init__(self, shim: ChainShim, fallback: Mapping[str, Any]) -> None:
            super().__init__()
            self.shim = shim
            self.fallback = dict(fallback)  # prefix -> pip's adapter, longest first

        def pip_adapter(self, url: str) -> Any:
            low = url.lower()
            for prefix, adapter in self.fallback.items():
                if low.startswith(prefix.lower()):
                    return adapter
            raise LookupError(f"no adapter for {redact(url)}")

        def send(self, request: Any, stream: bool = False, timeout: Any = None,
                 verify: Any = True, cert: Any = None, proxies: Any = None) -> Any:
            url: str = request.url
            res = classify(url, self.shim.chain) if request.method == "GET" else None
            if res is None:
                return self.pip_adapter(url).send(request, stream=stream, timeout=timeout,
                                                  verify=verify, cert=cert, proxies=proxies)
            sha = self._sha256(res, url)
            if res.kind == KIND_FILE and sha is not None:
                return self._send_file(request, res, sha)
            return self._send_chain(request, res)

        def _sha256(self, res: Resource, url: str) -> str | None:
            if res.kind != KIND_FILE or res.filename is None:
                return None
            _, _, frag = url.partition("#")
            if frag.lower().startswith("sha256="):
                return frag[7:].lower()
            known = self.shim.failover.files.get(res.filename)
            return known.sha256 if known and not known.conflict else None

        def _response(self, request: Any, status: int, headers: Mapping[str, str] | Any,
                      body: Any, reason: str = "") -> Any:
            resp = response_cls()
            resp.status_code = status
            resp.headers = headers_cls(headers)
            url = request.url
            resp.raw = RawBody(body, lambda exc: stream_error(url, str(exc)))
            resp.reason = reason or _REASONS.get(status, "")
            resp.url = request.url
            resp.request = request
            resp.connection = self
            ctype = resp.headers.get("content-type", "")
            resp.encoding = "utf-8" if "json" in ctype else (
                "ISO-8859-1" if ctype.startswith("text/") and "charset" not in ctype else None)
            if "charset=" in ctype:
                resp.encoding = ctype.split("charset=", 1)[1].split(";")[0].strip(" \"'")
            return resp

        def _failed(self, request: Any, exc: Exception) -> Any:
            text = f"pip-91n: {exc}".encode()
            return self._response(request, 503, {"Content-Type": "text/plain",
                                                 "Content-Length": str(len(text))},
                                  io.BytesIO(text), "Service Unavailable (all mirrors failed)")

        def _send_chain(self, request: Any, res: Resource) -> Any:
            pin = self.shim.pins.get(res.project or "") if res.kind == KIND_PAGE else None
            ask = Ask(request.url, list(request.headers.items()), pin)
            try:
                got = self.shim.failover.serve(res, ask)
            except AllMirrorsFailed as exc:
                return self._failed(request, exc)
            try:
                body = got.content()  # decoded (pages may be gzip)
            except ValueError as exc:
                return self._failed(request, exc)
            finally:
                got.close()
            out = {k: v for k, v in got.headers.items() if k not in _HOP}
            out["content-length"] = str(len(body))
            return self._response(request, got.status, out, io.BytesIO(body), got.reason)

        def _send_file(self, request: Any, res: Resource, sha256: str) -> Any:
            body = self.shim.open_file(res, sha256, request.url)
            try:
                size = body.start()
            except DownloadFailed as exc:
                body.close()
                return self._failed(request, exc)
            headers = {"Content-Type": "application/octet-stream"}
            if size is not None:
                headers["Content-Length"] = str(size)
            return self._response(request, 200, headers, body, "OK")

        def close(self) -> None:
            pass  # pip's adapters are closed by the session; the shim lives for the process

    return ChainAdapter


_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
