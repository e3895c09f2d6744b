"""`env --format ...`: every output parsed back by what would consume it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from typing import Any

import pytest

from .conftest import CliEnv, Runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CHAIN = "tuna,https://user:secret@private.example/pypi/simple/,pypi"
EXPECTED = {
    "PIP_91N_MIRRORS": "tuna,https://user:***@private.example/pypi/simple/,pypi",
    "PIP_91N_TIMEOUT": "2.5",
    "PIP_91N_ALLOW_HTTP": "10.0.0.5",
}


@pytest.fixture
def configured(cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> Runner:
    monkeypatch.setenv("PIP_91N_MIRRORS", CHAIN)
    monkeypatch.setenv("PIP_91N_LOG", "/var/log/pip-91n.log")  # machine-local: only with --all
    assert cli("config", "set", "timeout", "2.5").code == 0
    assert cli("config", "set", "allow_http", "10.0.0.5").code == 0
    return cli


def test_shell_output_sourced_by_bash(configured: Runner) -> None:
    r = configured("env", "--format", "shell")
    assert r.code == 0
    assert "secret" not in r.out and "passwords in index URLs" in r.err
    names = " ".join(EXPECTED)
    script = r.out + "".join(f'printf "%s\\0" "${n}"\n' for n in EXPECTED)
    got = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout.split("\0")[:-1]
    assert dict(zip(names.split(), got)) == EXPECTED
    assert "PIP_91N_LOG" not in r.out and "PIP_91N_CACHE_DIR" not in r.out
    everything = configured("env", "--all", "--json").json["variables"]
    assert everything["PIP_91N_LOG"] == "/var/log/pip-91n.log"
    assert "PIP_91N_CACHE_DIR" in everything


def parse_dockerfile_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):  # Dockerfile ENV quoting is shell-like
                key, _, value = word.partition("=")
                env[key] = value
        else:
            assert line.startswith("#") or not line.strip(), line
    return env


def test_dockerfile_env_lines(configured: Runner) -> None:
    r = configured("env", "-f", "dockerfile")
    assert parse_dockerfile_env(r.out) == EXPECTED


@pytest.mark.parametrize(("fmt", "block"), [("github-actions", "env"), ("gitlab-ci", "variables")])
def test_ci_yaml(configured: Runner, fmt: str, block: str) -> None:
    yaml = pytest.importorskip("yaml")
    r = configured("env", "--format", fmt)
    assert yaml.safe_load(r.out) == {block: EXPECTED}


def test_json_mode(configured: Runner) -> None:
    data = configured("env", "--json").json
    assert data["variables"] == EXPECTED and data["format"] == "shell"


def write_ranking(cli_env: CliEnv, latency: dict[str, float | None]) -> None:
    cli_env.cache.mkdir(parents=True, exist_ok=True)
    order = sorted(latency, key=lambda n: (latency[n] is None, latency[n] or 0))
    (cli_env.cache / "auto-ranking.json").write_text(json.dumps(
        {"at": time.time() - 300, "order": order, "latency": latency}))


CATALOG = ["91n", "tuna", "bfsu", "ustc", "aliyun", "tencent", "huawei", "sjtu", "pypi"]


def test_uv_uses_the_best_ranked_mirrors(cli: Runner, cli_env: CliEnv) -> None:
    latency: dict[str, float | None] = dict.fromkeys(CATALOG)
    latency.update(aliyun=0.05, tuna=0.08, pypi=0.3, sjtu=0.4)
    write_ranking(cli_env, latency)
    r = cli("env", "--format", "uv")
    assert r.code == 0 and "ranked 5 min ago" in r.out
    script = r.out + 'printf "%s\\n%s\\n" "$UV_INDEX" "$UV_DEFAULT_INDEX"'
    index, default = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                    check=True).stdout.splitlines()
    assert index == ("aliyun=https://mirrors.aliyun.com/pypi/simple/ "
                     "tuna=https://pypi.tuna.tsinghua.edu.cn/simple/")
    assert default == "https://pypi.org/simple/"
    one = cli("env", "--format", "uv", "--count", "1", "--json").json["variables"]
    assert one == {"UV_DEFAULT_INDEX": "https://mirrors.aliyun.com/pypi/simple/"}


def test_uv_toml(cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_MIRRORS", "sjtu,https://mirror.example/simple/,pypi")
    r = cli("env", "--format", "uv-toml", "--count", "2")
    data = tomllib.loads(r.out)
    assert data == {"index": [
        {"name": "sjtu", "url": "https://mirror.sjtu.edu.cn/pypi/web/simple/"},
        {"name": "mirror.example-simple", "url": "https://mirror.example/simple/",
         "default": True},
    ]}


def test_uv_without_ranking_says_so(cli: Runner) -> None:
    r = cli("env", "--format", "uv")
    assert r.code == 0 and "no ranking yet" in r.err


def test_uv_probe_of_an_explicit_chain_leaves_out_a_dead_mirror(
    cli: Runner, dep_tree: Any, mirrors: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uv cannot fail over on a connection error: a dead first index would break it."""
    dead, good = mirrors(dep_tree, ["refused", None])
    monkeypatch.setenv("PIP_91N_MIRRORS", f"{dead.simple_url},{good.simple_url}")
    plain = cli("env", "--format", "uv", "--json").json["variables"]
    assert dead.simple_url in str(plain)  # no probe: as configured
    probed = cli("env", "--format", "uv", "--probe", "--json").json["variables"]
    assert probed == {"UV_DEFAULT_INDEX": good.simple_url}


