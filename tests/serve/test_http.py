"""``pip-91n serve`` over HTTP: pages, files, ranges, validators, faults and hostile
requests, against the real server (a subprocess) and the harness's loopback mirrors."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin

import httpx
import pytest

from tests.harness import (
    Corrupt,
    MirrorFactory,
    PackageIndex,
    ServerError,
    Throttle,
    WheelSpec,
    build_index,
    refused_url,
)
from tests.serve.conftest import Served, ServeFactory

JSON = "application/vnd.pypi.simple.v1+json"
CANARY = "CANARY-pw-5f3a9"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    return build_index(tmp_path_factory.mktemp("http-index"), [
        WheelSpec("lib-a", "1.0"), WheelSpec("lib-a", "2.0"),
        WheelSpec("big", "1.0", payload_size=3_000_000),
        WheelSpec("big", "2.0", payload_size=3_000_000),
        WheelSpec("huge", "1.0", payload_size=17_000_000),  # streamed (STREAM_FROM)
    ])


def _links(served: Served, project: str) -> dict[str, str]:
    """filename -> absolute URL (no fragment) on the server's JSON page."""
    page = httpx.get(served.url + f"{project}/", headers={"Accept": JSON}).json()
    base = served.url + f"{project}/"
    return {f["filename"]: urljoin(base, f["url"]) for f in page["files"]}


