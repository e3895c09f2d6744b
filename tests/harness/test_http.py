"""HTTP/1.1 behaviour of the harness mirror: Range/206/If-Range/416, HEAD, keep-alive, exact counts."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from tests.harness import DistFile, MirrorServer, PackageIndex, ResetAfter, make_wheel

SIZE = 300_000


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    tmp = tmp_path_factory.mktemp("http-index")
    idx = PackageIndex()
    idx.add(make_wheel(tmp, "blob", "1.0", payload_size=SIZE))
    idx.add(make_wheel(tmp, "blob", "2.0", payload_size=SIZE))
    return idx


@pytest.fixture
def client() -> httpx.Client:
    with httpx.Client(timeout=5, trust_env=False) as c:
        yield c  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("bytes=0-99", 0, 100), ("bytes=1000-", 1000, None), ("bytes=-500", None, None), ("bytes=10-10", 10, 11)],
)
def test_range(
    mirror: MirrorServer, blob: DistFile, client: httpx.Client, spec: str, start: int | None, end: int | None
) -> None:
    data = blob.path.read_bytes()
    if start is None:
        start = blob.size - 500
    end = blob.size if end is None else end
    r = client.get(mirror.file_url(blob.filename), headers={"Range": spec})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{blob.size}"
    assert r.headers["content-length"] == str(end - start)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == data[start:end]
    assert mirror.stats().bytes_by_file[blob.filename] == end - start


def test_range_end_past_size_is_clamped(mirror: MirrorServer, blob: DistFile, client: httpx.Client) -> None:
    r = client.get(mirror.file_url(blob.filename), headers={"Range": f"bytes={blob.size - 10}-{blob.size + 100}"})
    assert r.status_code == 206 and len(r.content) == 10


@pytest.mark.parametrize("spec", ["bytes=999999999-", "bytes=-0"])
def test_range_not_satisfiable(mirror: MirrorServer, blob: DistFile, client: httpx.Client, spec: str) -> None:
    r = client.get(mirror.file_url(blob.filename), headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{blob.size}"


def test_if_range(mirror: MirrorServer, blob: DistFile, client: httpx.Client) -> None:
    url = mirror.file_url(blob.filename)
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag == blob.etag and etag.startswith('"')
    for validator in (etag, modified):
        r = client.get(url, headers={"Range": "bytes=100-", "If-Range": validator})
        assert (r.status_code, len(r.content)) == (206, blob.size - 100)
    other = mirror.index.get("blob-2.0-py3-none-any.whl")
    assert other is not None and other.etag != etag
    r = client.get(url, headers={"Range": "bytes=100-", "If-Range": other.etag})
    assert (r.status_code, len(r.content)) == (200, blob.size)  # the validator failed: whole file
    # multiple ranges are answered with the whole file (allowed by RFC 9110)
    r = client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (r.status_code, len(r.content)) == (200, blob.size)


def test_resume_after_reset_like_pip(mirror: MirrorServer, blob: DistFile, client: httpx.Client) -> None:
    """pip's resume: Range from the bytes received plus If-Range with the first ETag."""
    mirror.set_faults(ResetAfter(kind="file", nbytes=123_456, times=1))
    url = mirror.file_url(blob.filename)
    got = bytearray()
    with pytest.raises(httpx.HTTPError), client.stream("GET", url) as r:
        etag = r.headers["etag"]
        for chunk in r.iter_bytes():
            got += chunk
    assert len(got) == 123_456
    r = client.get(url, headers={"Range": f"bytes={len(got)}-", "If-Range": etag})
    assert r.status_code == 206
    got += r.content
    assert hashlib.sha256(got).hexdigest() == blob.sha256
    assert mirror.stats().bytes_by_file[blob.filename] == blob.size


def test_head(mirror: MirrorServer, blob: DistFile, client: httpx.Client) -> None:
    r = client.head(mirror.file_url(blob.filename))
    assert r.status_code == 200
    assert r.headers["content-length"] == str(blob.size) and r.content == b""
    r = client.head(mirror.simple_url + "blob/")
    assert r.status_code == 200 and int(r.headers["content-length"]) > 0
    assert r.headers["x-pypi-last-serial"] == str(mirror.index.project_serial("blob"))
    # keep-alive still works after HEADs
    assert client.get(mirror.file_url(blob.filename)).content == blob.path.read_bytes()
    stats = mirror.stats()
    assert stats.bytes_by_file == {blob.filename: blob.size}
    assert [r.method for r in stats.records] == ["HEAD", "HEAD", "GET"]


def test_exact_counts_concurrent_keepalive(mirror: MirrorServer, index: PackageIndex) -> None:
    files = list(index)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with httpx.Client(timeout=10, trust_env=False) as c:
                for f in files:
                    assert c.get(mirror.file_url(f.filename)).content == f.path.read_bytes()
                    assert len(c.get(mirror.file_url(f.filename) + ".metadata").content) == len(f.metadata or b"")
                    c.get(mirror.simple_url + "blob/")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    stats = mirror.stats()
    assert stats.by_kind == {"file": 8, "metadata": 8, "page": 8}
    for f in files:
        assert stats.bytes_by_file[f.filename] == 4 * f.size
        assert stats.bytes_by_file[f.filename + ".metadata"] == 4 * len(f.metadata or b"")
        assert stats.requests[mirror.file_url(f.filename)[len(mirror.url) :]] == 4
    assert stats.requests["/simple/blob/"] == 8
    assert stats.total_bytes == sum(stats.bytes_by_path.values())
    mirror.reset_stats()
    assert mirror.stats().bytes_by_file == {}


def test_stopped_mirror_refuses(index: PackageIndex, tmp_path: Path) -> None:
    with MirrorServer(index, name="short") as server:
        assert server.running and server.name == "short"
        assert server.simple_url == f"http://127.0.0.1:{server.port}/simple/"
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.simple_url, timeout=2)
