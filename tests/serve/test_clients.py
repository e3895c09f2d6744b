"""Real clients through ``pip-91n serve``: uv (the binary), pip in a venv without pip-91n,
pip-tools, with the harness's faulty mirrors behind the server."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    BlackHole,
    MirrorFactory,
    PackageIndex,
    ServerError,
    Stale,
    Throttle,
    Venv,
    WheelSpec,
    build_index,
    create_venv,
)
from tests.hook.helpers import installed
from tests.serve.conftest import UV, ServeFactory, start_server, uv_install

NEWEST = {"app": "2.0", "lib-a": "2.0", "lib-b": "2.0", "lib-c": "2.0"}


def _installed(venv: Path) -> dict[str, str]:
    out = {}
    for d in venv.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].rpartition("-")
        out[name.lower().replace("_", "-")] = version
    return {k: v for k, v in out.items() if k in NEWEST}


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.mark.skipif(not UV.exists(), reason="the uv binary is not installed")
def test_uv_through_a_black_holed_head_and_a_503(serve: ServeFactory, mirrors, dep_tree,
                                                 tmp_path: Path, sealed_env) -> None:
    ms = mirrors(dep_tree, [BlackHole(hold=10), ServerError(), None])
    served = serve(ms)
    _ok(uv_install(tmp_path, sealed_env, served.url, "app"))
    assert _installed(tmp_path / "uv-venv") == NEWEST
    assert ms[2].stats().count("file") == 4


@pytest.mark.skipif(not UV.exists(), reason="the uv binary is not installed")
def test_uv_exact_pin_behind_a_stale_head(serve: ServeFactory, mirrors, dep_tree,
                                          tmp_path: Path, sealed_env) -> None:
    ms = mirrors(dep_tree, [Stale(), None])
    served = serve(ms)
    _ok(uv_install(tmp_path, sealed_env, served.url, "app==2.0", "lib-c==2.0"))
    assert _installed(tmp_path / "uv-venv") == NEWEST
    log = served.log()  # the head's page lost to the newer one, or was found stale
    assert "newer than" in log or "stale page" in log, log


@pytest.mark.skipif(not UV.exists(), reason="the uv binary is not installed")
def test_offline_rebuild_when_every_mirror_is_down(mirrors, dep_tree, tmp_path: Path,
                                                   sealed_env) -> None:
    ms = mirrors(dep_tree, 2)
    cache = tmp_path / "serve-cache"
    first = start_server(tmp_path / "s1", sealed_env, ms, cache_dir=cache)
    try:
        _ok(uv_install(tmp_path / "online", sealed_env, first.url, "app"))
    finally:
        assert first.stop() == 0
    for m in ms:
        m.stop()
    second = start_server(tmp_path / "s2", sealed_env, ms, cache_dir=cache)  # a reboot, say
    try:
        page = httpx.get(second.url + "app/")
        assert page.status_code == 200 and "110" in page.headers["warning"]
        assert page.headers["cache-control"] == "no-store" and page.headers["x-pip-91n-stale"]
        _ok(uv_install(tmp_path / "offline", sealed_env, second.url, "app"))
        assert _installed(tmp_path / "offline" / "uv-venv") == NEWEST
        assert "every mirror failed" in second.log()
    finally:
        assert second.stop() == 0


def test_pip_without_pip_91n(serve: ServeFactory, mirrors, dep_tree, bare_venv: Venv,
                             tmp_path: Path, sealed_env) -> None:
    served = serve(mirrors(dep_tree, [ServerError(), None]))
    proc = bare_venv.pip("install", "--index-url", served.url, "--no-cache-dir", "--target",
                         str(tmp_path / "t"), "app==2.0", env=sealed_env, check=False)
    _ok(proc)
    assert installed(tmp_path / "t") == NEWEST


@pytest.mark.slow
def test_pip_compile(serve: ServeFactory, mirrors, dep_tree, wheelhouse: Path,
                     tmp_path: Path, sealed_env) -> None:
    if not any(wheelhouse.glob("pip_tools-*.whl")):
        pytest.fail(f"the wheelhouse {wheelhouse} has no pip-tools; fill it with: "
                    "python -m tests.harness.wheelhouse", pytrace=False)
    venv = create_venv(tmp_path / "tools", wheelhouse=wheelhouse)
    venv.pip("install", "--no-index", "--find-links", str(wheelhouse), "-q", "pip-tools")
    served = serve(mirrors(dep_tree, [BlackHole(hold=10), None]))
    (tmp_path / "requirements.in").write_text("app\nlib-a<2\n")
    proc = venv.run(venv.script("pip-compile"), "--index-url", served.url, "--no-header",
                    "--no-annotate", "--cache-dir", str(tmp_path / "pc-cache"),
                    "-o", str(tmp_path / "requirements.txt"), str(tmp_path / "requirements.in"),
                    env=sealed_env, check=False, cwd=tmp_path, timeout=180)
    _ok(proc)
    pins = (tmp_path / "requirements.txt").read_text()
    for line in ("app==2.0", "lib-a==1.0", "lib-b==2.0", "lib-c==2.0"):
        assert line in pins


@pytest.mark.slow
def test_four_clients_of_one_50_mb_file_cost_one_copy(serve: ServeFactory,
                                                      mirror_factory: MirrorFactory,
                                                      tmp_path: Path) -> None:
    idx: PackageIndex = build_index(tmp_path / "w", [WheelSpec("fat", "1.0",
                                                               payload_size=50_000_000)])
    ms = [mirror_factory(idx, Throttle(rate=40_000_000, kind="file"), name=f"m{i}")
          for i in range(2)]
    served = serve(ms)
    page = httpx.get(served.url + "fat/", headers={"Accept": "application/vnd.pypi.simple."
                                                             "v1+json"}).json()
    link = httpx.URL(served.url + "fat/").join(page["files"][0]["url"])
    want = page["files"][0]["hashes"]["sha256"]
    digests: list[str] = []
    start = threading.Barrier(4, timeout=20)

    def client() -> None:
        start.wait()
        h = hashlib.sha256()
        with httpx.stream("GET", link, timeout=60) as resp:
            for chunk in resp.iter_bytes():
                h.update(chunk)
        digests.append(h.hexdigest())

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert digests == [want] * 4
    size = idx.files("fat")[0].size
    upstream = sum(m.stats().bytes_by_file.get(idx.files("fat")[0].filename, 0) for m in ms)
    assert upstream <= 1.05 * size, (upstream, size)


@pytest.mark.parametrize("verify", ["quorum", "off"])
def test_a_lagging_head_is_overruled_by_one_read_of_the_next_mirror(
        serve: ServeFactory, mirrors, dep_tree, verify: str) -> None:
    """The second opinion on a page: with hash agreement on, the witness's page (read for the
    vote anyway) is it, so the next mirror gets one page request per project, not two; with
    it off, a race over the mirrors behind the head is."""
    ms = mirrors(dep_tree, [Stale(), None])
    # no hedge: under load the race itself could ask the next mirror for the page too
    served = serve(ms, env={"PIP_91N_VERIFY": verify, "PIP_91N_HEDGE_DELAY": "0"})
    page = httpx.get(served.url + "lib-c/",
                     headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    assert "lib_c-2.0-py3-none-any.whl" in {f["filename"] for f in page["files"]}
    log = served.wait_log("newer than|stale page")  # the second page came first, or after
    assert "newer than" in log or "stale page" in log, log
    assert ms[0].stats().count("page", "lib-c") == 1
    # off: the second race may win first, and then the head's page is stale and the race
    # asks the next mirror too; quorum: the witness's one read is both
    assert ms[1].stats().count("page", "lib-c") == (1 if verify == "quorum" else 2) or (
        verify == "off" and "newer than" in log)


PDM = os.environ.get("PIP_91N_TEST_PDM") or shutil.which("pdm") or ""


@pytest.mark.skipif(not Path(PDM).is_file(), reason="pdm is not installed (tox installs it)")
def test_pdm_locks_and_installs_through_a_black_holed_head(
        serve: ServeFactory, mirrors, dep_tree: PackageIndex, tmp_path: Path,
        sealed_env: dict[str, str]) -> None:
    """pdm, set up the way ``pip-91n env --format pdm`` prints, resolves, locks (with the
    files' hashes) and installs through the server."""
    ms = mirrors(dep_tree, [BlackHole(hold=10), None])
    served = serve(ms)
    pointed = subprocess.run([sys.executable, "-m", "pip_91n", "env", "--format", "pdm",
                              "--serve", served.url], env=sealed_env, capture_output=True,
                             text=True, check=True).stdout
    url_var = dict(line.removeprefix("export ").split("=", 1) for line in pointed.splitlines()
                   if line.startswith("export "))
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0"\nrequires-python = ">=3.8"\n'
        'dependencies = []\n\n[tool.pdm]\ndistribution = false\n')
    create_venv(project / ".venv")
    env = {**sealed_env, **url_var, "PDM_CHECK_UPDATE": "false", "PDM_NON_INTERACTIVE": "1",
           "PDM_CACHE_DIR": str(tmp_path / "pdm-cache"), "NO_COLOR": "1",
           "PDM_PYTHON": str(project / ".venv" / "bin" / "python")}
    proc = subprocess.run([PDM, "add", "app"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    _ok(proc)
    assert _installed(project / ".venv") == NEWEST
    lock = (project / "pdm.lock").read_text()
    for name, version in NEWEST.items():
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        found = dep_tree.get(wheel)
        assert found is not None and f"sha256:{found.sha256}" in lock, wheel
    assert ms[1].stats().count("file") == 4
