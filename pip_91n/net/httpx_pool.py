"""The default inner transport: httpx's pool, through the proxy the environment names.

A bare ``httpx.HTTPTransport`` ignores ``HTTPS_PROXY`` and friends (only ``httpx.Client``
reads them), so users behind a proxy would lose every mirror. This picks, per request, the
proxy from ``https_proxy``/``http_proxy``/``all_proxy`` unless ``no_proxy`` bypasses the host
(the standard library's own rules), with one pooled transport per proxy.

TLS costs nothing until it is used: loading the CA bundle into an ``ssl.SSLContext`` takes
~20 ms, so the default pools for plain-http URLs (a loopback or LAN mirror) get a context
that never loads one (it verifies, with no CA to trust: a TLS handshake through it fails
closed, and none is routed there), and the pools for https URLs share one verifying
context (``tls_context()``: what pip trusts, see ``pip_91n.net.tls``), made on first use.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from collections.abc import Callable, Mapping

import httpx

from pip_91n._urls import proxy_for

__all__ = ["EnvProxyTransport", "tls_context"]

_tls_lock = threading.Lock()
_tls: dict[tuple[str, ...], ssl.SSLContext] = {}
#: The variables the trust depends on: a context is built once per set of their values.
_TRUST_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
               "PIP_CERT", "PIP_CONFIG_FILE")


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context of the default pools: what pip trusts
    (``pip_91n.net.tls.trust_context``), built on first use (loading CAs takes ~20 ms)."""
    import os

    key = tuple(os.environ.get(v, "") for v in _TRUST_VARS)
    with _tls_lock:
        ctx = _tls.get(key)
        if ctx is None:
            from pip_91n.net.tls import trust_context

            ctx = _tls[key] = trust_context()
        return ctx


def _default_pool(proxy: str | None, tls: bool) -> httpx.BaseTransport:
    if tls:
        return httpx.HTTPTransport(proxy=proxy, verify=tls_context())
    # plain http only: a context that loads no CA bundle (and would trust no certificate)
    return httpx.HTTPTransport(proxy=proxy, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


class EnvProxyTransport(httpx.BaseTransport):
    def __init__(
        self,
        proxies: Mapping[str, str] | None = None,
        *,
        factory: Callable[[str | None], httpx.BaseTransport] | None = None,
    ) -> None:
        self.proxies = dict(urllib.request.getproxies_environment() if proxies is None
                            else proxies)
        self._factory = factory
        # (proxy, https) -> pool; a custom factory gets one pool per proxy
        self._pools: dict[tuple[str | None, bool], httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def _pool(self, proxy: str | None, https: bool) -> httpx.BaseTransport:
        key = (proxy, https and self._factory is None)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = (_default_pool(proxy, https) if self._factory is None
                                           else self._factory(proxy))
            return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool(proxy_for(str(request.url), self.proxies), request.url.scheme == "https")
        return pool.handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
