"""The installed `pip-91n` in a real venv (built wheel): status/doctor see the hook patch pip,
and the documented Dockerfile / GitHub Actions / GitLab CI commands run against loopback
mirrors (their PIP_91N_MIRRORS replaced by a dead and a live loopback mirror)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Venv

from .conftest import REPO

EXAMPLES = REPO / "docs" / "examples"
pytestmark = pytest.mark.slow


def venv_env(venv: Venv, sealed_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in sealed_env.items() if k != "PIP_91N_CONFIG"}
    env["PATH"] = f"{venv.bin}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv.path)
    env.update(extra)
    return env


def run_json(venv: Venv, env: dict[str, str], *args: str) -> tuple[int, Any]:
    r = venv.run(venv.script("pip-91n"), *args, "--json", env=env, check=False)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def test_status_and_doctor_in_a_venv(shared_venv: Venv, sealed_env: dict[str, str],  # type: ignore[no-untyped-def]
                                     mirrors, dep_tree) -> None:
    dead, live = mirrors(dep_tree, ["refused", None])
    env = venv_env(shared_venv, sealed_env,
                   PIP_91N_MIRRORS=f"{dead.simple_url},{live.simple_url}")
    code, status = run_json(shared_venv, env, "status")
    assert code == 0
    hook = status["hook"]
    assert hook["installed"] and hook["startup_ran"] and hook["active"]
    assert hook["pth"].startswith(str(shared_venv.path))
    assert hook["pip"] == shared_venv.pip_version
    assert hook["patched"] is True, hook
    code, doctor = run_json(shared_venv, env, "doctor")
    bad = [f for f in doctor["findings"] if f["level"] == "error"]
    assert code == 0 and not bad, doctor
    levels = {f["check"]: f["level"] for f in doctor["findings"] if f["level"] != "ok"}
    assert levels == {"mirror": "warn"}  # the dead mirror, with the live one answering
    disabled = dict(env, PIP_91N_DISABLE="1")
    code, status = run_json(shared_venv, disabled, "status")
    assert status["hook"]["disabled"] and not status["hook"]["active"]
    r = shared_venv.run(shared_venv.script("pip-91n"), "doctor", "--strict", env=disabled,
                        check=False)
    assert r.returncode == 1 and "PIP_91N_DISABLE is set" in r.stdout


def dockerfile_steps(text: str) -> tuple[dict[str, str], list[str]]:
    """ENV values and RUN commands, continuation lines joined, RUN flags dropped."""
    env: dict[str, str] = {}
    runs: list[str] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
        elif line.startswith("RUN "):
            runs.append(re.sub(r"^(--\S+\s+)*", "", line[4:].strip()))
    return env, runs


def github_steps(text: str, workspace: Path) -> tuple[dict[str, str], list[str]]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(text)
    env = {k: str(v).replace("${{ github.workspace }}", str(workspace))
           for k, v in data["env"].items()}
    (job,) = data["jobs"].values()
    return env, [s["run"] for s in job["steps"] if "run" in s]


def gitlab_steps(text: str, project: Path) -> tuple[dict[str, str], list[str]]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(text)
    env = {k: str(v).replace("$CI_PROJECT_DIR", str(project))
           for k, v in data["variables"].items()}
    job = data["test"]
    return env, [*job["before_script"], *job["script"]]


@pytest.mark.parametrize(("example", "requirement"), [
    ("Dockerfile", "lib-c==1.0"),
    ("github-actions.yml", "app==2.0"),
    ("gitlab-ci.yml", "app==1.0"),
])
def test_documented_examples_run(example: str, requirement: str, venv_factory,  # type: ignore[no-untyped-def]
                                 sealed_env: dict[str, str], mirrors, dep_tree,
                                 tmp_path: Path) -> None:
    venv = venv_factory(example.replace(".", "-"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "requirements.txt").write_text(requirement + "\n")
    text = (EXAMPLES / example).read_text()
    if example == "Dockerfile":
        example_env, commands = dockerfile_steps(text)
        example_env["PIP_91N_CACHE_DIR"] = str(work / ".cache" / "pip-91n")
    elif example.startswith("github"):
        example_env, commands = github_steps(text, work)
    else:
        example_env, commands = gitlab_steps(text, work)
    assert example_env["PIP_91N_MIRRORS"] == "tuna,aliyun,pypi"
    assert any("pip install -r requirements.txt" in c for c in commands)
    dead, live = mirrors(dep_tree, ["refused", None])
    env = venv_env(venv, sealed_env, **example_env)
    env["PIP_91N_MIRRORS"] = f"{dead.simple_url},{live.simple_url}"  # loopback, not tuna
    for command in commands:
        r = subprocess.run(["bash", "-ec", command], cwd=work, env=env, capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
    name, version = requirement.split("==")
    shown = venv.pip("show", name, env=env).stdout
    assert f"Version: {version}" in shown
    assert live.stats().count(kind="file") > 0  # files came through the chain
    assert (work / ".cache" / "pip-91n").is_dir()
