"""Ports where nothing listens (connection refused at once, reliably)."""

from __future__ import annotations

import atexit
import socket
import threading

from .stats import ServerStats

__all__ = ["RefusedMirror", "refused_port", "refused_url"]

_held: list[socket.socket] = []
_lock = threading.Lock()


@atexit.register
def _release() -> None:
    with _lock:
        while _held:
            _held.pop().close()


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of this process.

    The port is bound by a socket that never listens (Linux answers a SYN to it with RST), and
    the socket is kept open, so no other server can take the port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    with _lock:
        _held.append(sock)
    return int(sock.getsockname()[1])


def refused_url(path: str = "/simple/") -> str:
    """``http://127.0.0.1:<refused port><path>``, e.g. a dead mirror's index URL."""
    return f"http://127.0.0.1:{refused_port()}{path}"


class RefusedMirror:
    """A mirror that is down: its port refuses connections. Same URL attributes as a
    :class:`~tests.harness.MirrorServer`, and it never sees a request."""

    def __init__(self, name: str = "refused") -> None:
        self.name = name
        self.host = "127.0.0.1"
        self.port = refused_port()
        self.faults: tuple[object, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def stats(self, wait: float = 0.0) -> ServerStats:
        """Always empty: a refused port sees no request."""
        return ServerStats(requests={}, by_kind={}, bytes_by_file={}, bytes_by_path={}, records=())

    def reset_stats(self) -> None:
        pass

    def wait_idle(self, timeout: float = 0.0) -> bool:
        return True

    def start(self) -> RefusedMirror:
        return self

    def stop(self) -> None:
        pass

    def __enter__(self) -> RefusedMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __repr__(self) -> str:
        return f"<RefusedMirror {self.name} {self.url}>"
