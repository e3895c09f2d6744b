"""The harness mirror serves correct PEP 503/691/658/714 pages; the wheel factory makes real wheels."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    MirrorServer,
    PackageIndex,
    file_path,
    make_wheel,
    negotiate,
    normalize,
    tree_index,
)


def get(server: MirrorServer, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=5, trust_env=False) as client:
        return client.get(server.url + path, headers=headers or {})


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        (JSON_V1, JSON_V1),
        (HTML_V1, HTML_V1),
        ("text/html", TEXT_HTML),
        # pip's own Accept header
        (f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01", JSON_V1),
        (f"{JSON_V1}; q=0.2, {HTML_V1}; q=0.5", HTML_V1),
        (f"text/html, {JSON_V1}", TEXT_HTML),  # a tie goes to the first listed
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/json", None),
        (f"{JSON_V1}; q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_negotiate_query_format() -> None:
    assert negotiate("text/html", JSON_V1) == JSON_V1
    assert negotiate(None, "bogus") is None


def test_html_project_page(tmp_path: Path) -> None:
    index = PackageIndex()
    whl = make_wheel(tmp_path, "Lib.A", "1.0", requires_python=">=3.8,<4")
    dist = index.add(whl)
    index.yank(dist.filename, "broken <build> & \"quotes\"")
    with MirrorServer(index) as server:
        r = get(server, "/simple/lib-a/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["x-pypi-last-serial"] == str(index.project_serial("lib-a")) == "2"
        page = r.text
        assert page.rstrip().endswith("<!--SERIAL 2-->")
        assert '<meta name="pypi:repository-version" content="1.1">' in page
        link = re.search(r"<a ([^>]*)>lib_a-1.0-py3-none-any.whl</a>", page)
        assert link is not None
        attrs = link.group(1)
        dist = index.get(dist.filename)
        assert dist is not None and dist.metadata is not None
        assert f'href="../..{file_path(dist, "pypi")}#sha256={dist.sha256}"' in attrs
        assert 'data-requires-python="&gt;=3.8,&lt;4"' in attrs
        meta_sha = hashlib.sha256(dist.metadata).hexdigest()
        assert f'data-dist-info-metadata="sha256={meta_sha}"' in attrs
        assert f'data-core-metadata="sha256={meta_sha}"' in attrs
        assert 'data-yanked="broken &lt;build&gt; &amp; &quot;quotes&quot;"' in attrs
        # the link resolves against the page URL, and the metadata file matches its hash
        href = re.search(r'href="([^"#]+)', attrs).group(1)  # type: ignore[union-attr]
        file_url = httpx.URL(server.url + "/simple/lib-a/").join(href)
        body = get(server, file_url.path).content
        assert hashlib.sha256(body).hexdigest() == dist.sha256
        meta = get(server, file_url.path + ".metadata").content
        assert hashlib.sha256(meta).hexdigest() == meta_sha
        assert b"Name: Lib.A\nVersion: 1.0\n" in meta


def test_json_project_page(tmp_path: Path) -> None:
    index = tree_index(tmp_path)
    index.yank("lib_c-2.0-py3-none-any.whl", "bad")
    with MirrorServer(index, absolute_urls=True) as server:
        r = get(server, "/simple/lib-c/", {"Accept": JSON_V1})
        assert r.headers["content-type"] == JSON_V1
        doc = json.loads(r.content)
        serial = index.project_serial("lib-c")
        assert doc["meta"] == {"api-version": "1.1", "_last-serial": serial}
        assert r.headers["x-pypi-last-serial"] == str(serial)
        assert doc["name"] == "lib-c"
        assert doc["versions"] == ["1.0", "2.0"]
        f1, f2 = doc["files"]
        assert f1["filename"] == "lib_c-1.0-py3-none-any.whl"
        assert f1["url"].startswith(server.url + "/packages/")
        assert f1["hashes"]["sha256"] == index.get(f1["filename"]).sha256  # type: ignore[union-attr]
        assert f1["requires-python"] == ">=3.8"
        assert f1["core-metadata"] == f1["dist-info-metadata"]
        assert set(f1["core-metadata"]) == {"sha256"}
        assert f1["yanked"] is False and f2["yanked"] == "bad"
        assert f1["size"] == index.get(f1["filename"]).size  # type: ignore[union-attr]
        # ?format= works too; HTML v1 is labelled as such
        assert get(server, "/simple/lib-c/?format=" + JSON_V1).headers["content-type"] == JSON_V1
        assert get(server, "/simple/lib-c/", {"Accept": HTML_V1}).headers["content-type"].startswith(HTML_V1)
        assert get(server, "/simple/lib-c/", {"Accept": "application/json"}).status_code == 406


def test_root_page_and_routing(tmp_path: Path) -> None:
    index = tree_index(tmp_path)
    with MirrorServer(index, layout="flat") as server:
        html = get(server, "/simple/").text
        assert all(f'<a href="{p}/">{p}</a>' in html for p in ("app", "lib-a", "lib-b", "lib-c"))
        assert f"<!--SERIAL {index.serial}-->" in html
        doc = get(server, "/simple/", {"Accept": JSON_V1}).json()
        assert doc["meta"]["_last-serial"] == index.serial
        assert {p["name"]: p["_last-serial"] for p in doc["projects"]} == {
            p: index.project_serial(p) for p in index.projects()
        }
        with httpx.Client(timeout=5, trust_env=False) as client:
            r = client.get(server.url + "/simple/Lib_A/")
            assert (r.status_code, r.headers["location"]) == (301, "/simple/lib-a/")
            r = client.get(server.url + "/simple/lib-a")
            assert (r.status_code, r.headers["location"]) == (301, "/simple/lib-a/")
            assert client.get(server.url + "/simple/nope/").status_code == 404
            assert client.get(server.url + "/nothing").status_code == 404
            dist = index.get("lib_a-1.0-py3-none-any.whl")
            assert dist is not None
            assert server.file_url(dist.filename) == f"{server.url}/files/{dist.filename}"
            assert client.get(server.file_url(dist.filename)).content == dist.path.read_bytes()
            # a file under the wrong layout is not there
            assert client.get(server.url + file_path(dist, "pypi")).status_code == 404
        stats = server.stats()
        assert stats.by_kind == {"page": 5, "file": 2, "other": 1}


def test_index_mutation_bumps_serials(tmp_path: Path) -> None:
    index = tree_index(tmp_path, versions=("1.0",))
    before = index.serial
    assert index.project_serial("app") == 1
    index.yank("app-1.0-py3-none-any.whl")
    assert index.serial == before + 1 == index.project_serial("APP")
    index.unyank("app-1.0-py3-none-any.whl")
    index.remove("lib_a-1.0-py3-none-any.whl")
    assert index.files("lib-a") == [] and index.project_serial("lib-a") == before + 3
    assert index.newest_version("app") == "1.0" and normalize("Lib._-A") == "lib-a"


def _record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_make_wheel_is_valid(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, "My.Pkg", "1.0.0", requires=["lib-a>=1", "lib-b"],
                      requires_python=">=3.9", payload_size=100_000, files={"mod.py": "X = 1\n"})
    assert path.name == "my_pkg-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[-1] == "my_pkg-1.0.0.dist-info/RECORD"
        meta = zf.read("my_pkg-1.0.0.dist-info/METADATA").decode()
        assert "Name: My.Pkg\nVersion: 1.0.0\n" in meta
        assert "Requires-Python: >=3.9\nRequires-Dist: lib-a>=1\nRequires-Dist: lib-b\n" in meta
        assert "Root-Is-Purelib: true" in zf.read("my_pkg-1.0.0.dist-info/WHEEL").decode()
        rows = [line.split(",") for line in zf.read("my_pkg-1.0.0.dist-info/RECORD").decode().splitlines()]
        assert {r[0] for r in rows} == set(names)
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(name)
            assert (digest, int(size)) == (_record_digest(data), len(data))
        payload = zf.getinfo("my_pkg/payload.bin")
        assert payload.compress_type == zipfile.ZIP_STORED and payload.file_size == 100_000
    assert path.stat().st_size > 100_000


def test_wheelhouse_reads_project_dependencies() -> None:
    from tests.harness.wheelhouse import project_dependencies

    deps = project_dependencies()
    assert any(d.startswith("httpx") for d in deps)
    assert any(d.startswith("platformdirs") for d in deps)
    assert any(d.startswith("packaging") for d in deps)
