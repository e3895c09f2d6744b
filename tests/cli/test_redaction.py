"""A password in a mirror URL never reaches any output: every command (table and ``--json``),
the hook's one stderr line on a bad setting, ``PIP_91N_LOG``, and pip's own output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliEnv, Runner
from tests.harness import PackageIndex, Venv

CANARY = "CANARY-pw-91n"


def _mirror_url(mirror: Any) -> str:
    """The loopback mirror's index URL with a user and the canary password."""
    return mirror.simple_url.replace("http://", f"http://ci-user:{CANARY}@", 1)


COMMANDS = [
    ("status", "--no-pip"), ("status", "--no-pip", "--json"),
    ("config", "show"), ("config", "show", "--json"), ("config", "get", "mirrors"),
    ("config", "get", "mirrors", "--json"),
    ("env",), ("env", "--all", "--json"), ("env", "--format", "dockerfile"),
    ("env", "--format", "github-actions"), ("env", "--format", "uv"),
    ("env", "--format", "uv-toml"), ("env", "--format", "uv", "--probe"),
    ("probe",), ("probe", "--json"),
    ("doctor",), ("doctor", "--json"), ("cache", "list"), ("cache", "list", "--json"),
]


@pytest.mark.parametrize("where", ["env", "file"])
def test_no_command_prints_a_mirror_password(
    where: str, cli: Runner, cli_env: CliEnv, dep_tree: PackageIndex, mirrors: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (mirror,) = mirrors(dep_tree, 1)
    chain = f"{_mirror_url(mirror)},pypi"
    if where == "env":
        monkeypatch.setenv("PIP_91N_MIRRORS", chain)
    else:
        cli_env.config.parent.mkdir(parents=True, exist_ok=True)
        cli_env.config.write_text(f'mirrors = "{chain}"\n', encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", f"https://u:{CANARY}@mirrors.aliyun.com/pypi/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"http://u:{CANARY}@10.9.8.7/simple/")
    monkeypatch.setenv("PIP_TRUSTED_HOST", "10.9.8.7")
    monkeypatch.setenv("PIP_91N_TIMEOUT", "1")
    for argv in COMMANDS:
        r = cli(*argv)
        assert CANARY not in r.out + r.err, (argv, r.out, r.err)
        assert r.code in (0, 1), (argv, r.code, r.err)
    assert "ci-user:***@" in cli("config", "show").out


def test_a_bad_setting_naming_a_password_is_reported_without_it(
    cli: Runner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_91N_MIRRORS", f"http://u:{CANARY}@10.9.8.7/simple/,pypi")
    r = cli("status", "--no-pip")
    assert r.code == 3 and "plain http" in r.err and CANARY not in r.err + r.out
    monkeypatch.setenv("PIP_91N_MIRRORS", f"ftp://u:{CANARY}@10.9.8.7/simple/")
    r = cli("doctor", "--offline", "--json")
    assert CANARY not in r.err + r.out


@pytest.mark.hook
def test_pip_its_log_and_the_hook_never_print_a_mirror_password(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, ["refused", None])  # the failure lines name the head
    log = tmp_path / "requests.log"
    env = {**sealed_env, "PIP_91N_MIRRORS": f"{_mirror_url(head)},{_mirror_url(good)}",
           "PIP_91N_LOG": str(log)}
    proc = shared_venv.pip("install", "--no-cache-dir", "--target", str(tmp_path / "t"),
                           "lib-c", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    text = log.read_text(encoding="utf-8")
    assert "lib_c-2.0-py3-none-any.whl" in text and "ci-user:***@" in text
    assert CANARY not in text
    # a bad setting: the hook's one stderr line names it, without the password
    env["PIP_91N_MIRRORS"] = f"http://u:{CANARY}@10.9.8.7/simple/"
    proc = shared_venv.pip("install", "--no-cache-dir", "--target", str(tmp_path / "t2"),
                           "lib-c", env=env, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pip-91n")]
    assert len(lines) == 1 and "plain http" in lines[0], proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
