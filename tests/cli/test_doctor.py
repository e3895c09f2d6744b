"""`doctor`: each finding with its fix, non-zero exit when something is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CliEnv, Runner


def findings(cli: Runner, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    r = cli("doctor", "--json", *extra)
    assert "Traceback" not in r.err
    return r.code, r.json["findings"]


def having(found: list[dict[str, Any]], check: str, text: str) -> dict[str, Any]:
    hits = [f for f in found if f["check"] == check and text in f["message"]]
    assert hits, f"no {check!r} finding with {text!r} in {found}"
    return hits[0]


def test_trusted_host_and_plain_http_pip_conf(cli: Runner, cli_env: CliEnv,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cli_env.pip_conf.parent.mkdir(parents=True)
    cli_env.pip_conf.write_text("[global]\nindex-url = http://mirrors.aliyun.com/pypi/simple/\n"
                                "trusted-host = mirrors.aliyun.com\n")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:9/simple/ http://x.example/s/")
    _, found = findings(cli, "--offline")
    trusted = having(found, "pip config", "trusted-host = mirrors.aliyun.com")
    assert trusted["level"] == "warn" and f"{cli_env.pip_conf}:3" in trusted["message"]
    assert "delete line 3" in trusted["fix"]
    plain = having(found, "pip config", "http://mirrors.aliyun.com/pypi/simple/ uses plain http")
    assert plain["level"] == "warn" and f"{cli_env.pip_conf}:2" in plain["message"]
    assert "https://mirrors.aliyun.com/pypi/simple/" in plain["fix"]
    having(found, "pip config", "PIP_EXTRA_INDEX_URL: index http://x.example/s/")
    assert not [f for f in found if "127.0.0.1:9" in f["message"]]  # loopback is fine
    # warnings alone: exit 0 unless --strict (the missing hook is an error here, so use
    # the human output to see both)
    text = cli("doctor", "--offline").out
    assert "[warn] pip config:" in text and "fix: delete line 3" in text


def test_dead_mirror_in_pip_index(cli: Runner, cli_env: CliEnv, mirror_factory, dep_tree,  # type: ignore[no-untyped-def]
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    live = mirror_factory(dep_tree)
    dead = mirror_factory.refused()
    monkeypatch.setenv("PIP_91N_MIRRORS", live.simple_url)
    cli_env.pip_conf.parent.mkdir(parents=True)
    cli_env.pip_conf.write_text(f"[global]\nindex-url = {dead.simple_url}\n")
    code, found = findings(cli)
    assert code == 1
    f = having(found, "pip index", dead.simple_url)
    assert f["level"] == "error" and f"{cli_env.pip_conf}:2" in f["message"]
    assert "remove index-url" in f["fix"]
    ok = having(found, "mirror", f"127.0.0.1:{live.port}/simple")
    assert ok["level"] == "ok" and "HTTP" in ok["message"]
    # pip's index is the live mirror: fine
    cli_env.pip_conf.write_text(f"[global]\nindex-url = {live.simple_url}\n")
    _, found = findings(cli)
    assert having(found, "pip index", live.simple_url)["level"] == "ok"


def test_dead_chain_mirrors(cli: Runner, mirror_factory, dep_tree,  # type: ignore[no-untyped-def]
                            monkeypatch: pytest.MonkeyPatch) -> None:
    live = mirror_factory(dep_tree)
    dead = mirror_factory.refused()
    monkeypatch.setenv("PIP_91N_MIRRORS", f"{dead.simple_url},{live.simple_url}")
    _, found = findings(cli)
    assert having(found, "mirror", dead.simple_url)["level"] == "warn"
    assert not [f for f in found if f["check"] == "mirror" and f["level"] == "error"]
    monkeypatch.setenv("PIP_91N_MIRRORS", dead.simple_url)
    code, found = findings(cli)
    assert code == 1
    assert having(found, "mirror", "no mirror of the chain answers")["level"] == "error"


def test_unwritable_cache_dir(cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = cli_env.home / "file"
    blocker.write_text("")
    monkeypatch.setenv("PIP_91N_CACHE_DIR", str(blocker / "cache"))
    code, found = findings(cli, "--offline")
    assert code == 1
    f = having(found, "cache dir", "is not writable")
    assert f["level"] == "error" and "PIP_91N_CACHE_DIR" in f["fix"]


def test_invalid_config_is_a_finding_not_a_crash(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_MIRRORS", "tuna,nosuch")
    code, found = findings(cli, "--offline")
    assert code == 1
    assert having(found, "config", "unknown mirror 'nosuch'")["level"] == "error"


def test_missing_hook_is_an_error_here(cli: Runner) -> None:
    # cli_env pins this interpreter to one without pip_91n.pth in its site-packages
    code, found = findings(cli, "--offline")
    assert code == 1
    f = having(found, "hook", "pip_91n.pth is not in this interpreter's site-packages")
    assert f["level"] == "error" and "pip install --force-reinstall pip-91n" in f["fix"]


def test_tls_failure_is_named(cli: Runner, mirror_factory, dep_tree,  # type: ignore[no-untyped-def]
                              monkeypatch: pytest.MonkeyPatch) -> None:
    plain = mirror_factory(dep_tree)  # speaks plain HTTP: a TLS handshake with it fails
    live = mirror_factory(dep_tree)
    https = f"https://127.0.0.1:{plain.port}/simple/"
    monkeypatch.setenv("PIP_91N_MIRRORS", f"{https},{live.simple_url}")
    _, found = findings(cli)
    f = having(found, "mirror", "TLS to 127.0.0.1 failed")
    assert f["level"] == "warn" and https in f["message"]


def test_pip_config_checker(cli_env: CliEnv) -> None:
    from pip_91n.cli.doctor import check_pip_config

    cli_env.pip_conf.parent.mkdir(parents=True)
    cli_env.pip_conf.write_text("[install]\ntrusted_host = a.example b.example\n")
    found = check_pip_config({}, [cli_env.pip_conf])
    assert [f.level for f in found] == ["warn"]
    assert "trusted-host = a.example b.example" in found[0].message
    assert check_pip_config({}, [])[0].level == "ok"
    assert check_pip_config({"PIP_TRUSTED_HOST": "x.example"}, [])[0].level == "warn"


def test_pip_config_checker_names_the_line_past_odd_keys(cli_env: CliEnv) -> None:
    from pip_91n.cli.doctor import check_pip_config

    cli_env.pip_conf.parent.mkdir(parents=True)
    cli_env.pip_conf.write_text("[global]\nfoo(+ = 1\ntrusted_host = a.example\n")
    found = check_pip_config({}, [cli_env.pip_conf])
    assert [f.level for f in found] == ["warn"]
    assert found[0].message.startswith(f"{cli_env.pip_conf}:3: trusted-host")


def test_unclear_disable_value(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_DISABLE", "maybe")
    _, found = findings(cli, "--offline")
    f = having(found, "hook", "PIP_91N_DISABLE='maybe' is neither on nor off")
    assert f["level"] == "warn" and "PIP_91N_DISABLE=1" in f["fix"]
    monkeypatch.setenv("PIP_91N_DISABLE", "off")
    _, found = findings(cli, "--offline")
    assert not [f for f in found if "PIP_91N_DISABLE" in f["message"]]


@pytest.mark.parametrize(("env", "level", "needle"), [
    ({}, "ok", "pypi.org settles disagreements"),  # the auto chain
    ({"PIP_91N_MIRRORS": "tuna,aliyun"}, "ok", "a 1:1 disagreement stops that file"),
    ({"PIP_91N_MIRRORS": "tuna,bfsu"}, "warn", "one operator only"),  # BFSU is run by TUNA
    ({"PIP_91N_MIRRORS": "tuna", "PIP_91N_VERIFY": "strict"}, "warn", "refuses every file"),
    ({"PIP_91N_VERIFY": "off"}, "warn", "verify = off (PIP_91N_VERIFY)"),
])
def test_the_verification_policy_and_what_the_chain_makes_of_it(
    env: dict[str, str], level: str, needle: str, cli: Runner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _, found = findings(cli, "--offline")
    assert having(found, "verify", needle)["level"] == level
