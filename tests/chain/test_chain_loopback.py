"""The chain against REAL loopback mirrors (tests.harness): every fault kind, alone and combined.

Each test fetches what pip would: a project page through ``https://pypi.org/simple/...``, then
the file and its ``.metadata`` by the URL the page gave (resolved against the mirror that
served it), and checks the bytes against the index's sha256. Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from pip_91n.chain.health import HealthStore
from pip_91n.chain.transport import PIN_EXTENSION, FailoverTransport
from pip_91n.errors import AllMirrorsFailed
from pip_91n.index.pages import parse_page
from pip_91n.settings.catalog import LAYOUT_PYPI, Mirror
from tests.harness import (
    BlackHole,
    Corrupt,
    Fault,
    MetadataMissing,
    MirrorServer,
    NotFound,
    PackageIndex,
    RefusedMirror,
    ResetAfter,
    ServerError,
    SlowFirstByte,
    Stale,
    TooManyRequests,
    Truncate,
    WrongContentType,
)

TIMEOUT = 1.0
HEDGE = 0.25


def as_mirror(server: MirrorServer | RefusedMirror, flat: bool = False) -> Mirror:
    name = getattr(server, "name", "refused")
    if flat or isinstance(server, RefusedMirror):
        return Mirror(name, server.simple_url)
    return Mirror(name, server.simple_url, server.url + "/packages/", LAYOUT_PYPI)


@pytest.fixture
def chain_client(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    made: list[FailoverTransport] = []

    def make(mirrors: Sequence[Mirror], *, hedge: float = HEDGE) -> httpx.Client:
        t = FailoverTransport(mirrors, health=HealthStore(tmp_path / f"h{len(made)}.json"),
                              timeout=TIMEOUT, hedge_delay=hedge)
        made.append(t)
        return httpx.Client(transport=t, timeout=30)

    yield make
    for t in made:
        t.close()


def fetch_project(client: httpx.Client, index: PackageIndex, project: str,
                  **ext: object) -> tuple[httpx.Response, str]:
    """Page, newest wheel and its metadata; returns the page response and the wheel's mirror."""
    page_resp = client.send(client.build_request(
        "GET", f"https://pypi.org/simple/{project}/", extensions=ext))
    assert page_resp.status_code == 200, page_resp.text
    base = page_resp.extensions["pip_91n.url"]
    page = parse_page(page_resp.content, base, page_resp.headers.get("content-type"))
    newest = index.files(project)[-1]
    link = page.find(newest.filename)
    assert link is not None, f"{newest.filename} not on the page served by {base}"
    wheel = client.get(link.url)  # pip strips the #sha256 fragment, and so do we here
    assert wheel.status_code == 200
    assert hashlib.sha256(wheel.content).hexdigest() == newest.sha256
    if newest.metadata is not None:
        meta = client.get(link.url + ".metadata")
        assert meta.status_code == 200 and meta.content == newest.metadata
    return page_resp, wheel.extensions["pip_91n.mirror"]


SINGLE_FAULTS: dict[str, Sequence[Fault] | str] = {
    "refused": "refused",
    "black-hole": [BlackHole(hold=5.0)],
    "slow-first-byte": [SlowFirstByte(delay=3.0)],
    "503": [ServerError()],
    "429": [TooManyRequests()],
    "404-file": [NotFound(kind="file")],
    "reset": [ResetAfter(kind="file", nbytes=200)],
    "truncate": [Truncate(kind="file")],
    "corrupt": [Corrupt(kind="file")],
    "metadata-missing": [MetadataMissing()],
    "wrong-content-type": [WrongContentType(kind="page")],
}