SERVE = "http://127.0.0.1:3144/simple/"


@pytest.mark.parametrize("given", ["http://127.0.0.1:3144", "http://127.0.0.1:3144/simple",
                                   SERVE])
def test_serve_url_is_completed(cli: Runner, given: str) -> None:
    assert cli("env", "--format", "uv", "--serve", given, "--json").json["serve"] == SERVE


@pytest.mark.parametrize("fmt", ["shell", "uv", "pdm", "pip"])
def test_serve_lines_sourced_by_bash(cli: Runner, fmt: str) -> None:
    r = cli("env", "--format", fmt, "--serve", SERVE)
    assert r.code == 0
    out = subprocess.run(["bash", "-c", r.out + "env"], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    wanted = {"uv": ["UV_DEFAULT_INDEX"], "pdm": ["PDM_PYPI_URL"], "pip": ["PIP_INDEX_URL"],
              "shell": ["PIP_INDEX_URL", "UV_DEFAULT_INDEX", "PDM_PYPI_URL"]}[fmt]
    for var in wanted:
        assert f"{var}={SERVE}" in out.splitlines()
    assert "PIP_TRUSTED_HOST" not in out  # loopback: pip trusts it already


def test_serve_toml_formats(cli: Runner) -> None:
    poetry = tomllib.loads(cli("env", "--format", "poetry", "--serve", SERVE).out)
    assert poetry == {"tool": {"poetry": {"source": [
        {"name": "pip-91n", "url": SERVE, "priority": "primary"}]}}}
    uv = tomllib.loads(cli("env", "--format", "uv-toml", "--serve", SERVE).out)
    assert uv == {"index": [{"name": "pip-91n", "url": SERVE, "default": True}]}


def test_serve_over_plain_http_to_another_host_needs_a_trusted_host(cli: Runner) -> None:
    r = cli("env", "--format", "dockerfile", "--serve", "http://build-cache:3144/simple/")
    assert 'ENV PIP_TRUSTED_HOST="build-cache:3144"' in r.out and "https" in r.err


@pytest.mark.parametrize("args", [["--format", "poetry"], ["--format", "pdm"],
                                  ["--format", "pip"], ["--serve", "ftp://host/simple/"],
                                  ["--serve", "http://u:pw@host/simple/"],
                                  ["--serve", "not a url"], ["--serve", "http://h:99999/"]])
def test_serve_mistakes_are_usage_errors(cli: Runner, args: list[str]) -> None:
    r = cli("env", *args)
    assert r.code == 2 and "pw" not in r.err and r.out == ""
