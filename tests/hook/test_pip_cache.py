"""What stays on disk after pip installs through the chain: pip's own HTTP cache holds the
files (as it would for PyPI), pip-91n keeps only unfinished downloads, and with
``--no-cache-dir`` nothing at all but its health state and lock files."""

from __future__ import annotations

import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import MirrorServer, PackageIndex, ResetAfter, Throttle, Venv, make_wheel
from tests.hook.helpers import chain_env, installed

pytestmark = pytest.mark.hook

BIG = "big-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def big_index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    """One 18 MiB wheel: above the 16 MiB that pip >= 25.2 gets streamed."""
    index = PackageIndex()
    index.add(make_wheel(tmp_path_factory.mktemp("big"), "big", "1.0", payload_size=18 * 2**20))
    return index


def _left(cache_dir: Path) -> list[str]:
    """What pip-91n's cache dir holds, lock files and health/ranking state aside."""
    return sorted(str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*")
                  if p.is_file() and not p.name.endswith(".lock")
                  and p.name not in ("health.json", "auto-ranking.json"))


def _install(venv: Venv, env: dict[str, str], target: Path, *args: str) -> Any:
    return venv.pip("install", "--disable-pip-version-check", "--target", str(target), *args,
                    "big", env=env, check=False, timeout=180)


def _ctrl_c_on() -> None:
    """In the child: Ctrl-C as in a terminal, even when this run was started in the
    background of a shell without job control (which leaves SIGINT ignored, and Python then
    never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(venv: Venv, env: dict[str, str], target: Path, *args: str) -> None:
    """Start ``pip install big`` and press Ctrl-C once a few MiB of it arrived (the engine
    fetches it: the file is above the segment threshold, not for the in-memory fast path)."""
    partials = Path(env["PIP_91N_CACHE_DIR"]) / "partials"
    env = {**env, "PIP_91N_SEGMENT_THRESHOLD": "8M"}
    proc = subprocess.Popen(
        [str(venv.python), "-m", "pip", "install", "--disable-pip-version-check", "--target",
         str(target), *args, "big"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=_ctrl_c_on)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            got = sum(p.stat().st_size for p in partials.glob("*.part")) if partials.is_dir() else 0
            if got >= 2 * 2**20:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "pip ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, err


def test_no_cache_dir_leaves_nothing_behind(
    shared_venv: Venv, big_index: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(big_index, [ResetAfter(nbytes=5 * 2**20, kind="file"), None])
    env = chain_env(sealed_env, [head, good])
    proc = _install(shared_venv, env, tmp_path / "t", "--no-cache-dir")
    assert proc.returncode == 0, proc.stderr
    assert installed(tmp_path / "t") == {"big": "1.0"}
    assert _left(Path(env["PIP_91N_CACHE_DIR"])) == []
    # the same when the install is interrupted half-way (Ctrl-C): the partial goes too
    (slow,) = mirrors(big_index, [Throttle(rate=3 * 2**20, kind="file")])
    env = chain_env(sealed_env, [slow])
    _interrupt(shared_venv, env, tmp_path / "t2", "--no-cache-dir")
    assert _left(Path(env["PIP_91N_CACHE_DIR"])) == []


@pytest.fixture
def https_mirror(big_index: PackageIndex, tmp_path: Path) -> Iterator[tuple[MirrorServer, Path]]:
    """The index over https (pip caches only what comes over https), and its CA file."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with MirrorServer(big_index, tls=server_ctx, name="tls") as mirror:
        yield mirror, cafile


def test_pips_cache_holds_the_file_and_pip_91n_keeps_no_copy(
    shared_venv: Venv, https_mirror: tuple[MirrorServer, Path], big_index: PackageIndex,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    mirror, cafile = https_mirror
    env = {**chain_env(sealed_env, [mirror]), "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
           "PIP_CERT": str(cafile)}
    # by name: pip's truststore (pip >= 24.2) cannot check a certificate for an IP address
    env["PIP_91N_MIRRORS"] = mirror.simple_url.replace("127.0.0.1", "localhost")
    size = big_index.get(BIG).size
    assert _install(shared_venv, env, tmp_path / "t1").returncode == 0
    assert mirror.stats().bytes_by_file[BIG] == size
    assert _left(Path(env["PIP_91N_CACHE_DIR"])) == []  # no second copy in pip-91n's cache
    cached = sum(p.stat().st_size for p in (tmp_path / "pip-cache").rglob("*") if p.is_file())
    assert cached >= size  # pip's HTTP cache has it, as for a file from PyPI
    proc = _install(shared_venv, env, tmp_path / "t2")
    assert proc.returncode == 0, proc.stderr
    assert installed(tmp_path / "t2") == {"big": "1.0"}
    assert mirror.stats().bytes_by_file[BIG] == size  # the second install read pip's cache


def test_an_interrupted_download_is_kept_to_resume_when_pip_keeps_a_cache(
    shared_venv: Venv, big_index: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    (slow,) = mirrors(big_index, [Throttle(rate=3 * 2**20, kind="file")])
    env = {**chain_env(sealed_env, [slow]), "PIP_CACHE_DIR": str(tmp_path / "pip-cache")}
    _interrupt(shared_venv, env, tmp_path / "t")
    left = _left(Path(env["PIP_91N_CACHE_DIR"]))
    assert any(name.endswith(".part") for name in left), left
    sent = slow.stats().bytes_by_file[BIG]
    slow.clear_faults()
    assert _install(shared_venv, env, tmp_path / "t").returncode == 0
    size = big_index.get(BIG).size
    assert slow.stats().bytes_by_file[BIG] - sent < size - 2**20  # resumed, not started over
    assert _left(Path(env["PIP_91N_CACHE_DIR"])) == []
