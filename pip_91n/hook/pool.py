"""``PipPool``: the chain's ``Wire`` over pip's own connection pools.

Inside a pip process the mirrors are reached the way pip reaches an index: through the
adapter pip mounted for the mirror's URL, so pip's TLS setup (truststore, ``--cert``,
``--client-cert``), its proxies (``--proxy``, the environment) and ``--trusted-host`` apply
to the chain and the download engine as they do to pip, and no second HTTP stack is loaded
(httpx stays out of the process).

Each pip adapter is used through a *view*: the same object state (pools, TLS context,
proxy managers), with retries off (failing over is the chain's job) and requests'
own ``send``/``build_response``, so pip's HTTP cache never sees a chain request. The
classes come from ``pip_91n.hook.patch``; this module imports no pip.
"""

from __future__ import annotations

import os
import threading
import types
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pip_91n._urls import proxy_for
from pip_91n.net.wire import (
    CONNECT,
    CONNECT_TIMEOUT,
    PROXY,
    READ,
    READ_TIMEOUT,
    WireError,
    WireResponse,
)

__all__ = ["PipPool", "translate"]

_CHUNK = 64 * 1024


def translate(exc: BaseException, *, reading: bool) -> WireError:
    """The ``WireError`` for a requests/urllib3 one (by class name: no pip import)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc) or type(exc).__name__
    if names & {"ConnectTimeout", "ConnectTimeoutError"}:
        return WireError(CONNECT_TIMEOUT, text)
    if names & {"ReadTimeout", "ReadTimeoutError", "TimeoutError", "Timeout"}:
        return WireError(READ_TIMEOUT, text)
    if "ProxyError" in names:
        return WireError(PROXY, text)
    return WireError(READ if reading else CONNECT, text)


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"RequestException", "HTTPError"}) or isinstance(exc, OSError)


class _Body:
    """A urllib3 response body, undecoded; the connection goes back to pip's pool when the
    body was read to its end, and is dropped otherwise."""

    __slots__ = ("_done", "_raw")

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


class PipPool:
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
        self._env_proxy: dict[str, str | None] = {}  # scheme://host:port -> its proxy

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

    def _proxies(self, session: Any, url: str) -> dict[str, str]:
        """What requests gives pip's own requests: the session's proxies (``--proxy``) over
        the environment's, unless ``no_proxy`` exempts the host."""
        out: dict[str, str] = {}
        if getattr(session, "trust_env", True):
            if self._env_proxies is None:
                self._env_proxies = urllib.request.getproxies_environment()
            origin = "/".join(url.split("/", 3)[:3])
            proxy = self._env_proxy.get(origin, "")
            if proxy == "":
                proxy = self._env_proxy[origin] = proxy_for(url, self._env_proxies)
            if proxy:
                out[url.split(":", 1)[0].lower()] = proxy
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

    def open(self, url: str, headers: Sequence[tuple[str, str]],
             timeout: float | None) -> WireResponse:
        session, adapter_for = self._session, self._adapter_for
        if session is None or adapter_for is None:
            raise WireError(CONNECT, "no pip session is bound to the chain")
        view = self._view(adapter_for(url))
        prep = self._prepared()
        prep.method = "GET"
        prep.url = url
        prep.headers = self._headers_cls((k, v) for k, v in headers if k.lower() != "host")
        prep.body = None
        try:
            resp = self._base.send(view, prep, stream=True, timeout=(timeout, timeout),
                                   verify=self._verify(session),
                                   cert=getattr(session, "cert", None),
                                   proxies=self._proxies(session, url))
        except Exception as exc:
            if _is_network_error(exc):
                raise translate(exc, reading=False) from exc
            raise
        body = _Body(resp.raw)
        return WireResponse(resp.status_code,
                            {k.lower(): v for k, v in resp.raw.headers.items()},
                            body, body.close, resp.reason or "")

    def close(self) -> None:
        with self._lock:
            self._views.clear()  # the pools are pip's: the session closes them
