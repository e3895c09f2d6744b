"""``FailoverTransport``: the mirror chain as an httpx transport.

It serves PyPI pages and files from the first good mirror of a chain: the hedged race of
``pip_91n.failover.Failover`` (which mirror, when to move on, what is verified) over httpx
transports, one shared pool or one per mirror. Answers are read and verified before they
are handed on, so nothing unverified reaches the caller. When every mirror fails,
``AllMirrorsFailed`` lists each one and why; when every mirror answers 404 the caller gets
a 404. Anything outside the chain is passed to the inner transport untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from pip_91n._attempt import PIN_EXTENSION, Ask, Fetched
from pip_91n._proxies import EnvProxyTransport
from pip_91n._wire_httpx import HttpxWire
from pip_91n.catalog import Mirror
from pip_91n.config import DEFAULT_HEDGE_DELAY, DEFAULT_TIMEOUT, MirrorConfig
from pip_91n.failover import MAX_PARALLEL, Failover, demote_domain
from pip_91n.health import HealthStore
from pip_91n.requestlog import RequestLog
from pip_91n.routing import classify

__all__ = ["MAX_PARALLEL", "PIN_EXTENSION", "FailoverTransport", "chain_transport", "demote_domain"]

# PIN_EXTENSION: request extension naming the exact version the caller needs (a
# ``packaging`` Version or a string); a project page without it is not served while another
# mirror may have it.


class _FetchedStream(httpx.SyncByteStream):
    def __init__(self, fetched: Fetched) -> None:
        self._fetched = fetched

    def __iter__(self) -> Iterator[bytes]:
        return self._fetched.chunks()

    def close(self) -> None:
        self._fetched.close()


class FailoverTransport(Failover, httpx.BaseTransport):
    """Serve chain requests from the first good mirror of ``chain``.

    ``inner`` is the shared transport (default: httpx's pool, through the proxy that
    ``https_proxy``/``no_proxy`` name); ``transports`` may give one per mirror name.
    ``health`` remembers failures across processes (default: in memory only). ``timeout``
    bounds connect and first byte per mirror; ``hedge_delay`` is the head start before the
    next mirror is raced (0 turns hedging off).
    """

    def __init__(
        self,
        chain: Sequence[Mirror],
        *,
        inner: httpx.BaseTransport | None = None,
        transports: Mapping[str, httpx.BaseTransport] | None = None,
        health: HealthStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        hedge_delay: float = DEFAULT_HEDGE_DELAY,
        request_log: RequestLog | None = None,
    ) -> None:
        self._inner = inner if inner is not None else EnvProxyTransport()
        self._transports = dict(transports or {})
        wires: dict[int, HttpxWire] = {}  # one wire per transport: each is closed once

        def wire(t: httpx.BaseTransport) -> HttpxWire:
            return wires.setdefault(id(t), HttpxWire(t))

        super().__init__(chain, wire=wire(self._inner),
                         wires={name: wire(t) for name, t in self._transports.items()},
                         health=health, timeout=timeout, hedge_delay=hedge_delay,
                         request_log=request_log)

    def transport_for(self, mirror: Mirror | None) -> httpx.BaseTransport:
        if mirror is not None and mirror.name in self._transports:
            return self._transports[mirror.name]
        return self._inner

    # -- httpx.BaseTransport -------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        resource = classify(url, self.chain)
        if resource is None or request.method != "GET":
            return self.transport_for(None).handle_request(request)
        fetched = self.serve(resource, Ask(url, request.headers.multi_items(),
                                           request.extensions.get(PIN_EXTENSION)))
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1",
                      "reason_phrase": fetched.reason.encode("ascii", "replace")}
        if fetched.mirror:
            extensions["pip_91n.mirror"] = fetched.mirror
        if fetched.url:
            extensions["pip_91n.url"] = fetched.url
        return httpx.Response(fetched.status, headers=list(fetched.headers.items()),
                              stream=_FetchedStream(fetched), request=request,
                              extensions=extensions)


def chain_transport(
    environ: Mapping[str, str] | None = None,
    *,
    config: MirrorConfig | None = None,
    inner: httpx.BaseTransport | None = None,
) -> FailoverTransport:
    """Everything in one call: load the configuration (``environ`` defaults to the process
    environment), rank an ``auto`` chain (probe cached for a day), and build the transport."""
    from pip_91n.config import load_config
    from pip_91n.ranking import resolve_chain

    cfg = config if config is not None else load_config(environ)
    return FailoverTransport.from_config(cfg, chain=resolve_chain(cfg), inner=inner)
