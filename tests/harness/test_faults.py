"""Every injected fault does exactly what it says, seen through plain sockets and http.client."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    JSON_V1,
    BlackHole,
    Corrupt,
    DistFile,
    MetadataMissing,
    MirrorServer,
    NotFound,
    PackageIndex,
    RefusedMirror,
    ResetAfter,
    ServerError,
    SlowFirstByte,
    Stale,
    Throttle,
    TooManyRequests,
    Truncate,
    WrongContentType,
    make_wheel,
    refused_url,
    tree_index,
)

SIZE = 200_000


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    tmp = tmp_path_factory.mktemp("fault-index")
    idx = tree_index(tmp)
    idx.add(make_wheel(tmp, "blob", "1.0", payload_size=SIZE))
    return idx


def path_of(server: MirrorServer, filename: str) -> str:
    return server.file_url(filename)[len(server.url) :]


def raw_get(server: MirrorServer, path: str, timeout: float = 5.0) -> tuple[bytes, bytes, BaseException | None]:
    """(header block, body bytes received, the exception that ended reading or None at EOF)."""
    data = bytearray()
    error: BaseException | None = None
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            error = exc
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body, error


_open: list[http.client.HTTPConnection] = []


def conn(server: MirrorServer, timeout: float = 5.0) -> http.client.HTTPConnection:
    """An http.client connection, closed after the test."""
    c = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    _open.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def test_refused_url_refuses() -> None:
    url = httpx.URL(refused_url())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", url.port), timeout=2).close()
    dead = RefusedMirror()
    assert dead.simple_url == f"{dead.url}/simple/"
    t0 = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        httpx.get(dead.simple_url, timeout=5)
    assert time.monotonic() - t0 < 1


def test_black_hole_times_out_and_is_bounded(mirror: MirrorServer) -> None:
    mirror.set_faults(BlackHole(kind="page", hold=0.8))
    c = conn(mirror, timeout=0.3)
    with pytest.raises(TimeoutError):
        c.request("GET", "/simple/app/")
        c.getresponse()
    c.close()
    # the server gives up on its own: a patient client sees the connection closed, no answer
    t0 = time.monotonic()
    c = conn(mirror, timeout=5)
    with pytest.raises(http.client.RemoteDisconnected):
        c.request("GET", "/simple/app/")
        c.getresponse()
    assert 0.7 < time.monotonic() - t0 < 3
    # other kinds are untouched
    c = conn(mirror)
    c.request("GET", path_of(mirror, "lib_a-1.0-py3-none-any.whl"))
    assert c.getresponse().status == 200
    assert mirror.stats(wait=0).records[0].status == 0


def test_stop_ends_black_holes_and_throttled_transfers(index: PackageIndex, blob: DistFile) -> None:
    threads_before = threading.active_count()
    server = MirrorServer(index, faults=[BlackHole(kind="page", hold=60), Throttle(kind="file", rate=1000)])
    server.start()
    c1, c2 = conn(server, timeout=10), conn(server, timeout=10)
    c1.request("GET", "/simple/")
    c2.request("GET", path_of(server, blob.filename))
    r2 = c2.getresponse()
    assert r2.status == 200
    time.sleep(0.2)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 2
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        c1.getresponse()
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        r2.read()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()
    # no thread of the server outlives it
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and threading.active_count() > threads_before:
        time.sleep(0.02)
    assert threading.active_count() <= threads_before


def test_slow_first_byte(mirror: MirrorServer, blob: DistFile) -> None:
    mirror.set_faults(SlowFirstByte(kind="file", delay=0.6))
    c = conn(mirror, timeout=0.2)
    with pytest.raises(TimeoutError):
        c.request("GET", path_of(mirror, blob.filename))
        c.getresponse()
    c = conn(mirror)
    t0 = time.monotonic()
    c.request("GET", path_of(mirror, blob.filename))
    r = c.getresponse()
    first = time.monotonic() - t0
    body = r.read()
    assert first >= 0.6 and len(body) == blob.size
    t0 = time.monotonic()
    c.request("GET", "/simple/blob/")  # pages are not delayed
    c.getresponse().read()
    assert time.monotonic() - t0 < 0.3


def test_throttle(mirror: MirrorServer, blob: DistFile) -> None:
    rate = 400_000.0
    mirror.set_faults(Throttle(kind="file", rate=rate))
    c = conn(mirror)
    t0 = time.monotonic()
    c.request("GET", path_of(mirror, blob.filename))
    body = c.getresponse().read()
    elapsed = time.monotonic() - t0
    assert len(body) == blob.size
    assert blob.size / rate <= elapsed < blob.size / rate + 1.5
    assert mirror.stats().bytes_by_file[blob.filename] == blob.size


@pytest.mark.parametrize("fault", [ServerError(), ServerError(status=500), ServerError(status=502), NotFound()])
def test_http_status(mirror: MirrorServer, blob: DistFile, fault: ServerError) -> None:
    mirror.set_faults(fault)
    for path in ("/simple/blob/", path_of(mirror, blob.filename)):
        r = httpx.get(mirror.url + path, timeout=5)
        assert r.status_code == fault.status
        assert "retry-after" not in r.headers


def test_429_retry_after_then_recovers(mirror: MirrorServer) -> None:
    mirror.set_faults(TooManyRequests(kind="page", retry_after=7, times=2))
    with httpx.Client(timeout=5) as client:
        for _ in range(2):
            r = client.get(mirror.simple_url + "app/")
            assert (r.status_code, r.headers["retry-after"]) == (429, "7")
        assert client.get(mirror.simple_url + "app/").status_code == 200
    assert mirror.faults == (TooManyRequests(kind="page", retry_after=7, times=2),)


@pytest.mark.parametrize("nbytes", [0, 1000, 150_000])
def test_reset_after_exactly_n_bytes(mirror: MirrorServer, blob: DistFile, nbytes: int) -> None:
    mirror.set_faults(ResetAfter(kind="file", nbytes=nbytes))
    head, body, error = raw_get(mirror, path_of(mirror, blob.filename))
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {blob.size}".encode() in head
    assert isinstance(error, ConnectionResetError)
    assert len(body) == nbytes
    assert body == blob.path.read_bytes()[:nbytes]
    assert mirror.stats().bytes_by_file[blob.filename] == nbytes
    # http.client sees the reset too
    c = conn(mirror)
    c.request("GET", path_of(mirror, blob.filename))
    with pytest.raises(ConnectionResetError):
        c.getresponse().read()


def test_reset_once(mirror: MirrorServer, blob: DistFile) -> None:
    mirror.set_faults(ResetAfter(kind="file", nbytes=5000, times=1))
    _, body, error = raw_get(mirror, path_of(mirror, blob.filename))
    assert isinstance(error, ConnectionResetError) and len(body) == 5000
    _, body, error = raw_get(mirror, path_of(mirror, blob.filename))
    assert error is None and len(body) == blob.size


@pytest.mark.parametrize("nbytes", [None, 12_345])
def test_truncated_body(mirror: MirrorServer, blob: DistFile, nbytes: int | None) -> None:
    mirror.set_faults(Truncate(kind="file", nbytes=nbytes))
    c = conn(mirror)
    c.request("GET", path_of(mirror, blob.filename))
    r = c.getresponse()
    assert r.getheader("Content-Length") == str(blob.size)
    with pytest.raises(http.client.IncompleteRead) as info:
        r.read()
    sent = blob.size // 2 if nbytes is None else nbytes
    assert len(info.value.partial) == sent
    assert info.value.expected == blob.size - sent
    assert mirror.stats().bytes_by_file[blob.filename] == sent


def test_corrupt_same_length_wrong_sha(mirror: MirrorServer, blob: DistFile) -> None:
    mirror.set_faults(Corrupt(kind="file", offset=100, count=3))
    body = httpx.get(mirror.file_url(blob.filename), timeout=5).content
    good = blob.path.read_bytes()
    assert len(body) == blob.size
    assert hashlib.sha256(body).hexdigest() != blob.sha256
    assert [i for i in range(len(good)) if good[i] != body[i]] == [100, 101, 102]
    # default: one byte in the middle; ranges see the same corrupted content
    mirror.set_faults(Corrupt(kind="file"))
    mid = blob.size // 2
    r = httpx.get(mirror.file_url(blob.filename), headers={"Range": f"bytes={mid - 1}-{mid + 1}"}, timeout=5)
    assert r.status_code == 206
    assert r.content == bytes([good[mid - 1], good[mid] ^ 0xFF, good[mid + 1]])


def test_stale(mirror: MirrorServer, index: PackageIndex) -> None:
    with httpx.Client(timeout=5) as client:
        fresh_root = client.get(mirror.simple_url, headers={"Accept": JSON_V1}).json()
        mirror.set_faults(Stale())
        r = client.get(mirror.simple_url + "lib-a/")
        assert "lib_a-2.0" not in r.text and "lib_a-1.0-py3-none-any.whl" in r.text
        serial = int(r.headers["x-pypi-last-serial"])
        assert serial < index.project_serial("lib-a")
        assert f"<!--SERIAL {serial}-->" in r.text
        doc = client.get(mirror.simple_url + "lib-a/", headers={"Accept": JSON_V1}).json()
        assert doc["versions"] == ["1.0"] and doc["meta"]["_last-serial"] == serial
        root = client.get(mirror.simple_url, headers={"Accept": JSON_V1}).json()
        assert root["meta"]["_last-serial"] < fresh_root["meta"]["_last-serial"]
        assert all(
            new["_last-serial"] < old["_last-serial"]
            for new, old in zip(root["projects"], fresh_root["projects"])
        )
        newest = mirror.file_url("lib_a-2.0-py3-none-any.whl")
        assert client.get(newest).status_code == 404
        assert client.get(newest + ".metadata").status_code == 404
        assert client.get(mirror.file_url("lib_a-1.0-py3-none-any.whl")).status_code == 200
        # limited to one project
        mirror.set_faults(Stale(match="lib-b"))
        assert "lib_a-2.0" in client.get(mirror.simple_url + "lib-a/").text
        assert "lib_b-2.0" not in client.get(mirror.simple_url + "lib-b/").text
        mirror.clear_faults()
        assert "lib_b-2.0" in client.get(mirror.simple_url + "lib-b/").text


def test_metadata_advertised_but_missing(mirror: MirrorServer) -> None:
    mirror.set_faults(MetadataMissing())
    with httpx.Client(timeout=5) as client:
        page = client.get(mirror.simple_url + "lib-c/", headers={"Accept": JSON_V1}).json()
        assert all(f["core-metadata"] for f in page["files"])
        url = mirror.file_url("lib_c-1.0-py3-none-any.whl")
        assert client.get(url + ".metadata").status_code == 404
        assert client.get(url).status_code == 200
    assert mirror.stats().by_kind == {"page": 1, "metadata": 1, "file": 1}


def test_wrong_content_type(mirror: MirrorServer) -> None:
    mirror.set_faults(WrongContentType())
    with httpx.Client(timeout=5) as client:
        r = client.get(mirror.simple_url + "app/", headers={"Accept": JSON_V1})
        assert r.headers["content-type"] == "text/plain"
        assert json.loads(r.content)["name"] == "app"  # the body is still right
        assert client.get(mirror.file_url("app-1.0-py3-none-any.whl")).headers["content-type"] == (
            "application/octet-stream"
        )


def test_faults_combine_select_and_count(mirror: MirrorServer, blob: DistFile) -> None:
    mirror.set_faults(
        SlowFirstByte(kind="file", delay=0.3, match="blob"),
        ResetAfter(kind="file", nbytes=10, match="blob", times=1),
        ServerError(kind="metadata", times=1),
    )
    t0 = time.monotonic()
    _, body, error = raw_get(mirror, path_of(mirror, blob.filename))
    assert time.monotonic() - t0 >= 0.3
    assert isinstance(error, ConnectionResetError) and len(body) == 10
    _, body, error = raw_get(mirror, path_of(mirror, blob.filename))
    assert error is None and len(body) == blob.size
    t0 = time.monotonic()
    _, body, error = raw_get(mirror, path_of(mirror, "lib_a-1.0-py3-none-any.whl"))
    assert error is None and time.monotonic() - t0 < 0.3  # match= spares other files
    meta = mirror.file_url("lib_a-1.0-py3-none-any.whl") + ".metadata"
    assert httpx.get(meta, timeout=5).status_code == 503
    assert httpx.get(meta, timeout=5).status_code == 200
    records = mirror.stats().records
    assert [r.faults for r in records] == [
        ("SlowFirstByte", "ResetAfter"), ("SlowFirstByte",), (), ("ServerError",), ()
    ]
    mirror.reset_stats()
    assert mirror.stats().total_requests == 0


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Throttle(rate=0)
    with pytest.raises(ValueError):
        ServerError(kind="bogus")  # type: ignore[arg-type]
    with MirrorServer(PackageIndex()) as server, pytest.raises(TypeError):
        server.set_faults("nope")  # type: ignore[arg-type]


def test_mirrors_fixture(mirrors: Callable[..., list[MirrorServer]], index: PackageIndex, tmp_path: Path) -> None:
    chain = mirrors(index, [None, BlackHole(hold=1), [ServerError(), SlowFirstByte(delay=0.1)], "refused"])
    assert [m.name for m in chain] == ["m0", "m1", "m2", "m3"]
    assert len({m.port for m in chain}) == 4
    assert isinstance(chain[3], RefusedMirror)
    assert chain[3].stats().total_requests == 0 and chain[3].stats().bytes_by_file == {}
    assert httpx.get(chain[0].simple_url, timeout=5).status_code == 200
    assert httpx.get(chain[2].simple_url, timeout=5).status_code == 503
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(chain[1].simple_url, timeout=0.2)
