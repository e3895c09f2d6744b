"""Run the server: bind, serve with uvicorn, load the model in the background, stop on SIGTERM.

Order: the socket is bound first (a busy port is one error line, exit 1, before any loading),
then uvicorn serves while a thread loads the model, so ``/health`` answers 503 "loading" at once
and 200 when the model is ready. A load that fails stops the server with exit status 1 and the
error on stderr. SIGTERM or SIGINT: new requests get 503, the running generation stops at its
next token (its stream ends with an error event), waiting ones are closed, uvicorn drains the
connections (at most ``GRACE`` seconds) and the command returns 0.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

from oss_runtime.errors import MissingDependency
from oss_runtime.serve.state import ServerState, ServeSettings

__all__ = ["bind", "make_server", "serve"]

log = logging.getLogger("oss_runtime.serve")
GRACE = 10


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    for name, level in (("oss_runtime.serve", logging.INFO), ("uvicorn", logging.WARNING)):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one); OSError names the cause."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(state: ServerState) -> Any:
    """A uvicorn ``Server`` for the app over ``state``; on a signal it also stops the engine."""
    try:
        import uvicorn

        from oss_runtime.serve.app import create_app
    except ImportError as exc:
        raise MissingDependency(
            f"oss-runtime serve needs FastAPI and uvicorn ({exc.name} is missing): "
            "pip install 'pip-91n[serve]'") from exc

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if state.engine is not None:
                state.engine.stop()  # only sets a flag: safe in a signal handler
            super().handle_exit(sig, frame)

    limit = max(64 * 1024, 4 * state.settings.max_header)  # h11's own bound stays above ours
    config = uvicorn.Config(create_app(state), http="h11", lifespan="off", log_config=None,
                            access_log=False, timeout_graceful_shutdown=GRACE,
                            timeout_keep_alive=5, h11_max_incomplete_event_size=limit,
                            server_header=False)
    return Server(config)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: ServeSettings, host: str, port: int, loader: Callable[[], Any],
          describe: Callable[[Any], str] = repr) -> int:
    """Serve until SIGTERM/SIGINT; ``loader()`` returns the `GptOssRuntime` (run in a thread).

    Returns the exit status: 0 after a clean shutdown, 1 when the model failed to load."""
    _setup_logging()
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"oss-runtime: error: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    state = ServerState(settings)
    server = make_server(state)
    failed: list[str] = []

    def load() -> None:
        started = time.perf_counter()
        try:
            state.attach(loader())
        except Exception as exc:
            failed.append(str(exc))
            state.fail(str(exc))
            print(f"oss-runtime: error: the model failed to load: {exc}", file=sys.stderr)
            server.should_exit = True
            return
        print(f"oss-runtime serve: ready in {time.perf_counter() - started:.1f} s: "
              f"{settings.model_name} = {describe(state.runtime)}", file=sys.stderr, flush=True)

    print(f"oss-runtime serve: listening on {_url(sock)} (loading the model; GET /health is 200 "
          "once it is ready)", file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        print(f"oss-runtime serve: warning: listening on {host} without an API key: anyone who "
              "can reach this port can use the model (--api-key or OSS_RUNTIME_API_KEY).",
              file=sys.stderr)
    threading.Thread(target=load, name="oss-runtime-load", daemon=True).start()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal it caught after its graceful shutdown; land it here
        handlers = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if state.engine is not None:
            state.engine.close(timeout=GRACE)
        sock.close()
    if failed:
        return 1
    print("oss-runtime serve: stopped", file=sys.stderr, flush=True)
    return 0
