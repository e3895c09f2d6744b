"""The pure parts of ``pip-91n serve``: request paths, page parsing and rendering, content
negotiation, ranges and validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pip_91n.index.pages import JSON_TYPE
from pip_91n.serve.http import ByteRange, etag_matches, negotiate, parse_range
from pip_91n.serve.paths import Route, file_link, parse_path
from pip_91n.serve.roots import render_root
from pip_91n.serve.simple import (
    HTML_TYPE,
    Entry,
    Page,
    fresher,
    parse_upstream,
    render_html,
    render_json,
)
from tests.harness import JSON_V1, TEXT_HTML, PackageIndex, WheelSpec, build_index
from tests.harness.pages import project_page

SHA = "a" * 64


@pytest.mark.parametrize("raw", [
    "/simple/../etc/passwd", "/simple/%2e%2e/", "/files/x/../../etc/passwd",
    "/files/lib-a/" + SHA + "/..%2fsecret.whl", "/files/lib-a/" + SHA + "/%2e%2e",
    "/simple/a%2fb/", "/simple/a%5cb/", "/simple/a%00/", "//simple/", "/simple//x/",
    "/files/lib-a/" + SHA + "/x.txt", "/files/Lib_A/" + SHA + "/lib_a-1.0-py3-none-any.whl",
    "/files/lib-a/zzz/lib_a-1.0-py3-none-any.whl", "/files/", "/serve-cache/files/",
    "/simple/-x-/", "/files/lib-a/" + SHA + "/.lib_a-1.0.tar.gz", "/%ff/", "/simple/\x7f/",
    "/simple/a b/", "/files/lib-a/" + SHA + "/lib_a-1.0-py3-none-any.whl/",
])
def test_traversal_and_odd_paths_are_not_routes(raw: str) -> None:
    assert parse_path(raw) is None


def test_routes() -> None:
    assert parse_path("/simple/") == Route("root", canonical="/simple/")
    assert parse_path("/simple") == Route("root", canonical="/simple/")
    assert parse_path("/simple/Foo_Bar.baz/") == Route("page", "foo-bar-baz",
                                                       canonical="/simple/foo-bar-baz/")
    f = parse_path(f"/files/lib-a/{SHA}/lib_a-1.0%2Bcpu-py3-none-any.whl")
    assert f is not None and f.kind == "file" and f.filename == "lib_a-1.0+cpu-py3-none-any.whl"
    m = parse_path(f"/files/lib-a/{SHA}/lib_a-1.0.tar.gz.metadata")
    assert m is not None and (m.kind, m.filename, m.sha256) == ("metadata", "lib_a-1.0.tar.gz",
                                                                 SHA)
    n = parse_path("/files/lib-a/-/lib_a-1.0.tar.gz")
    assert n is not None and n.sha256 is None
    assert parse_path("/-/ready") == Route("ready", canonical="/-/ready")


def test_file_links_round_trip_through_the_router() -> None:
    link = file_link("lib-a", SHA, "lib_a-1.0+local-py3-none-any.whl")
    route = parse_path("/" + link.replace("../../", ""))
    assert route is not None
    assert (route.project, route.sha256, route.filename) == (
        "lib-a", SHA, "lib_a-1.0+local-py3-none-any.whl")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    idx = build_index(tmp_path_factory.mktemp("pure"), [
        WheelSpec("lib-a", "1.0", requires_python=">=3.8,<4"),
        WheelSpec("lib-a", "2.0", requires_python=None, yanked="broken <build>"),
    ])
    return idx


@pytest.mark.parametrize("content_type", [JSON_V1, TEXT_HTML])
@pytest.mark.parametrize("absolute", [True, False])
def test_upstream_pages_survive_parsing_and_rendering(index: PackageIndex, content_type: str,
                                                      absolute: bool) -> None:
    files = index.files("lib-a")
    body = project_page(name="lib-a", display="lib-a", files=files, serial=7,
                        content_type=content_type, layout="pypi",
                        base="http://m:1" if absolute else None)
    page = parse_upstream(body, "http://m:1/simple/lib-a/", content_type,
                          {"content-type": content_type}, "lib-a")
    assert page.serial == 7
    by_name = {e.filename: e for e in page.entries}
    for f in files:
        e = by_name[f.filename]
        assert (e.sha256, e.requires_python, e.metadata) == (f.sha256, f.requires_python,
                                                             f.metadata_sha256)
        assert e.yanked == f.yanked
    for render, ctype in ((render_html, TEXT_HTML), (render_json, JSON_TYPE)):
        again = parse_upstream(render(page, "lib-a"), "http://serve/simple/lib-a/", ctype,
                               {}, "lib-a")
        assert [(e.filename, e.sha256, e.requires_python, e.yanked, e.metadata)
                for e in again.entries] == [(e.filename, e.sha256, e.requires_python,
                                             e.yanked, e.metadata) for e in page.entries]
        assert again.serial == 7


def test_rendered_links_do_not_depend_on_the_mirror(index: PackageIndex) -> None:
    files = index.files("lib-a")
    pages = [parse_upstream(project_page(name="lib-a", display="lib-a", files=files, serial=3,
                                         content_type=TEXT_HTML, layout=layout, base=base),
                            f"http://{host}/simple/lib-a/", TEXT_HTML, {}, "lib-a")
             for layout, base, host in (("pypi", None, "a:1"), ("flat", "http://b:2", "b:2"))]
    assert render_html(pages[0], "lib-a") == render_html(pages[1], "lib-a")
    assert b"http" not in render_json(pages[0], "lib-a")


def test_json_page_says_1_1_only_with_every_size() -> None:
    with_sizes = Page("x", (Entry("x-1.0.tar.gz", SHA, size=10),))
    without = Page("x", (Entry("x-1.0.tar.gz", SHA),))
    assert json.loads(render_json(with_sizes, "x"))["meta"]["api-version"] == "1.1"
    assert json.loads(render_json(without, "x"))["meta"]["api-version"] == "1.0"
    assert json.loads(render_json(with_sizes, "x"))["versions"] == ["1.0"]
    assert b'content="1.0"' in render_html(without, "x")


def test_fresher() -> None:
    old = Page("x", (Entry("x-1.0.tar.gz", SHA),), 5)
    new = Page("x", (Entry("x-1.0.tar.gz", SHA), Entry("x-2.0.tar.gz", SHA)), 9)
    assert fresher(old, new) and not fresher(new, old) and not fresher(new, new)
    assert fresher(old._replace(serial=None), new._replace(serial=None))  # TUNA: no serials
    assert not fresher(new._replace(serial=None), old)


@pytest.mark.parametrize(("accept", "fmt", "want"), [
    (None, None, "text/html"),
    ("", None, "text/html"),
    ("application/vnd.pypi.simple.v1+json", None, JSON_TYPE),
    ("application/vnd.pypi.simple.v1+json;q=0.2, text/html", None, "text/html"),
    ("application/vnd.pypi.simple.v1+html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.9",
     None, JSON_TYPE),
    ("application/vnd.pypi.simple.latest+json", None, JSON_TYPE),
    ("*/*", None, "text/html"),
    ("image/png", None, None),
    ("application/vnd.pypi.simple.v1+json;q=0", None, None),
    (None, "json", JSON_TYPE),
    ("text/html", "application/vnd.pypi.simple.v1+json", JSON_TYPE),
    (None, "xml", None),
    ("text/html", HTML_TYPE, HTML_TYPE),
])
def test_negotiate(accept: str | None, fmt: str | None, want: str | None) -> None:
    assert negotiate(accept, fmt) == want


@pytest.mark.parametrize(("header", "want"), [
    (None, None), ("bytes=0-9", ByteRange(0, 10, 100)), ("bytes=90-", ByteRange(90, 100, 100)),
    ("bytes=-10", ByteRange(90, 100, 100)), ("bytes=-1000", ByteRange(0, 100, 100)),
    ("bytes=50-1000", ByteRange(50, 100, 100)), ("bytes=100-", False), ("bytes=-0", False),
    ("bytes=0-1,5-6", None), ("items=0-1", None), ("bytes=9-3", None), ("bytes=a-b", None),
    ("bytes=-", None),
])
def test_parse_range(header: str | None, want: object) -> None:
    assert parse_range(header, 100) == want


def test_etags() -> None:
    assert etag_matches('"a", W/"b"', '"b"') and etag_matches("*", '"x"')
    assert not etag_matches('"a"', '"b"') and not etag_matches(None, '"b"')


def test_root_is_rendered_in_chunks(tmp_path: Path) -> None:
    names = [f"proj-{i}" for i in range(20000)]
    path = tmp_path / "root.html"
    path.write_text("<html><body>" + "".join(f'<a href="/simple/{n}/">{n}</a>\n'
                                             for n in names) + "</body></html>")
    chunks = list(render_root(path, False, JSON_TYPE))
    assert len(chunks) > 3
    doc = json.loads(b"".join(chunks))
    assert [p["name"] for p in doc["projects"]] == names
    html_out = b"".join(render_root(path, False, "text/html")).decode()
    assert html_out.count("<a href=") == 20000 and '<a href="proj-7/">proj-7</a>' in html_out
    path.write_text(json.dumps({"meta": {}, "projects": [{"name": "A_b"}]}))
    assert b'href="a-b/"' in b"".join(render_root(path, True, "text/html"))
