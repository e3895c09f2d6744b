"""``PipPoolTransport``: the chain's httpx transport over pip's own connection pools.

Inside a pip process the mirrors are reached the way pip reaches an index: through the
adapter pip mounted for the mirror's URL, so pip's TLS setup (truststore, ``--cert``,
``--client-cert``), its proxies (``--proxy``, the environment) and ``--trusted-host`` apply
to the chain as they do to pip, and no second HTTP stack is loaded (httpcore, h11 and anyio
stay out of the process).

Each pip adapter is used through a *view*: the same object state (pools, TLS context,
proxy managers), with retries off (failing over is the chain's job) and requests'
own ``send``/``build_response``, so pip's HTTP cache never sees a chain request. The
classes come from ``pip_91n._pip_patch``; this module imports no pip.
"""

from __future__ import annotations

import os
import threading
import types
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from pip_91n._proxies import proxy_for

__all__ = ["PipPoolTransport", "translate"]

_CHUNK = 64 * 1024


def translate(exc: BaseException, *, reading: bool) -> httpx.TransportError:
    """The httpx error for a requests/urllib3 one (by class name: no pip import)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc) or type(exc).__name__
    if names & {"ConnectTimeout", "ConnectTimeoutError"}:
        return httpx.ConnectTimeout(text)
    if names & {"ReadTimeout", "ReadTimeoutError", "TimeoutError", "Timeout"}:
        return httpx.ReadTimeout(text)
    if "ProxyError" in names:
        return httpx.ProxyError(text)
    if reading:
        return httpx.ReadError(text)
    return httpx.ConnectError(text)


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"RequestException", "HTTPError"}) or isinstance(exc, OSError)


class _RawStream(httpx.SyncByteStream):
    """A urllib3 response body, undecoded; the connection goes back to pip's pool when the
    body was read to its end, and is dropped otherwise."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._raw.stream(_CHUNK, decode_content=False)
        except Exception as exc:
            if _is_network_error(exc):
                raise translate(exc, reading=True) from exc
            raise
        self._done = True

    def close(self) -> None:
        if not self._done:
            self._raw.close()
        self._raw.release_conn()


class PipPoolTransport(httpx.BaseTransport):
    """Send through the adapters of the pip session last bound (``bind``).

    ``base`` is pip's vendored ``requests.adapters.HTTPAdapter``, ``prepared`` its
    ``PreparedRequest`` and ``headers_cls`` its ``CaseInsensitiveDict``.
    """

    def __init__(self, base: type, prepared: type, headers_cls: type) -> None:
        self._base: Any = base
        self._prepared = prepared
        self._headers_cls = headers_cls
        self._lock = threading.Lock()
        self._session: Any = None
        self._adapter_for: Callable[[str], Any] | None = None
        self._views: dict[int, tuple[Any, Any]] = {}  # id(pip adapter) -> (adapter, view)
        self._env_proxies: dict[str, str] | None = None

    def bind(self, session: Any, adapter_for: Callable[[str], Any]) -> None:
        """Use ``session``'s settings and ``adapter_for(url)`` (the adapter pip had mounted
        for a URL, before the chain's) from now on."""
        with self._lock:
            if session is not self._session:
                self._views.clear()  # the views of the last session's adapters
            self._session, self._adapter_for = session, adapter_for

    def _view(self, adapter: Any) -> Any:
        with self._lock:
            found = self._views.get(id(adapter))
            if found is not None and found[0] is adapter:
                return found[1]
            view = object.__new__(type(adapter))
            view.__dict__.update(vars(adapter))
            view.max_retries = type(adapter.max_retries)(0, read=False)
            view.build_response = types.MethodType(self._base.build_response, view)
            self._views[id(adapter)] = (adapter, view)
            return view

    def _proxies(self, session: Any, url: httpx.URL) -> dict[str, str]:
        """What requests gives pip's own requests: the session's proxies (``--proxy``) over
        the environment's, unless ``no_proxy`` exempts the host."""
        out: dict[str, str] = {}
        if getattr(session, "trust_env", True):
            if self._env_proxies is None:
                self._env_proxies = urllib.request.getproxies_environment()
            proxy = proxy_for(url, self._env_proxies)
            if proxy:
                out[url.scheme] = proxy
        out.update(getattr(session, "proxies", None) or {})
        return out

    @staticmethod
    def _verify(session: Any) -> Any:
        """What requests verifies with for pip: ``--cert`` (the session's ``verify``), else
        ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` from the environment, else True."""
        verify = getattr(session, "verify", True)
        if verify is True and getattr(session, "trust_env", True):
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
                "CURL_CA_BUNDLE") or True
        return verify

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        session, adapter_for = self._session, self._adapter_for
        if session is None or adapter_for is None:
            raise httpx.ConnectError("no pip session is bound to the chain", request=request)
        url = str(request.url)
        view = self._view(adapter_for(url))
        prep = self._prepared()
        prep.method = request.method
        prep.url = url
        prep.headers = self._headers_cls(
            (k, v) for k, v in request.headers.multi_items() if k.lower() != "host")
        prep.body = None
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            resp = self._base.send(view, prep, stream=True,
                                   timeout=(timeouts.get("connect"), timeouts.get("read")),
                                   verify=self._verify(session),
                                   cert=getattr(session, "cert", None),
                                   proxies=self._proxies(session, request.url))
        except Exception as exc:
            if _is_network_error(exc):
                raise translate(exc, reading=False) from exc
            raise
        reason = (resp.reason or "").encode("ascii", "replace")
        return httpx.Response(
            resp.status_code, headers=list(resp.raw.headers.items()),
            stream=_RawStream(resp.raw), request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})

    def close(self) -> None:
        with self._lock:
            self._views.clear()  # the pools are pip's: the session closes them
