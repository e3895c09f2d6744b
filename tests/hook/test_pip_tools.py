"""pip-tools (``pip-compile``, ``pip-sync``) in a venv with the built wheel, against loopback
mirrors whose head is broken.

pip-compile runs pip's resolver in its own process (``import pip._internal``), so the startup
hook patches it there; pip-sync runs ``python -m pip install`` in a subprocess, where the hook
runs again. Both use pip's default index (pypi.org, unreachable in the sealed environment):
only the chain can serve them. pip-tools and its dependencies come from the local wheelhouse
(``python -m tests.harness.wheelhouse`` fetches them), into venvs of this module only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.harness import PackageIndex, ServerError, Venv, create_venv
from tests.harness.venvs import HarnessSetupError, requested_pip
from tests.hook.helpers import chain_env, log_lines

pytestmark = pytest.mark.hook

# read at import time (the autouse fixture strips PIP_* from os.environ during tests)
TEST_PIP = requested_pip()

NEWEST = {"app": "2.0", "lib-a": "2.0", "lib-b": "2.0", "lib-c": "2.0"}
PINNED = {"app": "2.0", "lib-a": "1.0", "lib-b": "2.0", "lib-c": "2.0"}

HEAD_FAULTS: dict[str, Any] = {
    "refused": "refused",
    "503": ServerError(status=503),
}

_DISTS = ("import importlib.metadata as m, json; "
          "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
          "for d in m.distributions()}))")


def _dists(venv: Venv, env: dict[str, str] | None = None) -> dict[str, str]:
    """normalized name -> version of every distribution installed in ``venv``."""
    return dict(json.loads(venv.py("-c", _DISTS, env=env).stdout))


def _make_tools_venv(path: Path, wheelhouse: Path, project_wheel: Path) -> Venv:
    """A venv with ``PIP_91N_TEST_PIP``, the project and pip-tools, all from the wheelhouse."""
    if not any(wheelhouse.glob("pip_tools-*.whl")):
        pytest.fail(f"the test wheelhouse {wheelhouse} has no pip-tools wheel; fill it with: "
                    f"python -m tests.harness.wheelhouse {wheelhouse}", pytrace=False)
    try:
        venv = create_venv(path, pip=TEST_PIP, wheelhouse=wheelhouse, project_wheel=project_wheel)
    except HarnessSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    pip_before = venv.pip_version
    # setup only: the hook stays out of it (nothing here asks an index). The pip under test
    # stays: pip picks the newest pip-tools that supports it (7.7 needs pip>=26.2.2).
    proc = venv.pip("install", "--no-index", "--find-links", str(wheelhouse), "-q", "pip-tools",
                    f"pip=={pip_before}", env={**venv.env, "PIP_91N_DISABLE": "1"}, check=False)
    assert proc.returncode == 0, f"installing pip-tools failed:\n{proc.stdout}\n{proc.stderr}"
    assert venv.pip_version == pip_before
    return venv


def _skip_if_unsupported(venv: Venv) -> None:
    """Skip when pip-tools' declared pip requirement excludes the venv's pip. (pip-tools 7.6.2
    declares pip>=22.2 and works with every pip of the tox matrix: 23.2.1 to 26.3; 7.7 needs
    pip>=26.2.2.)"""
    dists = _dists(venv)
    pip, tools = dists["pip"], dists["pip-tools"]
    code = ("import importlib.metadata as m; "
            "print('\\n'.join(m.requires('pip-tools') or []))")
    for line in venv.py("-c", code).stdout.splitlines():
        req = Requirement(line)
        if req.name == "pip" and not req.marker and Version(pip) not in req.specifier:
            pytest.skip(f"pip-tools {tools} requires pip{req.specifier}; this venv has pip {pip}")


@pytest.fixture(scope="module")
def tools_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path,
               project_wheel: Path) -> Venv:
    """This module's venv with pip-tools; pip-compile writes nothing into it."""
    venv = _make_tools_venv(tmp_path_factory.mktemp("pip-tools") / "venv", wheelhouse,
                            project_wheel)
    _skip_if_unsupported(venv)
    return venv


