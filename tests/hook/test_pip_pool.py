"""``pip_91n.hook.pool.PipPool`` in-process: the chain's and the download engine's requests
over the pools of this interpreter's pip session, against loopback mirrors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urljoin

import pytest

from pip_91n.hook.pool import PipPool, translate
from pip_91n.net import wire
from tests.harness import PackageIndex, ResetAfter, ServerError

session_mod = pytest.importorskip("pip._internal.network.session")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def pip_session() -> Iterator[Any]:
    session = session_mod.PipSession(retries=5)  # pip's own adapters retry; the pool must not
    try:
        yield session
    finally:
        session.close()


class _Got(NamedTuple):
    status_code: int
    headers: dict[str, str]
    content: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.content)


def _pool(session: Any) -> PipPool:
    from pip._vendor.requests.adapters import HTTPAdapter
    from pip._vendor.requests.models import PreparedRequest
    from pip._vendor.requests.structures import CaseInsensitiveDict

    pool = PipPool(HTTPAdapter, PreparedRequest, CaseInsensitiveDict)
    pool.bind(session, session.get_adapter)
    return pool


def _get(pool: PipPool, url: str, timeout: float = 5.0) -> _Got:
    resp, final = wire.follow(pool, url, [("Accept", "application/vnd.pypi.simple.v1+json")],
                              timeout)
    try:
        return _Got(resp.status, resp.headers, resp.read(), final)
    finally:
        resp.close()


def _file_url(page: _Got, filename: str) -> str:
    rel = next(f["url"] for f in page.json()["files"] if f["filename"] == filename)
    return urljoin(page.url, rel).split("#", 1)[0]


def test_pages_and_files_travel_over_one_pooled_connection(
    pip_session: Any, dep_tree: PackageIndex, mirrors: Any,
) -> None:
    (mirror,) = mirrors(dep_tree, 1)
    pool = _pool(pip_session)
    page = _get(pool, mirror.simple_url + "lib-c/")
    assert page.status_code == 200 and page.json()["name"] == "lib-c"
    dist = dep_tree.get("lib_c-2.0-py3-none-any.whl")
    assert dist is not None
    body = _get(pool, _file_url(page, dist.filename))
    assert body.content == dist.path.read_bytes()
    assert body.headers["content-length"] == str(dist.size)
    manager = pip_session.get_adapter(mirror.url).poolmanager
    # urllib3's RecentlyUsedContainer refuses iteration; keys() is its way
    keys = manager.pools.keys()
    pools = [manager.pools[key] for key in keys if key.key_port == mirror.port]
    # pip's own pool served both, over one kept-alive connection
    assert [(p.num_connections, p.num_requests) for p in pools] == [(1, 2)]


def test_retries_stay_off_and_errors_become_wire_errors(
    pip_session: Any, dep_tree: PackageIndex, mirrors: Any, mirror_factory: Any,
) -> None:
    failing, resetting = mirrors(dep_tree, [ServerError(status=503),
                                            ResetAfter(nbytes=500, kind="file")])
    pool = _pool(pip_session)
    assert _get(pool, failing.simple_url + "lib-c/").status_code == 503
    assert failing.stats().total_requests == 1  # pip's adapter would have asked 6 times
    with pytest.raises(wire.WireError) as refused:
        _get(pool, mirror_factory.refused().simple_url + "lib-c/")
    assert refused.value.kind == wire.CONNECT
    page = _get(pool, resetting.simple_url + "lib-c/")
    dist = dep_tree.get("lib_c-2.0-py3-none-any.whl")
    assert dist is not None and dist.size > 500
    with pytest.raises(wire.WireError) as cut:
        _get(pool, _file_url(page, dist.filename))
    assert cut.value.kind == wire.READ
    # the dropped connection is not reused: the next request works
    assert _get(pool, resetting.simple_url + "lib-c/").status_code == 200


def test_the_proxy_of_the_pip_session_is_used(
    pip_session: Any, dep_tree: PackageIndex, mirrors: Any, recording_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (mirror,) = mirrors(dep_tree, 1)
    proxy = recording_proxy(None)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the environment bypasses it; --proxy wins
    pip_session.proxies = {"http": proxy.url, "https": proxy.url}  # what pip --proxy sets
    assert _get(_pool(pip_session), mirror.simple_url + "lib-c/").status_code == 200
    assert [path for path, _ in proxy.seen] == [mirror.simple_url + "lib-c/"]


def test_the_environment_proxy_applies_unless_no_proxy_bypasses_it(
    pip_session: Any, dep_tree: PackageIndex, mirrors: Any, recording_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (mirror,) = mirrors(dep_tree, 1)
    proxy = recording_proxy(None)
    monkeypatch.setenv("http_proxy", proxy.url)
    assert _get(_pool(pip_session), mirror.simple_url + "lib-a/").status_code == 200
    assert [path for path, _ in proxy.seen] == [mirror.simple_url + "lib-a/"]
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert _get(_pool(pip_session), mirror.simple_url + "lib-b/").status_code == 200
    assert len(proxy.seen) == 1


def test_an_unbound_pool_fails_like_a_dead_connection() -> None:
    from pip._vendor.requests.adapters import HTTPAdapter
    from pip._vendor.requests.models import PreparedRequest
    from pip._vendor.requests.structures import CaseInsensitiveDict

    pool = PipPool(HTTPAdapter, PreparedRequest, CaseInsensitiveDict)
    with pytest.raises(wire.WireError, match="no pip session") as info:
        _get(pool, "http://127.0.0.1:9/simple/")
    assert info.value.kind == wire.CONNECT


def test_translate_maps_requests_and_urllib3_errors() -> None:
    from pip._vendor.requests import exceptions as rex
    from pip._vendor.urllib3 import exceptions as uex

    cases = {
        rex.ConnectTimeout("x"): wire.CONNECT_TIMEOUT,
        rex.ReadTimeout("x"): wire.READ_TIMEOUT,
        rex.ProxyError("x"): wire.PROXY,
        rex.SSLError("x"): wire.CONNECT,
        rex.ConnectionError("x"): wire.CONNECT,
    }
    for exc, kind in cases.items():
        assert translate(exc, reading=False).kind == kind, exc
    assert translate(uex.ReadTimeoutError(None, "/", "slow"), reading=True).kind \
        == wire.READ_TIMEOUT
    assert translate(uex.ProtocolError("reset"), reading=True).kind == wire.READ


def test_tls_verification_follows_pip_and_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = types.SimpleNamespace(verify=True, trust_env=True)
    assert PipPool._verify(session) is True  # pip's own context (truststore)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ca/curl.pem")
    assert PipPool._verify(session) == "/etc/ca/curl.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca/requests.pem")
    assert PipPool._verify(session) == "/etc/ca/requests.pem"
    session.verify = "/etc/ca/pip-cert.pem"  # pip --cert
    assert PipPool._verify(session) == "/etc/ca/pip-cert.pem"
    session.verify, session.trust_env = True, False
    assert PipPool._verify(session) is True
