"""FailoverTransport logic with httpx.MockTransport: every failover reason, hedging, errors."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pip_91n.chain.failover import demote_domain
from pip_91n.chain.health import HealthStore
from pip_91n.chain.requestlog import RequestLog
from pip_91n.chain.transport import PIN_EXTENSION, FailoverTransport
from pip_91n.errors import AllMirrorsFailed
from pip_91n.settings.catalog import LAYOUT_PYPI, Mirror

BODY = b"wheel bytes " * 100
SHA = hashlib.sha256(BODY).hexdigest()
FILE = "demo-1.0-py3-none-any.whl"
CAS = f"ab/cd/{'e' * 60}/{FILE}"
PYPI_FILE = f"https://files.pythonhosted.org/packages/{CAS}"
META = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
META_SHA = hashlib.sha256(META).hexdigest()


def mirror(name: str, *, layout: str = LAYOUT_PYPI, domain: str = "") -> Mirror:
    if layout == LAYOUT_PYPI:
        return Mirror(name, f"https://{name}.test/simple/", f"https://{name}.test/packages/",
                      LAYOUT_PYPI, domain)
    return Mirror(name, f"https://{name}.test/simple/", failure_domain=domain)


def page(host: str, *, serial: int = 10, versions: tuple[str, ...] = ("1.0",), flat: bool = False
         ) -> bytes:
    links = []
    for v in versions:
        fn = f"demo-{v}-py3-none-any.whl"
        path = f"/files/{fn}" if flat else f"/packages/ab/cd/{'e' * 60}/{fn}"
        links.append(f'<a href="https://{host}{path}#sha256={SHA}" '
                     f'data-core-metadata="sha256={META_SHA}">{fn}</a>')
    return f"<html><body>{''.join(links)}</body></html><!--SERIAL {serial}-->".encode()


Behaviour = Callable[[httpx.Request], httpx.Response]


def good(request: httpx.Request) -> httpx.Response:
    host, path = request.url.host, request.url.path
    if path.startswith("/simple/demo/"):
        flat = host.startswith("flat")
        return httpx.Response(200, headers={"content-type": "text/html"},
                              content=page(host, flat=flat))
    if path.endswith(".whl.metadata"):
        return httpx.Response(200, headers={"content-type": "application/octet-stream"},
                              content=META)
    if path.endswith(".whl") and (("/files/" in path) == host.startswith("flat")):
        return httpx.Response(200, headers={"content-type": "application/octet-stream"},
                              content=BODY)
    return httpx.Response(404, text="not here")


class Net:
    """Per-host behaviour; every request recorded as (host, path)."""

    def __init__(self, **hosts: Behaviour) -> None:
        self.hosts = hosts
        self.seen: list[tuple[str, str]] = []
        self.headers: list[httpx.Headers] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append((request.url.host, request.url.path))
            self.headers.append(request.headers)
        name = request.url.host.split(".")[0]
        return self.hosts.get(name, good)(request)

    def hosts_for(self, suffix: str) -> list[str]:
        return [h.split(".")[0] for h, p in self.seen if p.endswith(suffix)]


def raise_(exc: Exception) -> Behaviour:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


def status(code: int, ctype: str = "text/plain") -> Behaviour:
    return lambda r: httpx.Response(code, headers={"content-type": ctype}, content=b"x")


def corrupt(request: httpx.Request) -> httpx.Response:
    resp = good(request)
    return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content[:-1] + b"!")


class CutStream(httpx.SyncByteStream):
    def __iter__(self):  # type: ignore[no-untyped-def]
        yield BODY[:100]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def cut(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith(".whl"):
        return httpx.Response(200, headers={"content-length": str(len(BODY))}, stream=CutStream())
    return good(request)


def short(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith(".whl"):
        return httpx.Response(200, headers={"content-length": str(len(BODY) + 5)},
                              stream=httpx.ByteStream(BODY))
    return good(request)


def wrong_type(request: httpx.Request) -> httpx.Response:
    resp = good(request)
    ctype = "text/plain" if "/simple/" in request.url.path else "text/html"
    return httpx.Response(resp.status_code, headers={"content-type": ctype}, content=resp.content)


def transport(net: Net, *names: str, hedge: float = 0.0, tmp: Path | None = None,
              **kw: object) -> FailoverTransport:
    chain = [m if isinstance(m, Mirror) else mirror(m) for m in names]  # type: ignore[redundant-expr]
    health = HealthStore(tmp / "health.json" if tmp else None)
    return FailoverTransport(chain, inner=httpx.MockTransport(net), hedge_delay=hedge,
                             health=health, timeout=2.0, **kw)  # type: ignore[arg-type]


def get(t: httpx.BaseTransport, url: str, **ext: object) -> httpx.Response:
    with httpx.Client(transport=t) as client:
        req = client.build_request("GET", url, extensions=ext)
        resp = client.send(req)
        resp.read()
        return resp


def learn(t: FailoverTransport) -> None:
    assert get(t, "https://pypi.org/simple/demo/").status_code == 200


FAULTS: dict[str, tuple[Behaviour, str]] = {
    "connect": (raise_(httpx.ConnectError("[Errno 111] Connection refused")), "connect failed"),
    "dns": (raise_(httpx.ConnectError("[Errno -2] Name or service not known")), "DNS failure"),
    "connect-timeout": (raise_(httpx.ConnectTimeout("timed out")), "connect timeout after 2s"),
    "first-byte": (raise_(httpx.ReadTimeout("timed out")), "no first byte within 2s"),
    "tls": (raise_(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] bad")), "TLS error"),
    "503": (status(503), "HTTP 503"),
    "500": (status(500), "HTTP 500"),
    "429": (lambda r: httpx.Response(429, headers={"retry-after": "3"}), "HTTP 429 (Retry-After 3)"),
    "403": (status(403), "HTTP 403"),
    "wrong-type": (wrong_type, "wrong Content-Type"),
    "cut": (cut, "body cut short after 100 bytes"),
    "short": (short, "body cut short"),
    "sha": (corrupt, "sha256 mismatch"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fails_over_for_files(fault: str) -> None:
    behaviour, reason = FAULTS[fault]
    net = Net()
    t = transport(net, "a", "b")
    learn(t)  # pages from a (healthy so far): hashes known
    net.hosts["a"] = behaviour
    resp = get(t, PYPI_FILE)
    assert resp.status_code == 200 and resp.content == BODY
    assert resp.extensions["pip_91n.mirror"] == "b"
    assert t.failover.health.get("a").failures == 1 and reason in t.failover.health.get("a").last_reason
    assert t.failover.health.get("b").failures == 0
    t.close()


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("cut", "short", "sha")])
def test_each_fault_fails_over_for_pages(fault: str) -> None:
    behaviour, reason = FAULTS[fault]
    net = Net(a=behaviour)
    t = transport(net, "a", "b")
    resp = get(t, "https://pypi.org/simple/demo/")
    assert resp.status_code == 200 and resp.extensions["pip_91n.url"] == "https://b.test/simple/demo/"
    assert reason in t.failover.health.get("a").last_reason


def test_all_mirrors_failing_lists_each_and_why() -> None:
    net = Net(a=FAULTS["connect"][0], b=status(503), c=FAULTS["first-byte"][0])
    t = transport(net, "a", "b", "c")
    with pytest.raises(AllMirrorsFailed) as info:
        get(t, "https://pypi.org/simple/demo/")
    err = info.value
    assert [a.mirror for a in err.attempts] == ["a", "b", "c"]
    assert [a.reason.split(":")[0] for a in err.attempts] == [
        "connect failed", "HTTP 503", "no first byte within 2s"]
    text = str(err)
    assert "all 3 mirrors failed for https://pypi.org/simple/demo/" in text
    assert "- b: HTTP 503 (https://b.test/simple/demo/)" in text and "fix:" in text
    assert isinstance(err, ConnectionError)


def test_404_on_the_first_mirror_is_looked_up_on_the_next() -> None:
    net = Net(a=status(404))
    t = transport(net, "a", "b")
    assert get(t, "https://pypi.org/simple/demo/").status_code == 200
    assert t.failover.health.get("a").failures == 0  # a 404 is not a health fault


def test_404_everywhere_is_a_404() -> None:
    t = transport(Net(a=status(404), b=status(410)), "a", "b")
    resp = get(t, "https://pypi.org/simple/nosuch/")
    assert resp.status_code == 404 and "not found on any mirror" in resp.text


def test_stale_page_is_not_served() -> None:
    serials = {"a": 10, "b": 7, "c": 12}

    def by_serial(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        return httpx.Response(200, headers={"content-type": "text/html",
                                            "x-pypi-last-serial": str(serials[host[0]])},
                              content=page(host))

    t = transport(Net(a=by_serial, b=by_serial, c=by_serial), "b", "a", "c")
    net_order = ["b", "a", "c"]
    assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == net_order[0]
    t.failover.serials.accept("demo", 10)  # a page with serial 10 was seen earlier in this run
    resp = get(t, "https://pypi.org/simple/demo/")
    assert resp.extensions["pip_91n.mirror"] == "a"  # b (7) is stale, skipped
    assert t.failover.health.get("b").failures == 0
    t.failover.serials.accept("demo", 99)
    with pytest.raises(AllMirrorsFailed, match="stale page"):
        get(t, "https://pypi.org/simple/demo/")


def test_exact_pin_missing_on_first_mirror_is_looked_up_next() -> None:
    def old(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"},
                              content=page(request.url.host, versions=("1.0",)))

    def new(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"},
                              content=page(request.url.host, versions=("1.0", "2.0")))

    t = transport(Net(a=old, b=new), "a", "b")
    assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "a"
    resp = get(t, "https://pypi.org/simple/demo/", **{PIN_EXTENSION: "2.0"})
    assert resp.extensions["pip_91n.mirror"] == "b"
    resp = get(t, "https://pypi.org/simple/demo/", **{PIN_EXTENSION: "3.0"})
    assert resp.status_code == 200 and resp.extensions["pip_91n.mirror"] == "a"  # nobody has it


def test_sha_from_the_url_fragment_is_checked() -> None:
    t = transport(Net(a=corrupt), "a", "b")
    resp = get(t, f"{PYPI_FILE}#sha256={SHA}")
    assert resp.content == BODY and resp.extensions["pip_91n.mirror"] == "b"


def test_metadata_is_verified_and_fails_over() -> None:
    net = Net()
    t = transport(net, "a", "b")
    learn(t)
    net.hosts["a"] = lambda r: httpx.Response(404) if r.url.path.endswith(".metadata") else good(r)
    resp = get(t, PYPI_FILE + ".metadata")
    assert resp.content == META and resp.extensions["pip_91n.mirror"] == "b"
    net.hosts["b"] = corrupt
    with pytest.raises(AllMirrorsFailed, match="sha256 mismatch"):
        get(t, PYPI_FILE + ".metadata")


def test_file_on_a_mirror_with_unknown_layout_is_found_through_its_page() -> None:
    net = Net(a=status(503))
    t = transport(net, "a", mirror("flat", layout="unknown"))
    resp = get(t, PYPI_FILE)  # no hash known yet: found by filename on flat's own page
    assert resp.content == BODY
    assert ("flat.test", "/simple/demo/") in net.seen and ("flat.test", f"/files/{FILE}") in net.seen
    meta = get(t, PYPI_FILE + ".metadata")
    assert meta.content == META


def test_fast_path_404_falls_back_to_the_page() -> None:
    def moved(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/packages/"):
            return httpx.Response(404)
        if request.url.path == "/simple/demo/":
            return httpx.Response(200, headers={"content-type": "text/html"},
                                  content=page(request.url.host, flat=True))
        if request.url.path == f"/files/{FILE}":
            return httpx.Response(200, content=BODY)
        return httpx.Response(404)

    net = Net(a=status(500), b=moved)
    t = transport(net, "a", "b")
    assert get(t, PYPI_FILE).content == BODY
    assert net.seen[-3:] == [("b.test", f"/packages/{CAS}"), ("b.test", "/simple/demo/"),
                             ("b.test", f"/files/{FILE}")]


def test_a_file_url_of_a_chain_mirror_is_tried_there_first() -> None:
    net = Net()
    t = transport(net, "a", "b")
    learn(t)
    resp = get(t, f"https://a.test/packages/{CAS}")
    assert resp.extensions["pip_91n.mirror"] == "a"


def test_hedging_races_a_slow_mirror_and_the_fast_one_wins(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(5)
        return good(request)

    log = tmp_path / "requests.log"
    t = transport(Net(a=slow), "a", "b", hedge=0.1, request_log=RequestLog(str(log)))
    t0 = time.monotonic()
    resp = get(t, "https://pypi.org/simple/demo/")
    took = time.monotonic() - t0
    release.set()
    assert resp.extensions["pip_91n.mirror"] == "b" and took < 1.5
    assert "no answer after" in t.failover.health.get("a").last_reason  # the slow one backs off
    slow_line = next(ln for ln in log.read_text().splitlines() if "no answer after" in ln)
    assert " https://a.test/simple/demo/ failover: no answer after" in slow_line  # names the URL
    t0 = time.monotonic()
    assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "b"
    assert time.monotonic() - t0 < 0.1  # skipped now: no head start paid


def test_without_hedging_a_slow_mirror_is_waited_for() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)
        return good(request)

    t = transport(Net(a=slow), "a", "b", hedge=0.0)
    assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "a"


def test_backing_off_mirrors_are_skipped_but_kept_as_last_resort(tmp_path: Path) -> None:
    net = Net(a=status(503))
    t = transport(net, "a", "b", tmp=tmp_path)
    get(t, "https://pypi.org/simple/demo/")
    net.seen.clear()
    get(t, "https://pypi.org/simple/demo/")
    assert net.hosts_for("/demo/") == ["b"]
    # another process shares the memory
    t2 = transport(net, "a", "b", tmp=tmp_path)
    get(t2, "https://pypi.org/simple/demo/")
    assert net.hosts_for("/demo/") == ["b", "b"]
    net.hosts["a"] = good
    net.hosts["b"] = status(503)
    assert get(t2, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "a"


def test_same_failure_domain_is_demoted_after_a_fault() -> None:
    t1, t2, x = mirror("t1", domain="tuna"), mirror("t2", domain="tuna"), mirror("x")
    assert demote_domain([t2, x], "tuna") == [x, t2]
    net = Net(t1=status(502), t2=status(502))
    t = transport(net, t1, t2, x)  # type: ignore[arg-type]
    assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "x"
    assert net.hosts_for("/demo/") == ["t1", "x"]


def test_redirects_are_followed_within_the_attempt() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": f"https://c.test{request.url.path}"})

    def insecure(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": f"http://c.test{request.url.path}"})

    t = transport(Net(a=redirect), "a")
    resp = get(t, "https://pypi.org/simple/demo/")
    assert resp.extensions["pip_91n.url"] == "https://c.test/simple/demo/"
    with pytest.raises(AllMirrorsFailed, match="non-https"):
        get(transport(Net(a=insecure), "a"), "https://pypi.org/simple/demo/")


def test_credentials_stay_on_their_host() -> None:
    private = Mirror("priv", "https://user:s3cret@priv.test/simple/")
    net = Net(priv=status(503))
    t = transport(net, private, "b")  # type: ignore[arg-type]
    with httpx.Client(transport=t) as client:
        client.get("https://pypi.org/simple/demo/", headers={"authorization": "Basic pypi",
                                                             "cookie": "c=1"})
    priv_h, b_h = net.headers
    assert priv_h["authorization"] == "Basic dXNlcjpzM2NyZXQ="  # its own credentials only
    assert "authorization" not in b_h and "cookie" not in b_h
    assert t.failover.health.get("priv").failures == 1


def test_log_lines_are_redacted(tmp_path: Path) -> None:
    private = Mirror("priv", "https://user:s3cret@priv.test/simple/")
    logfile = tmp_path / "log.txt"
    t = transport(Net(priv=status(503)), private, "b",  # type: ignore[arg-type]
                  request_log=RequestLog(str(logfile)))
    get(t, "https://pypi.org/simple/demo/")
    t.close()
    lines = logfile.read_text().splitlines()
    assert len(lines) == 2 and "s3cret" not in logfile.read_text()
    assert lines[0].split()[2:4] == ["priv", "503"] and lines[0].endswith("failover: HTTP 503")
    assert lines[1].split()[2:4] == ["b", "200"]


def test_requests_outside_the_chain_pass_through_untouched() -> None:
    net = Net()
    t = transport(net, "a")
    resp = get(t, "https://download.pytorch.org/whl/cpu/torch/")
    assert resp.status_code == 404 and net.seen == [("download.pytorch.org", "/whl/cpu/torch/")]
    with httpx.Client(transport=t) as client:
        client.head("https://pypi.org/simple/demo/")
    assert net.seen[-1] == ("pypi.org", "/simple/demo/")


def test_range_and_conditional_headers_are_not_sent_cross_mirror() -> None:
    net = Net()
    t = transport(net, "a")
    learn(t)
    with httpx.Client(transport=t) as client:
        client.get(PYPI_FILE, headers={"range": "bytes=10-", "if-none-match": '"x"'})
    sent = net.headers[-1]
    assert "range" not in sent and "if-none-match" not in sent
    assert sent["accept-encoding"] == "identity"


class Closable(httpx.MockTransport):
    closed = 0

    def close(self) -> None:
        Closable.closed += 1


def test_close_closes_every_inner_transport_once() -> None:
    shared = Closable(good)
    t = FailoverTransport([mirror("a"), mirror("b")], inner=shared,
                          transports={"a": Closable(good), "b": shared})
    t.close()
    assert Closable.closed == 2


def test_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError):
        FailoverTransport([])


def test_a_mirror_naming_another_hash_is_never_mixed_in(caplog: pytest.LogCaptureFixture) -> None:
    def liar(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/simple/"):
            body = page(request.url.host).replace(SHA.encode(), b"f" * 64)
            return httpx.Response(200, headers={"content-type": "text/html"}, content=body)
        return corrupt(request)

    net = Net(b=liar)
    t = transport(net, "a", "b")
    learn(t)  # a's page: the real hash
    net.hosts["a"] = status(503)
    with caplog.at_level("WARNING", logger="pip_91n"):
        assert get(t, "https://pypi.org/simple/demo/").extensions["pip_91n.mirror"] == "b"
    assert "keeping the first" in caplog.text
    with pytest.raises(AllMirrorsFailed, match="sha256 mismatch"):
        get(t, PYPI_FILE)  # b's bytes do not match the hash pip was given


def test_at_most_three_mirrors_are_raced_at_once() -> None:
    from pip_91n.chain.failover import MAX_PARALLEL

    lock = threading.Lock()
    active = [0, 0]  # now, peak

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return good(request)

    names = ["a", "b", "c", "d", "e"]
    t = transport(Net(**{n: slow for n in names}), *names, hedge=0.02)
    assert get(t, "https://pypi.org/simple/demo/").status_code == 200
    assert active[1] == MAX_PARALLEL == 3
