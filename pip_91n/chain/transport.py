"""``FailoverTransport``: the mirror chain as an httpx transport.

It serves PyPI pages and files from the first good mirror of a chain: it holds a
``pip_91n.chain.failover.Failover`` (which mirror, when to move on, what is verified) that
reaches the mirrors through httpx transports, one shared pool or one per mirror, and passes
anything outside the chain to the inner transport untouched (composition, as httpx's own
transports wrap one another). Answers are read and verified before they are handed on, so
nothing unverified reaches the caller. When every mirror fails, ``AllMirrorsFailed`` lists
each one and why; when every mirror answers 404 the caller gets a 404.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from pip_91n.chain.attempt import PIN_EXTENSION, Ask, Fetched
from pip_91n.chain.failover import Failover, settings_of
from pip_91n.chain.health import HealthStore
from pip_91n.chain.requestlog import RequestLog
from pip_91n.errors import HashNotConfirmed
from pip_91n.index.routing import classify
from pip_91n.net.httpx_pool import EnvProxyTransport
from pip_91n.net.httpx_wire import HttpxWire
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig
from pip_91n.settings.values import DEFAULT_HEDGE_DELAY, DEFAULT_TIMEOUT

__all__ = ["PIN_EXTENSION", "FailoverTransport", "chain_transport"]


class _FetchedStream(httpx.SyncByteStream):
    def __init__(self, fetched: Fetched) -> None:
        self._fetched = fetched

    def __iter__(self) -> Iterator[bytes]:
        return self._fetched.chunks()

    def close(self) -> None:
        self._fetched.close()


class FailoverTransport(httpx.BaseTransport):
    """Serve chain requests from the first good mirror of ``chain``.

    ``inner`` is the shared transport (default: httpx's pool, through the proxy that
    ``https_proxy``/``no_proxy`` name); ``transports`` may give one per mirror name.
    ``health`` remembers failures across processes (default: in memory only). ``timeout``
    bounds connect and first byte per mirror; ``hedge_delay`` is the head start before the
    next mirror is raced (0 turns hedging off). A request may name the exact version a
    project page must list in its ``PIN_EXTENSION`` extension (``"pip_91n.pin"``).
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
        verify: str = "off",
    ) -> None:
        self.inner = inner if inner is not None else EnvProxyTransport()
        wires: dict[int, HttpxWire] = {}  # one wire per transport: each is closed once

        def wire(t: httpx.BaseTransport) -> HttpxWire:
            return wires.setdefault(id(t), HttpxWire(t))

        self.failover = Failover(
            chain, wire=wire(self.inner),
            wires={name: wire(t) for name, t in (transports or {}).items()},
            health=health, timeout=timeout, hedge_delay=hedge_delay, request_log=request_log,
            verify=verify)

    @classmethod
    def from_config(cls, config: MirrorConfig, *, chain: Sequence[Mirror] | None = None,
                    inner: httpx.BaseTransport | None = None) -> FailoverTransport:
        """One for ``config`` (``chain`` overrides its chain, e.g. after ``auto`` ranking)."""
        return cls(chain or config.chain, inner=inner, **settings_of(config))

    @property
    def chain(self) -> tuple[Mirror, ...]:
        return self.failover.chain

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        resource = classify(url, self.chain)
        if resource is None or request.method != "GET":
            return self.inner.handle_request(request)
        try:
            self.failover.check_file(resource, url)
        except HashNotConfirmed as exc:
            return httpx.Response(403, text=f"pip-91n: {exc}", request=request)
        fetched = self.failover.serve(resource, Ask(url, request.headers.multi_items(),
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

    def close(self) -> None:
        """Close the mirrors' transports (``inner`` included)."""
        self.failover.close()


def chain_transport(
    environ: Mapping[str, str] | None = None,
    *,
    config: MirrorConfig | None = None,
    inner: httpx.BaseTransport | None = None,
) -> FailoverTransport:
    """Everything in one call: load the configuration (``environ`` defaults to the process
    environment), rank an ``auto`` chain (probe cached for a day), and build the transport."""
    from pip_91n.chain.ranking import resolve_chain
    from pip_91n.settings.config import load_config

    cfg = config if config is not None else load_config(environ)
    return FailoverTransport.from_config(cfg, chain=resolve_chain(cfg), inner=inner)
