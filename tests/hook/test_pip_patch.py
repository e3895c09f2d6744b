"""``pip_91n.hook.patch`` in-process, against this interpreter's pip and loopback mirrors."""

from __future__ import annotations

import hashlib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from pip_91n.hook import patch as _pip_patch
from pip_91n.hook.adapter import mount_prefixes
from tests.harness import PackageIndex, ServerError

session_mod = pytest.importorskip("pip._internal.network.session")

# pip itself (pkg_resources, distutils) warns when its session is built in-process
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def clean_patch() -> Iterator[None]:
    _pip_patch.reset()
    yield
    _pip_patch.reset()


@pytest.fixture
def chain_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def setup(*mirrors: Any) -> None:
        cfg = tmp_path / "config.toml"
        cfg.write_text("", encoding="utf-8")
        monkeypatch.setenv("PIP_91N_CONFIG", str(cfg))
        monkeypatch.setenv("PIP_91N_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("PIP_91N_MIRRORS", ",".join(m.simple_url for m in mirrors))
        monkeypatch.setenv("PIP_91N_TIMEOUT", "2")

    return setup


def test_the_installed_pip_has_the_known_structure() -> None:
    assert _pip_patch.check(session_mod) is None


def _fake(init: Any, base: type | None = None) -> types.ModuleType:
    from pip._vendor.requests import Session

    cls = type("PipSession", (base or Session,), {"__init__": init})
    mod = types.ModuleType("fake_session")
    mod.PipSession = cls  # type: ignore[attr-defined]
    return mod


def test_unknown_structures_are_named() -> None:
    assert _pip_patch.check(types.ModuleType("empty")) == "no PipSession class"
    assert "lacks" in str(_pip_patch.check(_fake(lambda self, *a, **k: None)))
    assert "not a requests Session" in str(
        _pip_patch.check(_fake(session_mod.PipSession.__init__, base=object)))


def test_unknown_structure_is_not_patched(clean_patch: None, chain_environ: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    chain_environ(types.SimpleNamespace(simple_url="http://127.0.0.1:9/simple/"))
    mod = _fake(lambda self, *a, **k: None)
    before = mod.PipSession.__init__  # type: ignore[attr-defined]
    assert _pip_patch.apply(mod) is False
    assert mod.PipSession.__init__ is before  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unknown structure" in err
    assert _pip_patch.state().patched is False


def test_pip_release_numbers_are_compared_without_packaging() -> None:
    assert _pip_patch.release("25.2") == (25, 2)
    assert _pip_patch.release("25.2.dev0") == (25, 2)
    assert _pip_patch.release("26.0b1") == (26, 0)
    assert _pip_patch.release("24.10.1") > (24, 2)
    assert _pip_patch.release("?") == ()


def test_mount_prefixes_skip_trusted_hosts() -> None:
    from pip_91n.settings.catalog import mirror_from_url

    chain = [mirror_from_url("http://127.0.0.1:8080/simple/"),
             mirror_from_url("https://mirror.example/pypi/simple/")]
    prefixes = mount_prefixes(chain, [("mirror.example", None)])
    assert prefixes == ["https://pypi.org/", "https://files.pythonhosted.org/",
                        "https://pypi.python.org/", "http://127.0.0.1:8080/"]


def test_apply_routes_the_chain_and_unpatch_restores(
    clean_patch: None, chain_environ: Any, dep_tree: PackageIndex, mirrors: Any,
) -> None:
    head, good = mirrors(dep_tree, [ServerError(status=503), None])
    chain_environ(head, good)
    original = session_mod.PipSession.__init__
    assert _pip_patch.apply(session_mod) is True
    assert _pip_patch.apply(session_mod) is True  # idempotent
    assert getattr(session_mod.PipSession, _pip_patch.MARKER) is True
    session = session_mod.PipSession(retries=0)
    try:
        page = session.get("https://pypi.org/simple/lib-c/",
                           headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert page.status_code == 200
        files = page.json()["files"]
        dist = dep_tree.get("lib_c-2.0-py3-none-any.whl")
        rel = next(f["url"] for f in files if f["filename"] == dist.filename)
        url = urljoin("https://pypi.org/simple/lib-c/", rel.split("#")[0])
        assert url.startswith("https://pypi.org/packages/")  # pip sees one logical index
        resp = session.get(url, stream=True)
        body = b"".join(resp.raw.stream(4096, decode_content=False))
        assert resp.headers["Content-Length"] == str(dist.size)
        assert hashlib.sha256(body).hexdigest() == dist.sha256
        # same origin, not the chain's business: pip's own adapter answers
        other = session.get(good.url + "/not-an-index/")
        assert other.status_code == 404
        assert good.stats().requests.get("/not-an-index/", 0) == 1
        assert len(_pip_patch.state().chain) == 2
    finally:
        session.close()
    assert _pip_patch.unpatch() is True
    assert session_mod.PipSession.__init__ is original
    assert not hasattr(session_mod.PipSession, _pip_patch.MARKER)
    assert not any(hasattr(a, "shim") for a in session.adapters.values())
    fresh = session_mod.PipSession(retries=0)
    assert not any(hasattr(a, "shim") for a in fresh.adapters.values())
    fresh.close()


def test_broken_config_leaves_pip_unpatched_with_one_line(
    clean_patch: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("timeout = [\n", encoding="utf-8")
    monkeypatch.setenv("PIP_91N_CONFIG", str(cfg))
    original = session_mod.PipSession.__init__
    # the configuration is read at the first session (pip commands without network never
    # pay for it); a broken one undoes the patch there
    assert _pip_patch.apply(session_mod) is True
    for _ in range(2):
        session = session_mod.PipSession(retries=0)
        assert not any(hasattr(a, "shim") for a in session.adapters.values())
        session.close()
    assert session_mod.PipSession.__init__ is original
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pip-91n: ") and str(cfg) in err[0]
    state = _pip_patch.state()
    assert state.patched is False and "configuration error" in str(state.reason)
