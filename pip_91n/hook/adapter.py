"""The adapter: a requests adapter (pip's vendored requests) that serves chain URLs.

``make_adapter_class(BaseAdapter, Response, CaseInsensitiveDict, stream_error)`` builds the
adapter class from pip's own requests classes, so this module imports no pip; only
``pip_91n.hook.patch`` touches ``pip._internal``. A file whose sha256 is known comes from
the download engine (``pip_91n.hook.bodies.EngineBody``); pages, PEP 658 metadata and files
of unknown hash come from the chain's race (``ChainShim.serve``), whole and verified.
Requests the chain does not own (another host or path, a method other than GET) go to the
adapter pip had mounted for that URL.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pip_91n._urls import redact
from pip_91n.errors import AllMirrorsFailed, DownloadFailed
from pip_91n.hook.bodies import EngineBody, RawBody
from pip_91n.hook.shim import ChainShim
from pip_91n.index.routing import KIND_FILE, Resource, classify
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
            sha = self.shim.expected_sha256(res, url)
            if res.kind == KIND_FILE and sha is not None:
                return self._send_file(request, res, sha)
            return self._send_chain(request, res)

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
            try:
                got = self.shim.serve(res, request.url, list(request.headers.items()))
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
            body = EngineBody(self.shim, res, sha256, request.url)
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
