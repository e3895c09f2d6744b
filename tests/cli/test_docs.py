"""The documentation's examples: every ```sh test block runs (with the installed pip-91n, in a
sealed environment where nothing off 127.0.0.1 is reachable), and containers-ci.md shows the
example files the CI tests execute, verbatim."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pip_91n.cli.parser import COMMANDS
from tests.harness import Venv

from .conftest import REPO
from .test_installed import venv_env

DOCS = REPO / "docs"
TESTED = ["getting-started.md", "configuration.md", "troubleshooting.md"]


def blocks(page: str) -> list[str]:
    return re.findall(r"```sh test\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", TESTED)
def test_sh_blocks_run(page: str, shared_venv: Venv, sealed_env: dict[str, str]) -> None:
    found = blocks(page)
    assert found, f"{page} has no ```sh test block"
    env = venv_env(shared_venv, sealed_env)
    for block in found:
        r = subprocess.run(["bash", "-ec", block], env=env, capture_output=True, text=True,
                           timeout=60, cwd=Path(env["HOME"]))
        assert r.returncode == 0, f"{page}:\n{block}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr


def test_getting_started_outputs_are_true(shared_venv: Venv, sealed_env: dict[str, str]) -> None:
    env = venv_env(shared_venv, sealed_env)
    block = blocks("getting-started.md")[1]
    out = subprocess.run(["bash", "-ec", block], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("tuna,aliyun,pypi\n")  # what the comment in the doc promises
    assert 'ENV PIP_91N_MIRRORS="tuna,aliyun,pypi"' in out


@pytest.mark.parametrize("name", ["Dockerfile", "github-actions.yml", "gitlab-ci.yml"])
def test_containers_page_shows_the_tested_examples(name: str) -> None:
    example = (DOCS / "examples" / name).read_text().rstrip("\n")
    assert example in (DOCS / "containers-ci.md").read_text()


def test_cli_page_documents_every_command_and_exit_code() -> None:
    text = (DOCS / "cli.md").read_text()
    for name in COMMANDS:
        assert f"## `{name}`" in text
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in text


def test_configuration_page_lists_every_setting() -> None:
    from pip_91n.settings.configfile import KEYS

    text = (DOCS / "configuration.md").read_text()
    for key, var in KEYS.items():
        assert f"| `{var}` | `{key}` |" in text
    for var in ("PIP_91N_DISABLE", "PIP_91N_CONFIG", "PIP_91N_SEGMENT_THRESHOLD"):
        assert f"| `{var}` |" in text


def test_every_variable_in_the_code_is_documented() -> None:
    used = set()
    for path in (REPO / "pip_91n").glob("*.py"):
        used |= set(re.findall(r"PIP_91N_[A-Z_]*[A-Z]", path.read_text()))
    text = (DOCS / "configuration.md").read_text()
    missing = sorted(v for v in used if f"`{v}`" not in text)
    assert not missing, f"not in docs/configuration.md: {missing}"
