"""The sources' vote on each file's sha256 (``PIP_91N_VERIFY``): the pure vote, and the chain
serving pages and files by it (httpx.MockTransport for the logic; real pip in
tests/hook/test_pip_agreement.py)."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest

from pip_91n.chain.health import HealthStore
from pip_91n.chain.quorum import vote
from pip_91n.chain.transport import FailoverTransport
from pip_91n.errors import HashNotConfirmed
from pip_91n.index.routing import KIND_FILE, Resource
from tests.chain.test_transport_mock import BODY, FILE, SHA, Net, get, good, mirror, page

EVIL = b"tampered wheel " * 90
EVIL_SHA = hashlib.sha256(EVIL).hexdigest()
PAGE = "https://pypi.org/simple/demo/"


def tamper(request: httpx.Request) -> httpx.Response:
    """A mirror that serves another file under the same name, with a matching hash on its
    own page."""
    if request.url.path.startswith("/simple/demo/"):
        body = page(request.url.host).replace(SHA.encode(), EVIL_SHA.encode())
        return httpx.Response(200, headers={"content-type": "text/html"}, content=body)
    if request.url.path.endswith(".whl"):
        return httpx.Response(200, headers={"content-type": "application/octet-stream"},
                              content=EVIL)
    return good(request)


def lagging(request: httpx.Request) -> httpx.Response:
    """A mirror whose page does not list demo 2.0 yet."""
    if request.url.path.startswith("/simple/demo/"):
        return httpx.Response(200, headers={"content-type": "text/html"},
                              content=page(request.url.host, serial=9))
    return good(request)


def with_two(request: httpx.Request) -> httpx.Response:
    if request.url.path.startswith("/simple/demo/"):
        return httpx.Response(200, headers={"content-type": "text/html"},
                              content=page(request.url.host, versions=("1.0", "2.0")))
    return good(request)


def chain(net: Net, *names: object, verify: str = "quorum", hedge: float = 0.3
          ) -> FailoverTransport:
    mirrors = [m if not isinstance(m, str) else mirror(m) for m in names]
    return FailoverTransport(mirrors, inner=httpx.MockTransport(net), hedge_delay=hedge,  # type: ignore[arg-type]
                             health=HealthStore(None), timeout=2.0, verify=verify)


def file_url(host: str, name: str = FILE) -> str:
    return f"https://{host}.test/packages/ab/cd/{'e' * 60}/{name}"


# -- the vote ------------------------------------------------------------------------------

A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(("listings", "domains", "kind", "winner"), [
    ({"m1": A, "m2": A}, {}, "agreed", A),
    ({"m1": A}, {}, "single", None),
    ({"m1": A, "m2": A}, {"m1": "d", "m2": "d"}, "single", None),  # one operator, one voice
    ({"m1": A, "m2": B}, {}, "split", None),
    ({"m1": A, "m2": B, "m3": B}, {}, "outvoted", B),
    ({"m1": A, "m2": A, "m3": B}, {}, "agreed", A),
    ({"m1": A, "m2": B, "m3": B}, {"m2": "d", "m3": "d"}, "split", None),
    ({"m1": A, "pypi": B}, {}, "outvoted", B),  # the authority settles two sources
    ({"m1": A, "m2": A, "pypi": B}, {}, "outvoted", B),  # and outweighs a majority
    ({"pypi": A}, {}, "agreed", A),  # pypi.org's own page needs no second word
])
def test_vote(listings: dict[str, str], domains: dict[str, str], kind: str,
              winner: str | None) -> None:
    v = vote(A, listings, domains)
    assert (v.kind, v.winner) == (kind, winner)
    if kind == "outvoted":
        assert "m1" in v.dissent and v.backers


def test_vote_ignores_the_case_of_hashes() -> None:
    assert vote(A.upper(), {"m1": A, "m2": A.upper()}, {}).kind == "agreed"


# -- the chain -----------------------------------------------------------------------------

def test_a_healthy_chain_asks_the_second_source_for_the_page_only() -> None:
    net = Net()
    t = chain(net, "a", "b")
    assert get(t, PAGE).extensions["pip_91n.mirror"] == "a"
    assert get(t, file_url("a")).content == BODY
    assert ("b.test", "/simple/demo/") in net.seen
    assert net.hosts_for(".whl") == ["a"]  # the file from the head only
    t.close()


def test_the_witness_runs_beside_the_page_not_after_it() -> None:
    started: dict[str, float] = {}

    def slow(request: httpx.Request) -> httpx.Response:
        started.setdefault(request.url.host, time.monotonic())
        time.sleep(0.4)
        return good(request)

    net = Net(a=slow, b=slow)
    t = chain(net, "a", "b")
    t0 = time.monotonic()
    get(t, PAGE)
    took = time.monotonic() - t0
    assert abs(started["a.test"] - started["b.test"]) < 0.2
    assert took < 0.75, f"page took {took:.2f}s: the second source was asked in series"
    t.close()


def test_three_mirrors_the_majority_decides_and_the_liar_is_named(
        capsys: pytest.CaptureFixture[str]) -> None:
    net = Net(a=tamper)
    t = chain(net, "a", "b", "c")
    resp = get(t, PAGE)
    assert resp.extensions["pip_91n.mirror"] in ("b", "c")
    assert EVIL_SHA.encode() not in resp.content
    err = capsys.readouterr().err
    assert err.count("pip-91n: a lists") == 1 and EVIL_SHA in err and SHA in err
    assert get(t, file_url("b")).content == BODY
    assert "a" in t.failover.agreement.distrusted  # type: ignore[union-attr]
    assert t.failover.health.get("a").failures >= 1  # rests in the health memory too
    before = len(net.seen)
    get(t, PAGE)  # the rest of the run skips it
    assert all(host != "a.test" for host, _ in net.seen[before:])
    t.close()


def test_two_mirrors_that_disagree_hand_out_neither() -> None:
    net = Net(a=tamper)
    t = chain(net, "a", "b")
    get(t, PAGE)
    resp = get(t, file_url("a"))
    assert resp.status_code == 403
    assert "disagree" in resp.text and EVIL_SHA in resp.text and SHA in resp.text
    assert "pypi" in resp.text  # the fix: an authority or a third operator
    assert get(t, file_url("b")).status_code == 403  # nor the other one
    t.close()


def test_pypi_is_the_authority_between_two_sources() -> None:
    net = Net(a=tamper)
    t = chain(net, "a", "pypi")
    resp = get(t, PAGE)
    assert resp.extensions["pip_91n.mirror"] == "pypi"
    assert get(t, file_url("pypi")).content == BODY
    t.close()


def test_a_lying_witness_is_outvoted_and_the_head_keeps_serving(
        capsys: pytest.CaptureFixture[str]) -> None:
    net = Net(b=tamper)
    t = chain(net, "a", "b", "c")
    assert get(t, PAGE).extensions["pip_91n.mirror"] == "a"
    assert get(t, file_url("a")).content == BODY
    assert "pip-91n: b lists" in capsys.readouterr().err
    t.close()


def test_a_same_operator_mirror_is_no_second_source() -> None:
    net = Net(b=tamper)
    a, b = mirror("a", domain="one"), mirror("b", domain="one")
    t = chain(net, a, b, "c")
    get(t, PAGE)
    assert ("c.test", "/simple/demo/") in net.seen  # the witness comes from another operator
    t.close()


def test_a_release_the_witness_does_not_list_yet_is_no_disagreement(
        capsys: pytest.CaptureFixture[str]) -> None:
    net = Net(a=with_two, b=lagging)
    t = chain(net, "a", "b")
    get(t, PAGE)
    assert get(t, file_url("a", "demo-2.0-py3-none-any.whl")).status_code == 200
    assert get(t, file_url("a")).status_code == 200  # 1.0 is listed by both
    err = capsys.readouterr().err
    assert err.count("no second source confirmed") == 1
    assert "demo-2.0" in err and "PIP_91N_VERIFY=strict" in err
    assert "lists" not in err  # nobody was called a liar
    t.close()


def test_strict_refuses_what_no_second_source_lists() -> None:
    net = Net(a=with_two, b=lagging)
    t = chain(net, "a", "b", verify="strict")
    get(t, PAGE)
    resp = get(t, file_url("a", "demo-2.0-py3-none-any.whl"))
    assert resp.status_code == 403 and "PIP_91N_VERIFY=strict refuses" in resp.text
    assert get(t, file_url("a")).status_code == 200
    t.close()


def test_a_long_lived_chain_reads_the_witness_again_after_refresh() -> None:
    """One pip run reads each witness once; a server (``refresh`` set) reads it again when it
    refreshes a page, so a release the witness has since caught up with is confirmed."""
    behind = {"b": True}
    net = Net(a=with_two, b=lambda r: (lagging if behind["b"] else with_two)(r))
    t = chain(net, "a", "b", verify="strict")
    agreement = t.failover.agreement
    assert agreement is not None
    res = Resource(KIND_FILE, "demo", "demo-2.0-py3-none-any.whl", None, "a")
    get(t, PAGE)
    with pytest.raises(HashNotConfirmed):
        t.failover.check_file(res, file_url("a", res.filename or ""))
    behind["b"] = False
    get(t, PAGE)  # within the run: the witness is not asked again
    assert net.hosts_for("/simple/demo/").count("b") == 1
    agreement.refresh = 0.2
    time.sleep(0.25)
    get(t, PAGE)
    assert net.hosts_for("/simple/demo/").count("b") == 2
    t.failover.check_file(res, file_url("a", res.filename or ""))  # confirmed now
    t.close()


def test_a_dead_witness_gets_a_stand_in() -> None:
    gate = threading.Event()

    def black_hole(request: httpx.Request) -> httpx.Response:
        gate.wait(3)
        raise httpx.ReadTimeout("timed out")

    net = Net(b=black_hole)
    t = chain(net, "a", "b", "c", hedge=0.2)
    t0 = time.monotonic()
    get(t, PAGE)
    took = time.monotonic() - t0
    gate.set()
    assert ("c.test", "/simple/demo/") in net.seen
    assert took < 1.5
    assert get(t, file_url("a")).status_code == 200
    t.close()


def test_off_trusts_each_page_as_it_is() -> None:
    net = Net(a=tamper)
    t = chain(net, "a", "b", verify="off")
    assert get(t, PAGE).extensions["pip_91n.mirror"] == "a"
    assert get(t, file_url("a")).content == EVIL
    assert ("b.test", "/simple/demo/") not in net.seen
    t.close()


class _Pins:
    def __init__(self, *allowed: str) -> None:
        self.allowed = allowed

    def __bool__(self) -> bool:
        return True

    def is_hash_allowed(self, hash_name: str, hex_digest: str) -> bool:
        return hash_name == "sha256" and hex_digest in self.allowed


def test_the_users_hash_pins_win_over_the_vote() -> None:
    net = Net(a=with_two, b=lagging)
    t = chain(net, "a", "b", verify="strict")
    get(t, PAGE)
    agreement = t.failover.agreement
    assert agreement is not None
    res = Resource(KIND_FILE, "demo", "demo-2.0-py3-none-any.whl", None, "a")
    with pytest.raises(HashNotConfirmed, match="strict"):
        t.failover.check_file(res, file_url("a", res.filename or ""))
    agreement.note_pins("demo", _Pins(SHA))
    t.failover.check_file(res, file_url("a", res.filename or ""))
    t.close()


def test_the_error_survives_pickling() -> None:
    import pickle

    exc = HashNotConfirmed(FILE, A, {"m1": A, "m2": B}, "split")
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.listings == {"m1": A, "m2": B}
