"""Throwaway venvs with a chosen pip and the project installed from its built wheel, offline.

Every pip run here uses a clean environment (:func:`clean_env`): ``PIP_CONFIG_FILE=/dev/null``,
temp ``HOME``/XDG dirs, no inherited ``PIP_*`` or proxy variables. Packages come only from the
local wheelhouse (``python -m tests.harness.wheelhouse`` fills it before the tests run).

- ``PIP_91N_TEST_WHEELHOUSE``: the wheelhouse dir (default ``<repo>/.wheelhouse``)
- ``PIP_91N_TEST_PIP``: pip version for fresh venvs; unset = the pip that ``python -m venv``
  bundles (ensurepip); ``latest`` = the newest pip wheel in the wheelhouse.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .netutil import refused_port

__all__ = [
    "ENV_PIP",
    "ENV_WHEELHOUSE",
    "REPO",
    "HarnessSetupError",
    "Venv",
    "build_project_wheel",
    "clean_env",
    "create_venv",
    "find_pip_wheel",
    "requested_pip",
    "sealed_env",
    "wheelhouse_dir",
]

REPO = Path(__file__).resolve().parents[2]
ENV_WHEELHOUSE = "PIP_91N_TEST_WHEELHOUSE"
ENV_PIP = "PIP_91N_TEST_PIP"
FILL_COMMAND = "python -m tests.harness.wheelhouse"


class HarnessSetupError(RuntimeError):
    """The test environment is not ready (a missing wheelhouse entry, a failed build)."""


def wheelhouse_dir() -> Path:
    value = os.environ.get(ENV_WHEELHOUSE)
    return Path(value).resolve() if value else REPO / ".wheelhouse"


def requested_pip() -> str | None:
    """The pip version fresh venvs get: a version, ``"latest"`` or ``None`` (bundled)."""
    value = os.environ.get(ENV_PIP, "").strip()
    return value or None


def _fill_hint(wheelhouse: Path, pip: str | None = None) -> str:
    parts = [FILL_COMMAND]
    if wheelhouse != REPO / ".wheelhouse":
        parts.append(str(wheelhouse))
    if pip:
        parts += ["--pip", pip]
    return " ".join(parts)


def find_pip_wheel(wheelhouse: Path, version: str) -> Path:
    """The wheelhouse's ``pip-<version>-*.whl`` (``latest``: the newest one)."""
    found: dict[Version, Path] = {}
    for p in wheelhouse.glob("pip-*.whl") if wheelhouse.is_dir() else ():
        try:
            found[Version(p.name.split("-")[1])] = p
        except InvalidVersion:
            continue
    if version == "latest" and found:
        return found[max(found)]
    if version != "latest" and Version(version) in found:
        return found[Version(version)]
    raise HarnessSetupError(
        f"the wheelhouse {wheelhouse} has no pip {version} wheel; fill it with: "
        f"{_fill_hint(wheelhouse, version)}"
    )


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for subprocesses: PATH and locale from here, a temp HOME and XDG
    dirs under ``home``, pip isolated from every config file, and nothing else."""
    home = Path(home)
    for sub in ("", ".config", ".cache", ".local/share"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra or {})
    return env


@functools.lru_cache(maxsize=1)
def _dead_proxy_port() -> int:
    """One refused port per process serves as every sealed environment's dead proxy."""
    return refused_port()


