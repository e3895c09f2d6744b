"""The request-head deadline of ``pip-91n serve`` (``serve.deadline``): uvicorn's own h11
protocol on a real socket, with a short deadline, and a trivial app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from pip_91n.serve.deadline import head_deadline
from pip_91n.serve.runner import bind

DEADLINE = 0.6


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def port() -> Iterator[int]:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(
        _app, http=head_deadline(DEADLINE), lifespan="off", log_config=None,
        timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def _closed_within(conn: socket.socket, seconds: float) -> bool:
    """Whether the server closed ``conn`` within ``seconds`` (reading whatever it sent)."""
    conn.settimeout(seconds)
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_head_that_never_completes_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        assert _closed_within(conn, DEADLINE * 5)
        assert time.monotonic() - t0 >= DEADLINE * 0.8


def test_a_silent_connection_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert _closed_within(conn, DEADLINE * 5)


def _response(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = conn.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_a_kept_alive_connection_dribbling_its_next_head_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(5)
        assert _response(conn).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        with pytest.raises(OSError):  # cut off: a broken pipe or a reset, never served
            for _ in range(40):  # a byte at a time keeps uvicorn's keep-alive timer off
                conn.sendall(b"G")
                time.sleep(DEADLINE / 4)
                if _closed_within(conn, 0.001):
                    raise ConnectionResetError("closed")
        assert DEADLINE * 0.8 <= time.monotonic() - t0 < DEADLINE * 5


def test_a_prompt_client_is_served_and_kept_alive(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(5)
        for _ in range(3):
            time.sleep(DEADLINE / 2)  # each head well within its own deadline
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(conn).startswith(b"HTTP/1.1 200")
        assert not _closed_within(conn, DEADLINE / 3)