def _pins(text: str) -> dict[str, str]:
    """name -> version of the ``name==version`` lines of a compiled requirements file."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def _compile(venv: Venv, env: dict[str, str], workdir: Path, requirements: str,
             *args: str) -> tuple[str, str]:
    """``pip-compile requirements.in`` in ``workdir``; returns (requirements.txt, stderr)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "requirements.in").write_text(requirements, encoding="utf-8")
    proc = venv.run(venv.script("pip-compile"), "--no-header", "--no-strip-extras",
                    "--output-file", "requirements.txt", *args, "requirements.in",
                    env=env, cwd=workdir, check=False, timeout=120)
    assert proc.returncode == 0, f"pip-compile failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return (workdir / "requirements.txt").read_text(encoding="utf-8"), proc.stderr


def _assert_clean(err: str) -> None:
    assert "Unexpected import" not in err and "Blocked import" not in err, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("fault", list(HEAD_FAULTS))
def test_pip_compile_resolves_through_the_chain(
    fault: str, tools_venv: Venv, dep_tree: PackageIndex, mirrors: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, [HEAD_FAULTS[fault], None])
    env = chain_env(sealed_env, [head, good])
    text, err = _compile(tools_venv, env, tmp_path / "w", "app\nlib-a<2\n")
    assert _pins(text) == PINNED, text
    _assert_clean(err)
    assert "pip-91n" not in text
    # the chain served every project page pip-compile read, from the healthy mirror
    lines = log_lines(env)
    assert lines and all(line.startswith("pip-91n ") for line in lines)
    for project in NEWEST:
        assert good.stats().requests.get(f"/simple/{project}/", 0) >= 1, (project, lines)
        assert any(f"/simple/{project}/" in line for line in lines), (project, lines)
    if fault == "503":
        assert head.stats().total_requests >= 1  # asked first, then failed over


def test_pip_compile_generate_hashes_through_the_chain(
    tools_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """pip-tools clears pip's cached ``find_best_candidate`` to collect hashes: the patch's
    wrapper keeps ``cache_clear`` (pip < 25.1 crashed without it)."""
    head, good = mirrors(dep_tree, ["refused", None])
    env = chain_env(sealed_env, [head, good])
    text, err = _compile(tools_venv, env, tmp_path / "w", "app\nlib-a<2\n", "--generate-hashes")
    _assert_clean(err)
    assert _pins(text) == PINNED, text
    for name, version in PINNED.items():
        dist = dep_tree.get(f"{name.replace('-', '_')}-{version}-py3-none-any.whl")
        assert dist is not None and f"--hash=sha256:{dist.sha256}" in text, (name, text)


def test_pip_sync_installs_the_compiled_pins_through_the_chain(
    tmp_path: Path, wheelhouse: Path, project_wheel: Path, dep_tree: PackageIndex,
    mirrors: Any, sealed_env: dict[str, str],
) -> None:
    venv = _make_tools_venv(tmp_path / "sync-venv", wheelhouse, project_wheel)  # it changes
    _skip_if_unsupported(venv)
    head, good = mirrors(dep_tree, ["refused", None])
    env = chain_env(sealed_env, [head, good])
    text, err = _compile(venv, env, tmp_path / "w", "app\nlib-a<2\n")
    assert _pins(text) == PINNED, text
    _assert_clean(err)
    before = _dists(venv)
    assert not set(PINNED) & set(before)
    # pip-sync uninstalls what the file does not name: the environment's own tools stay listed
    freeze = venv.pip("freeze", "--all", env={**venv.env, "PIP_91N_DISABLE": "1"}).stdout
    reqs = tmp_path / "w" / "requirements.txt"
    reqs.write_text(text + "# the environment's own\n" + freeze, encoding="utf-8")
    log_before = len(log_lines(env))
    sent_before = dict(good.stats().bytes_by_file)
    proc = venv.run(venv.script("pip-sync"), "--pip-args", "--no-cache-dir", str(reqs),
                    env=env, check=False, timeout=120)
    assert proc.returncode == 0, f"pip-sync failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    _assert_clean(proc.stderr)
    after = _dists(venv)
    assert {name: after.get(name) for name in PINNED} == PINNED
    assert {k: v for k, v in after.items() if k not in PINNED} == before  # nothing else moved
    # pip-sync's `python -m pip install` subprocess fetched every file from the chain
    new = log_lines(env)[log_before:]
    for name, version in PINNED.items():
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        assert good.stats().bytes_by_file.get(wheel, 0) > sent_before.get(wheel, 0), (wheel, new)
        assert any(wheel in line for line in new), (wheel, new)
    venv.py("-c", "import app, lib_a, lib_b, lib_c", env=env)  # the installed code imports
