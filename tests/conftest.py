"""Shared fixtures: loopback mirrors, a sealed environment, the built wheel, fresh venvs.

See docs/testing.md. Nothing here reaches the network: venvs install from the local wheelhouse
(``python -m tests.harness.wheelhouse`` fills it) and mirrors listen on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import AnyMirror, MirrorFactory, PackageIndex, make_wheel, tree_index
from tests.harness.venvs import (
    HarnessSetupError,
    Venv,
    build_project_wheel,
    create_venv,
    requested_pip,
    wheelhouse_dir,
)
from tests.harness.venvs import sealed_env as _sealed_env

# Read before the autouse fixture strips PIP_* from os.environ.
TEST_WHEELHOUSE = wheelhouse_dir()
TEST_PIP = requested_pip()

_STRIP_PREFIXES = ("PIP_", "HF_", "HUGGINGFACE_")
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy", "socks_proxy"}


@pytest.fixture(autouse=True)
def _isolated_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests see no PIP_*, PIP_91N_*, HF_* or proxy variables from this machine."""
    for key in list(os.environ):
        if key.upper().startswith(_STRIP_PREFIXES) or key.lower() in _PROXY_VARS:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def mirror_factory() -> Iterator[MirrorFactory]:
    """``mirror_factory(index, *faults, **options) -> MirrorServer``; ``.refused()``, ``.many()``."""
    factory = MirrorFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def mirrors(mirror_factory: MirrorFactory) -> Callable[..., list[AnyMirror]]:
    """``mirrors(index, 3)`` or ``mirrors(index, [None, BlackHole(), "refused"])``: N running
    mirrors in chain order, all stopped at teardown."""
    return mirror_factory.many


#: The wheel a lying mirror replaces in ``tampered_tree``.
TAMPERED = "lib_c-2.0-py3-none-any.whl"


@pytest.fixture(scope="session")
def tampered_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[PackageIndex, PackageIndex]:
    """The dependency tree, and a copy whose ``lib-c 2.0`` wheel (``TAMPERED``) is another
    one (with a ``backdoor`` module), listed with its own matching sha256: what a lying
    mirror serves."""
    real = tree_index(tmp_path_factory.mktemp("real"))
    evil = PackageIndex(f.path for f in real if f.filename != TAMPERED)
    wheel = make_wheel(tmp_path_factory.mktemp("evil"), "lib-c", "2.0",
                       files={"backdoor.py": "OWNED = True\n"}, requires_python=">=3.8")
    evil.add(wheel, project="lib-c")
    return real, evil


@pytest.fixture(scope="session")
def dep_tree(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    """A shared, read-only index: ``app -> lib-a, lib-b -> lib-c``, versions 1.0 and 2.0
    (use ``tree_index(tmp_path)`` for one you may change)."""
    return tree_index(tmp_path_factory.mktemp("dep-tree"))


@pytest.fixture
def sealed_env(tmp_path: Path) -> dict[str, str]:
    """An environment for subprocesses where any request off 127.0.0.1 fails at once; temp
    HOME/XDG dirs, PIP_CONFIG_FILE=/dev/null, PIP_91N_CONFIG and PIP_91N_CACHE_DIR under tmp."""
    return _sealed_env(tmp_path / "sealed")


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """The local wheelhouse; fails (never skips) when it is missing."""
    if not any(TEST_WHEELHOUSE.glob("httpx-*.whl")):
        pytest.fail(
            f"the test wheelhouse {TEST_WHEELHOUSE} is missing or incomplete; fill it first with: "
            "python -m tests.harness.wheelhouse",
            pytrace=False,
        )
    return TEST_WHEELHOUSE


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per session from the repo."""
    try:
        return build_project_wheel(tmp_path_factory.mktemp("project-wheel"))
    except HarnessSetupError as exc:
        pytest.fail(str(exc), pytrace=False)


VenvFactory = Callable[..., Venv]


@pytest.fixture
def venv_factory(tmp_path: Path, wheelhouse: Path, project_wheel: Path) -> VenvFactory:
    """``venv_factory(name="venv", pip=<PIP_91N_TEST_PIP>, project=True) -> Venv``."""

    def make(name: str = "venv", *, pip: str | None = TEST_PIP, project: bool = True) -> Venv:
        try:
            return create_venv(tmp_path / name, pip=pip, wheelhouse=wheelhouse,
                               project_wheel=project_wheel if project else None)
        except HarnessSetupError as exc:
            pytest.fail(str(exc), pytrace=False)

    return make


@pytest.fixture
def fresh_venv(venv_factory: VenvFactory) -> Venv:
    """A new venv with the chosen pip and the project installed from its wheel."""
    return venv_factory()


@pytest.fixture(scope="session")
def shared_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, project_wheel: Path) -> Venv:
    """Like ``fresh_venv`` but built once per session: only for tests that change nothing in it."""
    try:
        return create_venv(tmp_path_factory.mktemp("shared") / "venv", pip=TEST_PIP,
                           wheelhouse=wheelhouse, project_wheel=project_wheel)
    except HarnessSetupError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A session venv with the chosen pip and nothing else (no pip-91n): plain pip behaviour."""
    try:
        return create_venv(tmp_path_factory.mktemp("bare") / "venv", pip=TEST_PIP,
                           wheelhouse=TEST_WHEELHOUSE)
    except HarnessSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