@pytest.mark.parametrize("fault", list(SINGLE_FAULTS))
def test_each_fault_alone(fault: str, mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    bad, good = mirrors(dep_tree, [SINGLE_FAULTS[fault], None])
    client = chain_client([as_mirror(bad), as_mirror(good)])
    t0 = time.monotonic()
    fetch_project(client, dep_tree, "app")
    fetch_project(client, dep_tree, "lib-a")
    took = time.monotonic() - t0
    assert took < 3 * TIMEOUT + 1.0, f"{fault}: {took:.2f}s"
    # the healthy mirror served everything that the faulty one could not
    assert good.stats().by_kind.get("file", 0) >= 1 or fault in ("metadata-missing",
                                                                  "wrong-content-type")


def test_dead_head_costs_one_failure_then_is_skipped(mirrors, dep_tree: PackageIndex,  # type: ignore[no-untyped-def]
                                                     chain_client) -> None:
    dead, good = mirrors(dep_tree, [[BlackHole(hold=5.0)], None])
    client = chain_client([as_mirror(dead), as_mirror(good)])
    t0 = time.monotonic()
    fetch_project(client, dep_tree, "app")
    assert time.monotonic() - t0 < HEDGE + 1.0  # one head start, not a timeout
    before = dead.stats(wait=0).total_requests
    assert before == 1
    for project in ("lib-a", "lib-b", "lib-c"):
        fetch_project(client, dep_tree, project)
    assert dead.stats(wait=0).total_requests == before  # skipped while it backs off


def test_combined_faults_across_three_mirrors(mirrors, mirror_factory, dep_tree: PackageIndex,  # type: ignore[no-untyped-def]
                                              chain_client) -> None:
    m0, m1 = mirrors(dep_tree, [
        [BlackHole(kind="page", hold=5.0), Corrupt(kind="file")],
        [ServerError(kind="page", times=2), Truncate(kind="file"), MetadataMissing()],
    ])
    flat = mirror_factory(dep_tree, SlowFirstByte(kind="page", delay=0.1), layout="flat",
                          name="flat")
    client = chain_client([as_mirror(m0), as_mirror(m1), as_mirror(flat, flat=True)])
    for project in ("app", "lib-a", "lib-b", "lib-c"):
        fetch_project(client, dep_tree, project)
    assert flat.stats().by_kind.get("file", 0) >= 1  # found through its own page (flat layout)


def test_stale_mirror_and_exact_pin(mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    stale, fresh = mirrors(dep_tree, [[Stale()], None])
    client = chain_client([as_mirror(stale), as_mirror(fresh)], hedge=0)
    newest = dep_tree.newest_version("app")
    # an exact pin missing on the lagging head is looked up on the next mirror
    page, _ = fetch_project(client, dep_tree, "app", **{PIN_EXTENSION: newest})
    assert page.extensions["pip_91n.mirror"] == fresh.name
    # from now on the head's lower serial marks its page as stale: never served
    again = client.get("https://pypi.org/simple/app/")
    assert again.extensions["pip_91n.mirror"] == fresh.name
    assert stale.stats().by_kind.get("page", 0) == 2


def test_every_mirror_failing_lists_each_one(mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    servers = mirrors(dep_tree, ["refused", [ServerError()], [BlackHole(hold=5.0)]])
    client = chain_client([as_mirror(s) for s in servers])
    t0 = time.monotonic()
    with pytest.raises(AllMirrorsFailed) as info:
        client.get("https://pypi.org/simple/app/")
    assert time.monotonic() - t0 < TIMEOUT + 1.0
    reasons = {a.mirror: a.reason for a in info.value.attempts}
    assert reasons["m0"].startswith("connect failed")
    assert reasons["m1"] == "HTTP 503"
    assert reasons["m2"].startswith("no first byte within")


PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
              "text/html; q=0.01")


def test_json_pages_and_hashes_from_them(mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    bad, good = mirrors(dep_tree, [[Corrupt(kind="file")], None])
    client = chain_client([as_mirror(bad), as_mirror(good)])
    resp = client.get("https://pypi.org/simple/lib-b/", headers={"accept": PIP_ACCEPT})
    assert resp.headers["content-type"].startswith("application/vnd.pypi.simple.v1+json")
    newest = dep_tree.files("lib-b")[-1]
    url = next(f["url"] for f in resp.json()["files"] if f["filename"] == newest.filename)
    wheel = client.get(httpx.URL(resp.extensions["pip_91n.url"]).join(url))
    assert hashlib.sha256(wheel.content).hexdigest() == newest.sha256
    assert wheel.extensions["pip_91n.mirror"] == good.name  # bad's bytes failed the hash


def test_throttled_head_is_raced_and_the_loser_cancelled(mirror_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         chain_client) -> None:
    from tests.harness import Throttle, WheelSpec, build_index

    index = build_index(tmp_path / "w", [WheelSpec("big", "1.0", payload_size=400_000)])
    slow = mirror_factory(index, Throttle(kind="file", rate=50_000), name="slow")
    fast = mirror_factory(index, name="fast")
    client = chain_client([as_mirror(slow), as_mirror(fast)])
    fetch_project(client, index, "big")  # the page comes from "slow" (pages are not throttled)
    dist = index.files("big")[-1]
    t0 = time.monotonic()
    wheel = client.get(slow.file_url(dist.filename))
    assert time.monotonic() - t0 < 2.0  # not the ~8 s the throttled mirror would take
    assert wheel.extensions["pip_91n.mirror"] == "fast"
    assert hashlib.sha256(wheel.content).hexdigest() == dist.sha256


def test_threads_share_one_transport(mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    import concurrent.futures

    servers = mirrors(dep_tree, [[ServerError(kind="page", times=3)], [BlackHole(kind="file", hold=5)],
                                 None])
    client = chain_client([as_mirror(s) for s in servers])
    projects = ["app", "lib-a", "lib-b", "lib-c"] * 3
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda p: fetch_project(client, dep_tree, p), projects))
    assert len(results) == len(projects)


def test_tls_failure_is_a_failover_reason(mirrors, dep_tree: PackageIndex, chain_client) -> None:  # type: ignore[no-untyped-def]
    plain, good = mirrors(dep_tree, [None, None])
    # https:// to a plain-http server: the TLS handshake fails for real
    tls = Mirror("tls", f"https://127.0.0.1:{plain.port}/simple/")
    client = chain_client([tls, as_mirror(good)])
    fetch_project(client, dep_tree, "app")
    transport = client._transport
    assert isinstance(transport, FailoverTransport)
    assert transport.failover.health.get("tls").last_reason.startswith("TLS error")
