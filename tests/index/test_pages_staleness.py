"""Page parsing (PEP 503/691/658) and the staleness policy, as tables."""

from __future__ import annotations

import json

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pip_91n.index.pages import JSON_TYPE, is_page_content_type, parse_page, parse_serial
from pip_91n.index.staleness import (
    is_stale,
    judge_page,
    newer_serial,
    pinned_version,
    versions_in,
)

SHA = "a" * 64
MSHA = "b" * 64
HTML = f"""<!DOCTYPE html><html><body>
<a href="../../packages/ab/cd/ef/demo-1.0-py3-none-any.whl#sha256={SHA}"
   data-core-metadata="sha256={MSHA}" data-requires-python="&gt;=3.8">demo-1.0-py3-none-any.whl</a>
<a href="https://files.example/demo-0.9.tar.gz" data-yanked="">demo-0.9.tar.gz</a>
</body></html>
<!--SERIAL 1234-->""".encode()


def test_parse_html_page_resolves_relative_links() -> None:
    page = parse_page(HTML, "https://m.example/simple/demo/", "text/html; charset=utf-8")
    assert page.serial == 1234
    whl, sdist = page.files
    assert whl.url == "https://m.example/packages/ab/cd/ef/demo-1.0-py3-none-any.whl"
    assert (whl.sha256, whl.metadata_sha256, whl.yanked) == (SHA, MSHA, False)
    assert (sdist.filename, sdist.sha256, sdist.yanked) == ("demo-0.9.tar.gz", None, True)


def test_parse_json_page() -> None:
    body = json.dumps({
        "meta": {"api-version": "1.1", "_last-serial": "77"},
        "name": "demo",
        "files": [
            {"filename": "demo-1.0-py3-none-any.whl", "url": "../../p/demo-1.0-py3-none-any.whl",
             "hashes": {"sha256": SHA.upper()}, "core-metadata": {"sha256": MSHA},
             "yanked": "broken"},
            {"filename": "demo-0.9.tar.gz", "url": "https://x/demo-0.9.tar.gz#sha256=" + SHA,
             "hashes": {}},
            {"no": "url"},
        ],
    }).encode()
    page = parse_page(body, "https://m/simple/demo/", JSON_TYPE)
    assert page.serial == 77
    assert [f.filename for f in page.files] == ["demo-1.0-py3-none-any.whl", "demo-0.9.tar.gz"]
    assert page.files[0].url == "https://m/p/demo-1.0-py3-none-any.whl"
    assert page.files[0].sha256 == SHA and page.files[0].yanked
    assert page.files[0].metadata_sha256 == MSHA
    assert page.files[1].sha256 == SHA
    assert page.find("demo-0.9.tar.gz", SHA) is page.files[1]
    assert page.find("demo-0.9.tar.gz", "c" * 64) is None
    assert page.name == "demo" and page.files[0].yanked == "broken"  # the reason is kept
    assert page.files[0].has_metadata and not page.files[1].has_metadata


def test_a_page_keeps_what_a_served_copy_needs_and_a_broken_json_page_is_an_error() -> None:
    html = (b'<html><head><title>Links for Demo</title></head><body>'
            b'<a href="demo-1.0.tar.gz" data-requires-python="&gt;=3.9" data-yanked="" '
            b'data-core-metadata="true">demo-1.0.tar.gz</a></body></html>')
    page = parse_page(html, "https://m/simple/demo/", "text/html")
    f = page.files[0]
    assert (page.name, f.requires_python, f.yanked, f.has_metadata, f.metadata_sha256) == (
        "Demo", ">=3.9", True, True, None)
    with pytest.raises(ValueError):
        parse_page(b"{not json", "https://m/simple/demo/", JSON_TYPE)
    assert parse_page(b"", "https://m/simple/demo/", JSON_TYPE).files == ()  # a 304's body
    assert page.find("nope.whl") is None


@pytest.mark.parametrize(
    ("headers", "body", "ctype", "serial"),
    [
        ({"X-PyPI-Last-Serial": "10"}, b"<!--SERIAL 5-->", "text/html", 10),
        ({}, b"<html></html>\n<!--SERIAL 5-->", "text/html", 5),
        ({}, b"<html></html>", "text/html", None),
        ({"x-pypi-last-serial": "junk"}, b"<!-- SERIAL 6 -->", "text/html", 6),
        ({}, b'{"meta": {"_last-serial": 9}}', JSON_TYPE, 9),
        ({}, b'{"meta": {"_last-serial": "9"}}', JSON_TYPE, 9),
        ({}, b'{"meta": {"_last-serial": true}}', JSON_TYPE, None),
        ({}, b"not json", JSON_TYPE, None),
    ],
)
def test_parse_serial(headers: dict[str, str], body: bytes, ctype: str, serial: int | None) -> None:
    assert parse_serial(headers, body, ctype) == serial


@pytest.mark.parametrize(
    ("ctype", "ok"),
    [("text/html", True), ("text/html; charset=utf-8", True),
     ("application/vnd.pypi.simple.v1+json", True), ("application/vnd.pypi.simple.v1+html", True),
     ("text/plain", False), ("application/octet-stream", False), (None, False)],
)
def test_page_content_types(ctype: str | None, ok: bool) -> None:
    assert is_page_content_type(ctype) is ok


@pytest.mark.parametrize(
    ("seen", "serial", "stale", "after"),
    [(None, None, False, None), (None, 5, False, 5), (5, None, False, 5), (5, 4, True, 5),
     (5, 5, False, 5), (5, 6, False, 6)],
)
def test_serial_policy(seen: int | None, serial: int | None, stale: bool, after: int | None) -> None:
    assert is_stale(seen, serial) is stale
    assert newer_serial(seen, serial) == after


@pytest.mark.parametrize(
    ("req", "pin"),
    [("==1.2", "1.2"), ("===1.2", "1.2"), (" == 2.0.0 ", "2.0.0"), ("==1.*", None),
     (">=1.2", None), ("==1.2,!=1.3", None), ("", None)],
)
def test_pinned_version(req: str, pin: str | None) -> None:
    """What pip's finder passes (a SpecifierSet) names an exact pin, or not."""
    assert pinned_version(SpecifierSet(req)) == pin


def test_judge_page_reads_a_pin_given_as_text() -> None:
    assert judge_page(seen_serial=None, serial=None, filenames=FILES, pin="2.0").reason \
        == "pinned version 2.0 not on this mirror"
    assert judge_page(seen_serial=None, serial=None, filenames=FILES, pin="not a version").serve


def test_versions_in() -> None:
    names = ["demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz", "junk.txt", "bad.whl"]
    assert versions_in(names) == {Version("1.0"), Version("2.0")}


FILES = ["demo-1.0-py3-none-any.whl", "demo-1.1.tar.gz"]


@pytest.mark.parametrize(
    ("seen", "serial", "pin", "last", "serve", "why"),
    [
        (None, 3, None, False, True, ""),
        (5, 3, None, False, False, "stale"),
        (5, 3, None, True, False, "stale"),  # never serve a stale page
        (None, None, Version("1.1"), False, True, ""),
        (None, None, Version("2.0"), False, False, "pinned version 2.0"),
        (None, None, Version("2.0"), True, True, ""),  # last mirror: pip says it is missing
        (3, 5, Version("1.0"), False, True, ""),
    ],
)
def test_judge_page(seen: int | None, serial: int | None, pin: Version | None, last: bool,
                    serve: bool, why: str) -> None:
    v = judge_page(seen_serial=seen, serial=serial, filenames=FILES, pin=pin, last_mirror=last)
    assert v.serve is serve and v.reason.startswith(why)
