"""The small-file fast path (``pip_91n.downloads.small.fetch_small``): one GET into memory in the calling
thread, only verified bytes returned, nothing written when it works, and a clean hand-over to
the engine whenever it does not apply."""

from __future__ import annotations

from pathlib import Path

from pip_91n.downloads import fetch
from pip_91n.downloads.partials import PartialStore
from pip_91n.downloads.small import fetch_small
from pip_91n.net.httpx_wire import HttpxWire
from tests.downloads.test_download_unit import DATA, SHA, Fake, _opts, _router

Reports = list[tuple[str, "str | None"]]


def _small(tmp_path: Path, fake: Fake, reports: Reports, size: int = len(DATA),
           **opts: object) -> bytes | None:
    return fetch_small("http://a/f.whl", SHA, size, filename="f.whl",
                       options=_opts(tmp_path, **opts), wire=HttpxWire(_router(a=fake)),
                       on_attempt=lambda url, reason, s: reports.append((url, reason)))


def _entries(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache" / "partials"
    return sorted(p.name.split(".", 1)[1] for p in root.iterdir()) if root.is_dir() else []


def test_returns_the_verified_bytes_of_one_plain_get_and_writes_nothing(tmp_path: Path) -> None:
    a, reports = Fake(), []
    assert _small(tmp_path, a, reports) == DATA
    assert a.log == [(None, None)] and reports == [("http://a/f.whl", None)]
    assert _entries(tmp_path) == []


def test_a_verified_copy_in_the_cache_is_left_to_the_engine(tmp_path: Path) -> None:
    """Another process verified the file and is still handing it over: the engine reuses it."""
    a, reports = Fake(), []
    store = PartialStore(tmp_path / "cache")
    store.root.mkdir(parents=True)
    store.path(SHA, ".complete").write_bytes(DATA)
    assert _small(tmp_path, a, reports) is None and a.log == []
    assert fetch(["http://a/f.whl"], SHA, tmp_path / "out", options=_opts(tmp_path),
                 transport=_router(a=a)).read_bytes() == DATA
    assert a.log == [] and "complete" not in _entries(tmp_path)  # handed over, not kept


def test_does_not_apply_to_large_files_or_existing_entries(tmp_path: Path) -> None:
    a, reports = Fake(), []
    assert _small(tmp_path, a, reports, segment_threshold=len(DATA)) is None
    store = PartialStore(tmp_path / "cache")
    store.root.mkdir(parents=True)
    store.path(SHA, ".part").write_bytes(DATA[:1000])
    assert _small(tmp_path, a, reports) is None
    assert a.log == [] and reports == []


def test_a_body_cut_short_is_kept_for_the_engine_to_resume(tmp_path: Path) -> None:
    a, reports = Fake(fail_after=[100_000]), []
    assert _small(tmp_path, a, reports) is None
    assert reports and "body cut short after" in (reports[0][1] or "")
    assert _entries(tmp_path) == ["json", "lock", "part", "ranges"]
    out = fetch(["http://a/f.whl"], SHA, tmp_path / "out", options=_opts(tmp_path),
                transport=_router(a=a))
    assert out.read_bytes() == DATA
    assert a.log[-1] == ("bytes=100000-", '"v1"')  # resumed from the same source


def test_wrong_bytes_are_never_kept(tmp_path: Path) -> None:
    bad, reports = Fake(data=DATA[:-1] + b"\0"), []
    assert _small(tmp_path, bad, reports) is None
    assert "sha256 mismatch" in (reports[0][1] or "")
    assert _entries(tmp_path) == []


def test_an_error_status_is_reported_and_nothing_kept(tmp_path: Path) -> None:
    a, reports = Fake(status=503), []
    assert _small(tmp_path, a, reports) is None
    assert reports == [("http://a/f.whl", "HTTP 503")]
    assert _entries(tmp_path) == []


def test_a_size_the_mirror_contradicts_hands_over_to_the_engine(tmp_path: Path) -> None:
    a, reports = Fake(), []
    assert _small(tmp_path, a, reports, size=len(DATA) - 1) is None
    assert "serves" in (reports[0][1] or "") and _entries(tmp_path) == []


def test_pages_and_known_files_keep_the_size_a_json_page_names() -> None:
    import json

    from pip_91n.chain.memory import KnownFiles
    from pip_91n.index.pages import JSON_TYPE, parse_page

    files = [{"filename": f"p-{i}.whl", "url": f"p-{i}.whl", "hashes": {"sha256": SHA},
              "size": size} for i, size in enumerate([1234, -1, True, "5"])]
    page = parse_page(json.dumps({"files": files}).encode(), "http://a/simple/p/", JSON_TYPE)
    assert [f.size for f in page.files] == [1234, None, None, None]
    html = parse_page(b'<a href="p-0.whl">p-0.whl</a>', "http://a/simple/p/", "text/html")
    assert html.files[0].size is None
    known = KnownFiles()
    known.learn("b", html, "p")
    known.learn("a", page, "p")
    got = known.get("p-0.whl")
    assert got is not None and got.size == 1234