def _raw(served: Served, request: bytes, timeout: float = 10.0) -> bytes:
    host, port = served.base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def test_pages_negotiate_validate_and_redirect(serve: ServeFactory, mirrors, index) -> None:
    served = serve(mirrors(index, 1))
    html = httpx.get(served.url + "lib-a/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.headers["vary"] == "Accept" and "max-age=60" in html.headers["cache-control"]
    assert 'href="../../files/lib-a/' in html.text and "data-core-metadata" in html.text
    page = httpx.get(served.url + "lib-a/", headers={"Accept": JSON})
    assert page.headers["content-type"] == JSON
    assert {f["filename"] for f in page.json()["files"]} == {
        f.filename for f in index.files("lib-a")}
    assert httpx.get(served.url + "lib-a/?format=json").headers["content-type"] == JSON
    assert httpx.get(served.url + "lib-a/", headers={"Accept": "image/png"}).status_code == 406
    again = httpx.get(served.url + "lib-a/", headers={"If-None-Match": html.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    moved = httpx.get(served.url + "Lib_A/")
    assert moved.status_code == 301 and moved.headers["location"] == "/simple/lib-a/"
    assert httpx.get(served.url + "no-such-project/").status_code == 404
    head = httpx.head(served.url + "lib-a/")
    assert head.status_code == 200 and head.content == b""
    root = httpx.get(served.url, headers={"Accept": JSON}).json()
    assert {p["name"] for p in root["projects"]} == {"lib-a", "big", "huge"}
    assert httpx.get(served.base + "/-/ready").status_code == 200


def test_files_ranges_head_and_metadata(serve: ServeFactory, mirrors, index) -> None:
    served = serve(mirrors(index, 2))
    links = _links(served, "big")
    name = "big-1.0-py3-none-any.whl"
    want = index.get(name)
    assert want is not None
    data = want.path.read_bytes()
    head = httpx.head(links[name])  # not cached yet: the page named the size
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    part = httpx.get(links[name], headers={"Range": "bytes=100-199"})  # waits for the file
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    whole = httpx.get(links[name])
    assert whole.content == data and whole.headers["etag"] == f'"{want.sha256}"'
    assert "immutable" in whole.headers["cache-control"]
    assert httpx.get(links[name], headers={"Range": "bytes=-10"}).content == data[-10:]
    assert httpx.get(links[name], headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    stale = httpx.get(links[name], headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
    assert httpx.get(links[name], headers={"If-None-Match": f'"{want.sha256}"'}
                     ).status_code == 304
    other = "big-2.0-py3-none-any.whl"  # a range of a file nobody fetched yet
    assert httpx.get(links[other], headers={"Range": "bytes=0-3"}).content == b"PK\x03\x04"
    meta = httpx.get(links[name] + ".metadata")
    assert meta.status_code == 200 and meta.content == want.metadata
    wrong = links[name].replace(want.sha256, "0" * 64)
    assert httpx.get(wrong).status_code == 404
    elsewhere = links[name].replace("/files/big/", "/files/lib-a/")  # the gate: not its page
    assert httpx.get(elsewhere).status_code == 404


def test_a_corrupt_mirror_costs_nothing_and_a_corrupt_chain_aborts(
        serve: ServeFactory, mirror_factory: MirrorFactory, index) -> None:
    bad = mirror_factory(index, Corrupt(kind="file"), name="bad")
    good = mirror_factory(index, name="good")
    served = serve([bad, good])
    name = "big-1.0-py3-none-any.whl"
    want = index.get(name)
    assert want is not None
    got = httpx.get(_links(served, "big")[name])
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == want.sha256

    only_bad = serve([mirror_factory(index, Corrupt(kind="file"), name="bad2")])
    small = httpx.get(_links(only_bad, "big")[name])  # held until verified: never sent
    assert small.status_code == 502 and "verified" in small.text
    huge = _links(only_bad, "huge")["huge-1.0-py3-none-any.whl"]  # streamed: then cut off
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", huge) as resp:
        assert resp.status_code == 200
        for _ in resp.iter_bytes():
            pass
    assert "aborted" in only_bad.wait_log("aborted")
    wrong_metadata = serve([mirror_factory(index, Corrupt(kind="metadata"), name="bad3")])
    meta = httpx.get(_links(wrong_metadata, "big")[name] + ".metadata")
    assert meta.status_code == 502 and "sha256" in meta.text, meta.text
    assert httpx.get(only_bad.url + "big/").status_code == 200  # still serving


def test_hostile_requests(serve: ServeFactory, mirrors, index) -> None:
    served = serve(mirrors(index, 1))
    for path in ("/simple/../../etc/passwd", "/files/big/..%2f..%2fetc/passwd",
                 "/serve-cache/files/", "/files/", "/%2e%2e/%2e%2e/etc/passwd",
                 "/simple/%00/", "/files/big/" + "a" * 64 + "/..", "/pages/big.json"):
        out = _raw(served, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   .encode())
        assert out.startswith(b"HTTP/1.1 404"), (path, out[:200])
    post = _raw(served, b"POST /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                        b"Connection: close\r\n\r\nabc")
    assert post.startswith(b"HTTP/1.1 405")
    body = _raw(served, b"GET /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
                        b"\r\n")
    assert body.startswith(b"HTTP/1.1 413")
    for size in (100_000, 1_000_000):  # all at once: the app refuses; beyond: uvicorn does
        huge = _raw(served, b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size
                    + b"\r\n\r\n")
        assert huge == b"" or huge.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), huge[:100]
    long = _raw(served, b"GET /simple/" + b"a" * 10_000 + b"/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert long.startswith((b"HTTP/1.1 414", b"HTTP/1.1 400"))
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert httpx.request(method, served.url).status_code == 405
    assert httpx.get(served.url + "big/").status_code == 200  # still serving


def test_credentials_never_reach_clients_or_logs(serve: ServeFactory,
                                                 mirror_factory: MirrorFactory, index) -> None:
    good = mirror_factory(index, name="good")
    dead = SimpleNamespace(simple_url=refused_url().replace("http://", f"http://u:{CANARY}@"))
    broken = mirror_factory(index, ServerError(), name="broken")
    with_pw = SimpleNamespace(simple_url=good.simple_url.replace("http://",
                                                                 f"http://u:{CANARY}@"))
    served = serve([dead, SimpleNamespace(simple_url=broken.simple_url.replace(
        "http://", f"http://u:{CANARY}@")), with_pw])
    seen = []
    for url, headers in ((served.url + "lib-a/", {}), (served.url + "lib-a/", {"Accept": JSON}),
                         (served.url, {}), (served.url + "nothing-here/", {})):
        r = httpx.get(url, headers=headers)
        seen += [r.text, json.dumps(dict(r.headers))]
    for link in _links(served, "lib-a").values():
        r = httpx.get(link)
        seen += [json.dumps(dict(r.headers))]
        assert CANARY.encode() not in r.content
    good.stop()
    broken.stop()  # every mirror down: the errors must not show it either
    r = httpx.get(served.url + "never-fetched/")
    assert r.status_code == 502
    seen += [r.text, json.dumps(dict(r.headers))]
    assert all(CANARY not in s for s in seen)
    assert "failover" in served.log() and CANARY not in served.log()


def test_a_client_that_disconnects_mid_file(serve: ServeFactory,
                                            mirror_factory: MirrorFactory, index) -> None:
    slow = mirror_factory(index, Throttle(rate=8_000_000, kind="file"), name="slow")
    served = serve([slow])
    link = _links(served, "huge")["huge-1.0-py3-none-any.whl"]  # streamed as it comes
    with httpx.stream("GET", link) as resp:
        for chunk in resp.iter_bytes():
            if chunk:
                break  # and go away
    assert "client went away" in served.wait_log("client went away")
    with httpx.stream("GET", link) as resp:  # the next client gets the whole file
        data = b"".join(resp.iter_bytes())
    assert hashlib.sha256(data).hexdigest() == index.get("huge-1.0-py3-none-any.whl").sha256


def test_64_requests_in_flight(serve: ServeFactory, mirror_factory: MirrorFactory,
                               tmp_path: Path) -> None:
    idx = build_index(tmp_path / "w", [WheelSpec(f"p{i}", "1.0") for i in range(16)])
    slow = mirror_factory(idx, Throttle(rate=20_000, kind="file"), name="slow")
    served = serve([slow])
    links = [u for i in range(16) for u in _links(served, f"p{i}").values()]
    barrier = threading.Barrier(64, timeout=20)

    def get(i: int) -> int:
        barrier.wait()
        with httpx.Client(timeout=30) as c:
            return c.get(links[i % len(links)] if i % 2 else served.url + f"p{i % 16}/"
                         ).status_code

    t0 = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        codes = list(pool.map(get, range(64)))
    assert codes == [200] * 64
    assert time.monotonic() - t0 < 20
    pattern = r"serve 200 \d+B \d+ms GET /files/"
    assert re.search(pattern, served.wait_log(pattern))
