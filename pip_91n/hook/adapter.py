"""The adapter: a requests adapter (pip's vendored requests) that serves chain URLs.

``make_adapter_class(BaseAdapter, Response, CaseInsensitiveDict, stream_error, HTTPResponse)``
builds the adapter class from pip's own requests and urllib3 classes, so this module imports
no pip; only ``pip_91n.hook.patch`` touches ``pip._internal``. A file whose sha256 is known
comes from the download engine (``pip_91n.hook.bodies.EngineBody``) through pip's own HTTP
cache: a file pip cached is served from there, and a file the chain fetched is cached by
pip as it reads it, as any file from PyPI would be (the content is named by its sha256, so
it never goes stale). With pip's ``--no-cache-dir`` there is no such cache, and pip-91n
keeps nothing either. Pages, PEP 658 metadata and files of unknown hash come from the
chain's race (``ChainShim.serve``), whole and verified. Requests the chain does not own
(another host or path, a method other than GET) go to the adapter pip had mounted for that
URL.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from pip_91n._urls import redact
from pip_91n.errors import AllMirrorsFailed, DownloadFailed, HashNotConfirmed
from pip_91n.hook.bodies import EngineBody, RawBody
from pip_91n.hook.shim import ChainShim
from pip_91n.index.routing import KIND_FILE, KIND_PAGE, Resource, classify
from pip_91n.settings.catalog import Mirror

__all__ = ["make_adapter_class", "mount_prefixes"]

_PYPI_ORIGINS = ("https://pypi.org/", "https://files.pythonhosted.org/",
                 "https://pypi.python.org/")


def mount_prefixes(chain: Sequence[Mirror], trusted: Iterable[tuple[str, int | None]] = ()
                   ) -> list[str]:
    """The origins the adapter is mounted on (``scheme://host[:port]/``), minus the hosts
    the user marked ``--trusted-host`` (those stay pip's)."""
    trusted = set(trusted)
    out: list[str] = []
    for url in (*_PYPI_ORIGINS, *(p for m in chain for p in m.prefixes)):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or (host, parts.port) in trusted or (host, None) in trusted:
            continue
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        out.append(f"{parts.scheme.lower()}://{netloc}/")
    return list(dict.fromkeys(out))

_HOP = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})
#: A verified file is named by its sha256: whoever caches it may keep it for good.
_IMMUTABLE = "max-age=365000000, immutable, public"


def _cached(controller: Any, request: Any) -> Any:
    """pip's cached response for ``request``, or None (also when the cache is unreadable)."""
    try:
        return controller.cached_request(request) or None  # cachecontrol says False for none
    except Exception:  # a corrupt cache entry (zlib.error, ...): as pip, fetch anew
        return None


