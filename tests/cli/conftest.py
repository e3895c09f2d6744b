"""Fixtures for the command-line tests: temp config/cache/pip-config dirs and a runner.

``cli("status", "--json")`` runs ``pip_91n.cli.main`` in-process and returns a ``Result``
(exit code, stdout, stderr, and ``.json`` when stdout is JSON). Every test gets its own
``HOME``/XDG dirs, so the user config, site config, pip config files and cache are all
under ``tmp_path``; nothing reaches a real host (mirrors are the loopback harness).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pip_91n.cli import main

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class CliEnv:
    home: Path
    config: Path  # the user config file (default location, via XDG_CONFIG_HOME)
    site_config: Path
    cache: Path
    pip_conf: Path  # pip's user config file (~/.config/pip/pip.conf)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    home = tmp_path / "home"
    env = CliEnv(
        home=home,
        config=home / ".config" / "pip-91n" / "config.toml",
        site_config=tmp_path / "xdg-dirs" / "pip-91n" / "config.toml",
        cache=tmp_path / "cache",
        pip_conf=home / ".config" / "pip" / "pip.conf",
    )
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-dirs"))
    monkeypatch.setenv("PIP_91N_CACHE_DIR", str(env.cache))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    # In-process, the CLI looks at this interpreter, which may or may not have the wheel (and
    # its pip_91n.pth) installed: a tox env does, a source checkout does not. Pin it to "not
    # installed, start-up hook not run"; tests/cli/test_installed.py covers a real install.
    site_packages = tmp_path / "site-packages"
    site_packages.mkdir()
    monkeypatch.setattr("pip_91n.cli.hookstate.site_dirs", lambda: [site_packages])
    monkeypatch.setattr("pip_91n._startup._initialized", False)
    return env


Runner = Callable[..., Result]


@pytest.fixture
def cli(cli_env: CliEnv, capsys: pytest.CaptureFixture[str]) -> Runner:
    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ (already cleaned by the autouse fixture) with the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env
