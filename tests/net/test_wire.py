"""``pip_91n.net.wire``: redirects and credentials across hops, Content-Encoding, and the httpx
bridges both ways (logic only: the loopback and pip tests drive real servers)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence

import httpx
import pytest

from pip_91n.net import wire
from pip_91n.net.httpx_wire import HttpxWire
from pip_91n.net.wire import WireError, WireResponse, decode_body, describe, follow


class Script:
    """A wire that answers from a table: url -> (status, headers, body)."""

    def __init__(self, answers: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, str]]] = []

    def open(self, url: str, headers: Sequence[tuple[str, str]],
             timeout: float | None) -> WireResponse:
        self.sent.append((url, {k.lower(): v for k, v in headers}))
        status, head, body = self.answers[url]
        return WireResponse(status, head, [body], lambda: None)

    def close(self) -> None:
        pass


def test_follow_keeps_credentials_and_secrets_on_their_origin() -> None:
    w = Script({
        "https://m.example/simple/x/": (302, {"location": "https://cdn.example/x/"}, b""),
        "https://cdn.example/x/": (200, {"content-type": "text/html"}, b"page"),
    })
    resp, final = follow(w, "https://u:p@m.example/simple/x/",
                         [("accept", "text/html"), ("cookie", "c=1")], 5.0)
    assert (resp.status, resp.read(), final) == (200, b"page", "https://cdn.example/x/")
    first, second = w.sent
    assert first[0] == "https://m.example/simple/x/"  # the URL itself carries no userinfo
    assert first[1]["authorization"].startswith("Basic ") and first[1]["cookie"] == "c=1"
    assert "authorization" not in second[1] and "cookie" not in second[1]
    assert second[1]["accept"] == "text/html"


def test_follow_asks_for_an_origins_own_credentials_on_each_hop() -> None:
    w = Script({"https://m.example/a": (301, {"location": "/b"}, b""),
                "https://m.example/b": (200, {}, b"ok")})
    follow(w, "https://m.example/a", [], 5.0, credentials=lambda url: ("me", "pw"))
    assert all(h["authorization"] == "Basic bWU6cHc=" for _, h in w.sent)


def test_follow_refuses_a_downgrade_and_endless_redirects() -> None:
    down = Script({"https://m.example/a": (302, {"location": "http://m.example/a"}, b"")})
    with pytest.raises(WireError, match="non-https") as info:
        follow(down, "https://m.example/a", [], 5.0)
    assert describe(info.value, 5.0).startswith("redirect to non-https URL refused")
    loop = Script({"http://m/a": (302, {"location": "/a"}, b"")})
    with pytest.raises(WireError, match="too many redirects"):
        follow(loop, "http://m/a", [], 5.0)
    assert len(loop.sent) == 6


@pytest.mark.parametrize("coding, raw", [
    ("gzip", gzip.compress(b"body")),
    ("deflate", zlib.compress(b"body")),
    ("deflate", zlib.compress(b"body")[2:-4]),  # raw deflate, as some servers send it
    ("identity", b"body"),
    (None, b"body"),
    ("gzip, identity", gzip.compress(b"body")),
])
def test_decode_body_undoes_the_content_encoding(coding: str | None, raw: bytes) -> None:
    assert decode_body(raw, coding) == b"body"


def test_decode_body_names_what_it_cannot_undo() -> None:
    with pytest.raises(ValueError, match="unsupported Content-Encoding zstd-x"):
        decode_body(b"x", "zstd-x")
    with pytest.raises(ValueError, match="cannot decode Content-Encoding gzip"):
        decode_body(b"not gzip", "gzip")


@pytest.mark.parametrize("exc, kind", [
    (httpx.ConnectError("refused"), wire.CONNECT),
    (httpx.ConnectTimeout("slow"), wire.CONNECT_TIMEOUT),
    (httpx.ReadTimeout("slow"), wire.READ_TIMEOUT),
    (httpx.ProxyError("proxy"), wire.PROXY),
    (httpx.RemoteProtocolError("bad"), wire.PROTOCOL),
])
def test_httpx_errors_become_wire_errors(exc: Exception, kind: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(WireError) as info:
        HttpxWire(httpx.MockTransport(fail)).open("http://m/x", [], 1.0)
    assert info.value.kind == kind


def test_httpx_wire_carries_status_headers_and_body() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["range"] == "bytes=2-"
        return httpx.Response(206, headers={"Content-Range": "bytes 2-3/4"}, content=b"cd")

    resp = HttpxWire(httpx.MockTransport(answer)).open("http://m/f.whl", [("Range", "bytes=2-")],
                                                       1.0)
    assert (resp.status, resp.headers["content-range"], resp.read()) == (206, "bytes 2-3/4",
                                                                         b"cd")