def make_adapter_class(base: type, response_cls: type, headers_cls: type,
                       stream_error: Callable[[str, str], Exception],
                       raw_response_cls: type) -> type:
    """The adapter class, built on pip's vendored requests classes. ``stream_error(url,
    message)`` makes the exception raised when a streamed body fails midway;
    ``raw_response_cls`` is urllib3's ``HTTPResponse`` (what pip's HTTP cache reads)."""

    class ChainAdapter(base):  # type: ignore[misc]
        """Serves chain URLs from the mirror chain; the rest from pip's own adapters."""

        def __init__(self, shim: ChainShim, fallback: Mapping[str, Any]) -> None:
            super().__init__()
            self.shim = shim
            self.fallback = dict(fallback)  # prefix -> pip's adapter, longest first
            # pip keeps an HTTP cache unless --no-cache-dir (then none of its adapters has one):
            # pip-91n then keeps no partial downloads either
            self.keep_partials = any(hasattr(a, "controller") for a in self.fallback.values())

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
            try:
                self.shim.failover.check_file(res, url)
            except HashNotConfirmed as exc:
                return self._failed(request, res, exc)
            sha = self.shim.expected_sha256(res, url)
            if res.kind == KIND_FILE and sha is not None:
                return self._send_file(request, res, sha)
            return self._send_chain(request, res)

        def _response(self, request: Any, status: int, headers: Mapping[str, str] | Any,
                      body: Any, reason: str = "", served_from: str = "") -> Any:
            """pip's ``Response``; ``served_from``: the URL that really answered (as after a
            redirect), which relative links on a page resolve against."""
            resp = response_cls()
            resp.status_code = status
            resp.headers = headers_cls(headers)
            url = request.url
            resp.raw = RawBody(body, lambda exc: stream_error(url, str(exc)))
            resp.reason = reason or _REASONS.get(status, "")
            resp.url = served_from or request.url
            resp.request = request
            resp.connection = self
            ctype = resp.headers.get("content-type", "")
            resp.encoding = "utf-8" if "json" in ctype else (
                "ISO-8859-1" if ctype.startswith("text/") and "charset" not in ctype else None)
            if "charset=" in ctype:
                resp.encoding = ctype.split("charset=", 1)[1].split(";")[0].strip(" \"'")
            return resp

        def _failed(self, request: Any, res: Resource, exc: Exception) -> Any:
            """A 503 (a 403 for a file the sources do not vouch for) whose body says why; and, since pip shows nothing of it at its default
            verbosity, the same text once on stderr (``ChainShim.report_failure``)."""
            self.shim.report_failure(res, exc)
            text = f"pip-91n: {exc}".encode()
            status, reason = 503, "Service Unavailable (all mirrors failed)"
            if isinstance(exc, HashNotConfirmed):
                status, reason = 403, "Forbidden (the sources do not vouch for this file)"
            return self._response(request, status, {"Content-Type": "text/plain",
                                                    "Content-Length": str(len(text))},
                                  io.BytesIO(text), reason)

        def _send_chain(self, request: Any, res: Resource) -> Any:
            try:
                got = self.shim.serve(res, request.url, list(request.headers.items()))
            except AllMirrorsFailed as exc:
                return self._failed(request, res, exc)
            try:
                body = got.content()  # decoded (pages may be gzip)
            except ValueError as exc:
                return self._failed(request, res, exc)
            finally:
                got.close()
            out = {k: v for k, v in got.headers.items() if k not in _HOP}
            out["content-length"] = str(len(body))
            # A page's relative links name files on the mirror that served it: pip shows, and
            # asks for, those real URLs (the chain owns them too), not made-up pypi.org ones.
            served = got.url if res.kind == KIND_PAGE else ""
            return self._response(request, got.status, out, io.BytesIO(body), got.reason,
                                  served)

        def _send_file(self, request: Any, res: Resource, sha256: str) -> Any:
            pip = self.pip_adapter(request.url)
            cache = getattr(pip, "controller", None)  # pip's HTTP cache (https, no --no-cache-dir)
            if cache is not None:
                hit = _cached(cache, request)
                if hit is not None:
                    return pip.build_response(request, hit, from_cache=True)
            body = EngineBody(self.shim, res, sha256, request.url,
                              self.shim.options_for(keep_partials=self.keep_partials))
            try:
                size = body.start()
            except DownloadFailed as exc:
                body.close()
                return self._failed(request, res, exc)
            headers = {"Content-Type": "application/octet-stream"}
            if size is not None:
                headers["Content-Length"] = str(size)
            if cache is None:
                return self._response(request, 200, headers, body, "OK")
            headers.update({"Cache-Control": _IMMUTABLE, "Date": formatdate(usegmt=True)})
            url = request.url
            raw = raw_response_cls(
                body=RawBody(body, lambda exc: stream_error(url, str(exc))), headers=headers,
                status=200, reason="OK", preload_content=False, decode_content=False,
                request_method="GET")
            return pip.build_response(request, raw)  # pip caches it as it reads it

        def close(self) -> None:
            pass  # pip's adapters are closed by the session; the shim lives for the process

    return ChainAdapter


_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