def sealed_env(base: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """:func:`clean_env` plus: every request off 127.0.0.1 fails at once (a dead loopback
    proxy for HTTP(S) and ALL_PROXY, ``NO_PROXY`` for loopback), and pip-91n's config and
    cache under ``base`` (the config file exists and is empty)."""
    base = Path(base)
    dead = f"http://127.0.0.1:{_dead_proxy_port()}"
    env = clean_env(base / "home")
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[key] = env[key.lower()] = dead
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # an empty config file: PIP_91N_CONFIG naming a missing file is a configuration error
    config = base / "pip-91n-config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.touch()
    env["PIP_91N_CONFIG"] = str(config)
    env["PIP_91N_CACHE_DIR"] = str(base / "pip-91n-cache")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Venv:
    """A virtual environment; ``env`` is the clean environment its commands run with."""

    path: Path
    env: Mapping[str, str]

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def script(self, name: str) -> Path:
        return self.bin / name

    def run(
        self,
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (the first arg as is, e.g. ``venv.python`` or a script path)."""
        cmd = [os.fspath(a) for a in args]
        proc = subprocess.run(
            cmd, env=dict(env if env is not None else self.env), capture_output=True, text=True,
            timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def py(self, *args: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """``<venv>/bin/python *args``."""
        return self.run(self.python, *args, **kw)  # type: ignore[arg-type]

    def pip(self, *args: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """``<venv>/bin/python -m pip *args``."""
        return self.run(self.python, "-m", "pip", *args, **kw)  # type: ignore[arg-type]

    @property
    def pip_version(self) -> str:
        out = self.py("-c", "import pip; print(pip.__version__)").stdout
        return out.strip()

    @property
    def site_packages(self) -> Path:
        out = self.py("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
        return Path(out.strip())


def _run(cmd: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float, what: str) -> None:
    proc = subprocess.run(
        [os.fspath(c) for c in cmd], env=dict(env), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise HarnessSetupError(
            f"{what} failed ({proc.returncode}): {' '.join(os.fspath(c) for c in cmd)}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        )


def create_venv(
    path: Path,
    *,
    pip: str | None = None,
    wheelhouse: Path | None = None,
    project_wheel: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> Venv:
    """Create a venv at ``path`` with ``pip`` (a version, ``"latest"``, or ``None`` for the
    bundled one) and, when given, the project installed from ``project_wheel`` with
    ``--no-index --find-links <wheelhouse>`` (as users install it, dependencies included)."""
    path = Path(path)
    wheelhouse = wheelhouse or wheelhouse_dir()
    if project_wheel is not None and not wheelhouse.is_dir():
        raise HarnessSetupError(
            f"the wheelhouse {wheelhouse} does not exist; fill it with: {_fill_hint(wheelhouse)}"
        )
    env = dict(env) if env is not None else clean_env(path.parent / f"{path.name}-home")
    if pip is None:
        _run([sys.executable, "-m", "venv", path], env, timeout, "python -m venv")
    else:
        wheel = find_pip_wheel(wheelhouse, pip)
        _run([sys.executable, "-m", "venv", "--without-pip", path], env, timeout, "python -m venv")
        # pip runs from its own wheel to install itself (pip's documented bootstrap)
        _run([path / "bin" / "python", f"{wheel}/pip", "install", "--no-index", "--no-deps", "-q", wheel],
             env, timeout, f"installing {wheel.name}")
    venv = Venv(path, env)
    if project_wheel is not None:
        try:
            _run([venv.python, "-m", "pip", "install", "--no-index", "--find-links", wheelhouse, "-q",
                  project_wheel], env, timeout, f"installing {project_wheel.name}")
        except HarnessSetupError as exc:
            raise HarnessSetupError(
                f"{exc}\nThe wheelhouse {wheelhouse} probably lacks a dependency; fill it with: "
                f"{_fill_hint(wheelhouse)}"
            ) from None
    return venv


def build_project_wheel(out_dir: Path, *, timeout: float = 300) -> Path:
    """Build the project's wheel from the repo (``pip wheel --no-deps --no-build-isolation``,
    hatchling from the test dependency group) into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import hatchling  # noqa: F401
    except ImportError:
        raise HarnessSetupError(
            "hatchling is not installed in the test environment; install the test group: "
            "python -m pip install --group test (pip >= 25.1), or run tox"
        ) from None
    env = clean_env(out_dir / "home")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          out_dir, REPO], env, timeout, "building the project wheel")
    wheels = sorted(out_dir.glob("pip_91n-*.whl"))
    if len(wheels) != 1:
        raise HarnessSetupError(f"expected one pip_91n wheel in {out_dir}, found {wheels}")
    return wheels[0]
