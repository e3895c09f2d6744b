"""Real pip, in throwaway venvs, against the harness mirror; and the sealed environment."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import MirrorServer, PackageIndex, Venv, make_wheel, tree_index

pytestmark = pytest.mark.slow


def test_pip_installs_dependency_tree(
    venv_factory: Callable[..., Venv],
    mirror_factory: Callable[..., MirrorServer],
    dep_tree: PackageIndex,
    sealed_env: dict[str, str],
) -> None:
    venv = venv_factory("tree", project=False)
    mirror = mirror_factory(dep_tree)
    venv.pip("install", "--index-url", mirror.simple_url, "app", env=sealed_env, timeout=120)
    out = venv.py(
        "-c",
        "import app, lib_a, lib_b, lib_c; print(app.__version__, lib_a.__version__, lib_b.__version__, lib_c.__version__)",
    ).stdout
    assert out.split() == ["2.0"] * 4
    stats = mirror.stats()
    for project in ("app", "lib-a", "lib-b", "lib-c"):
        assert stats.requests[f"/simple/{project}/"] >= 1
        wheel = dep_tree.get(f"{project.replace('-', '_')}-2.0-py3-none-any.whl")
        assert wheel is not None
        assert stats.bytes_by_file[wheel.filename] == wheel.size  # downloaded exactly once
        # pip (>= 22.3) read the PEP 658 metadata instead of the wheel to resolve
        assert stats.bytes_by_file[wheel.filename + ".metadata"] == len(wheel.metadata or b"")
    assert not any(name.startswith(("app-1.0", "lib_a-1.0")) for name in stats.bytes_by_file)
    # an exact pin of an older version works too (pip uninstalls the 2.0 tree's app)
    venv.pip("install", "--index-url", mirror.simple_url, "app==1.0", env=sealed_env, timeout=120)
    assert venv.py("-c", "import app; print(app.__version__)").stdout.strip() == "1.0"


def test_pip_download_large_wheel_exact_bytes(
    bare_venv: Venv, mirror_factory: Callable[..., MirrorServer], tmp_path: Path, sealed_env: dict[str, str]
) -> None:
    index = PackageIndex()
    big = index.add(make_wheel(tmp_path / "wheels", "big-payload", "1.0", payload_size=20 * 2**20))
    mirror = mirror_factory(index, layout="flat")
    dest = tmp_path / "dest"
    bare_venv.pip("download", "--no-deps", "--no-cache-dir", "-d", dest, "--index-url", mirror.simple_url,
                  "big-payload", env=sealed_env, timeout=120)
    got = dest / big.filename
    assert hashlib.sha256(got.read_bytes()).hexdigest() == big.sha256
    stats = mirror.stats()
    assert stats.bytes_by_file == {big.filename: big.size} or stats.bytes_by_file == {
        big.filename: big.size, big.filename + ".metadata": len(big.metadata or b"")
    }
    assert stats.count(kind="file") == 1


def test_pip_skips_yanked(
    bare_venv: Venv, mirror_factory: Callable[..., MirrorServer], tmp_path: Path, sealed_env: dict[str, str]
) -> None:
    index = tree_index(tmp_path / "wheels", versions=("1.0", "2.0"))
    index.yank("lib_c-2.0-py3-none-any.whl", "broken")
    mirror = mirror_factory(index)
    dest = tmp_path / "dest"
    bare_venv.pip("download", "--no-deps", "--no-cache-dir", "-d", dest, "--index-url", mirror.simple_url,
                  "lib-c", env=sealed_env, timeout=120)
    assert [p.name for p in dest.iterdir()] == ["lib_c-1.0-py3-none-any.whl"]


def test_sealed_env_fails_fast_off_loopback(
    bare_venv: Venv, mirror_factory: Callable[..., MirrorServer], dep_tree: PackageIndex,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    assert sealed_env["PIP_CONFIG_FILE"] == "/dev/null"
    assert sealed_env["NO_PROXY"] == "127.0.0.1,localhost"
    assert not any(k.startswith("PIP_") and k not in {
        "PIP_CONFIG_FILE", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT", "PIP_91N_CONFIG", "PIP_91N_CACHE_DIR"}
        for k in sealed_env)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PIP_91N_CONFIG", "PIP_91N_CACHE_DIR"):
        assert sealed_env[key].startswith(str(tmp_path))
    # urllib and httpx (as subprocesses with only this environment) fail at once off loopback...
    code = (
        "import sys, time, urllib.request, httpx\n"
        "t = time.monotonic()\n"
        "for call in (lambda: urllib.request.urlopen('http://pypi.org/simple/', timeout=20),\n"
        "             lambda: httpx.get('https://pypi.org/simple/', timeout=20)):\n"
        "    try:\n        call()\n    except Exception as exc:\n"
        "        print(type(exc).__name__, 'refused' if 'refused' in str(exc).lower() else str(exc))\n"
        "    else:\n        sys.exit('reached the network')\n"
        "print(round(time.monotonic() - t, 2))\n"
    )
    env = dict(sealed_env, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    *errors, elapsed = proc.stdout.splitlines()
    # refused by the dead loopback proxy (not a DNS failure or a timeout)
    assert errors == ["URLError refused", "ConnectError refused"] and float(elapsed) < 3
    # ...and so does pip, while loopback mirrors stay reachable
    t0 = time.monotonic()
    bad = bare_venv.pip("download", "--no-deps", "--no-cache-dir", "--retries", "0", "--timeout", "5",
                        "-d", tmp_path / "d1", "--index-url", "https://pypi.org/simple/", "idna",
                        env=sealed_env, check=False, timeout=60)
    assert bad.returncode != 0 and time.monotonic() - t0 < 20
    mirror = mirror_factory(dep_tree)
    bare_venv.pip("download", "--no-deps", "--no-cache-dir", "-d", tmp_path / "d2", "--index-url",
                  mirror.simple_url, "lib-a", env=sealed_env, timeout=60)
    assert mirror.stats().count(kind="file") == 1


def test_venv_has_requested_pip(bare_venv: Venv) -> None:
    import ensurepip

    from tests.conftest import TEST_PIP, TEST_WHEELHOUSE
    from tests.harness.venvs import find_pip_wheel

    if TEST_PIP is None:
        expected = ensurepip.version()
    else:
        expected = find_pip_wheel(TEST_WHEELHOUSE, TEST_PIP).name.split("-")[1]
    assert bare_venv.pip_version == expected
    assert bare_venv.env["PIP_CONFIG_FILE"] == "/dev/null"
    assert not any(k.startswith("PIP_") and k not in {
        "PIP_CONFIG_FILE", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT"} for k in bare_venv.env)


def test_missing_wheelhouse_entries_name_the_fix(tmp_path: Path) -> None:
    from tests.harness.venvs import HarnessSetupError, create_venv, find_pip_wheel

    with pytest.raises(HarnessSetupError, match=r"python -m tests\.harness\.wheelhouse .* --pip 9\.9"):
        find_pip_wheel(tmp_path, "9.9")
    with pytest.raises(HarnessSetupError, match=r"python -m tests\.harness\.wheelhouse"):
        create_venv(tmp_path / "v", wheelhouse=tmp_path / "empty", project_wheel=tmp_path / "x.whl")
