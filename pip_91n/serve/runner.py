"""Start ``pip-91n serve``: build the chain, the cache and the app, bind, run uvicorn until
SIGINT or SIGTERM, then shut down cleanly (connections drained for a few seconds, the
chain's pools and logs closed).

uvicorn runs its h11 protocol, whose incomplete-event limit bounds the request line and
headers (``MAX_HEADER_BYTES``: a larger request is refused with 400 and the connection
closed), with a deadline for each request head (``deadline``); requests carry no body (the
app refuses one with 413).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pip_91n._urls import is_loopback
from pip_91n.serve.accesslog import AccessLog
from pip_91n.settings.config import MirrorConfig
from pip_91n.settings.values import size_text

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_CACHE",
    "DEFAULT_PORT",
    "MAX_HEADER_BYTES",
    "ServeOptions",
    "bind",
    "build_app",
    "serve",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3144
DEFAULT_MAX_CACHE = "10G"
MAX_HEADER_BYTES = 16 * 1024
#: Connections at once (uv opens many); above it uvicorn answers 503.
MAX_CONNECTIONS = 1024
_QUIET = ("ASGI callable returned without completing response.",)


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cache_dir: Path | None = None  # default: <PIP_91N_CACHE_DIR>/serve
    max_cache: int = 10 * 1024**3


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/simple/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one). ``OSError`` says why
    not (port in use, no such address)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _wire() -> Any:
    """httpx pools big enough for many clients at once, through the environment's proxy,
    with the TLS trust pip has."""
    import httpx

    from pip_91n.net.httpx_pool import EnvProxyTransport, tls_context
    from pip_91n.net.httpx_wire import HttpxWire

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)

    def pool(proxy: str | None) -> httpx.BaseTransport:
        return httpx.HTTPTransport(proxy=proxy, verify=tls_context(), limits=limits)

    return HttpxWire(EnvProxyTransport(factory=pool))


#: Imported at start-up, not by the first requests (which would queue behind the import
#: lock): the download engine, the version parser, the HTML parser, the thread pool, the
#: event loop's backend and task groups, the HTTP client's connection layer.
PREIMPORT = ("pip_91n.downloads.api", "pip_91n.downloads.engine", "pip_91n.downloads.stream",
             "pip_91n.downloads.workers", "pip_91n.downloads.small", "packaging.version",
             "packaging.utils", "html.parser", "anyio.to_thread", "anyio._backends._asyncio",
             "anyio._core._tasks", "httpcore", "pip_91n.serve.roots")


def build_app(config: MirrorConfig, options: ServeOptions, *,
              note: Callable[[str], None]) -> Any:
    """The ASGI app over ``config``'s chain (ranked now when it is ``auto``)."""
    import importlib

    from pip_91n.chain.ranking import resolve_chain
    from pip_91n.serve.app import ServeApp
    from pip_91n.serve.files import FileServer
    from pip_91n.serve.flights import Flights
    from pip_91n.serve.store import FileCache
    from pip_91n.serve.upstream import Chain

    for name in PREIMPORT:
        importlib.import_module(name)
    from pip_91n.net.httpx_pool import tls_context

    tls_context()  # pip's trust store takes ~0.3 s to load: now, not in the first requests
    root = options.cache_dir or config.cache_dir / "serve"
    access = AccessLog(config.log)
    chain = Chain(config, resolve_chain(config), _wire(), root, note=access.line)
    cache = FileCache(root, options.max_cache)
    app = ServeApp(chain, FileServer(chain, cache, Flights(cache)), access)
    note(f"chain: {', '.join(m.name for m in chain.shim.chain)}; cache {root} "
         f"(files: at most {size_text(options.max_cache)}, {size_text(cache.total)} in use)")
    return app


class _DropAborts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _QUIET


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pip-91n serve: %(message)s"))
    handler.addFilter(_DropAborts())
    for name in ("uvicorn", "uvicorn.error", "pip_91n"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _settle() -> None:
    """Move what start-up built (modules, the app, the TLS trust) out of the garbage
    collector's sight: a full collection over it took 40 ms, paid by whichever requests
    were in flight when it struck (seen in a cold uv install of 20 packages)."""
    import gc

    gc.collect()
    gc.freeze()


def serve(config: MirrorConfig, options: ServeOptions, *,
          ready: Callable[[str], None], note: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM. ``ready(url)`` is called once clients can connect;
    ``note`` gets the start-up lines (stderr)."""
    import uvicorn

    from pip_91n.serve.deadline import head_deadline

    if config.log is None:  # a server's console is where its log goes
        config = replace(config, log="-")
    _logging()
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    if not is_loopback(options.host):
        note(f"warning: listening on {options.host}, not loopback: anyone who can reach "
             "this machine can read through your mirror chain (no authentication); "
             "firewall it or put it behind an authenticating proxy")
    app = build_app(config, options, note=note)
    server = uvicorn.Server(uvicorn.Config(
        app, http=head_deadline(), loop="asyncio", lifespan="on", access_log=False, log_config=None,
        log_level="warning", server_header=False, proxy_headers=False,
        limit_concurrency=MAX_CONNECTIONS, backlog=MAX_CONNECTIONS, timeout_keep_alive=30,
        timeout_graceful_shutdown=5, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        headers=[("server", "pip-91n")]))
    url = url_of(options.host, port)

    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        if server.started:
            _settle()
            ready(url)

    server.startup = startup  # type: ignore[method-assign]
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler found before it started: this one, so SIGTERM ends in exit code 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    note("stopped")
