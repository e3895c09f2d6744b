"""`use` and `config show|get|set|unset`: sources, validation, never clobbering, atomic writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pip_91n.errors import ConfigError
from pip_91n.settings.config import update_config
from pip_91n.settings.configfile import HEADER, edit_text

from .conftest import CliEnv, Runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


def test_use_writes_user_config_only(cli: Runner, cli_env: CliEnv) -> None:
    cli_env.pip_conf.parent.mkdir(parents=True)
    cli_env.pip_conf.write_text("[global]\ntimeout = 60\n")
    before = cli_env.pip_conf.read_bytes()
    r = cli("use", "tuna", "aliyun,pypi")
    assert r.code == 0, r.err
    assert read(cli_env.config) == {"mirrors": ["tuna", "aliyun", "pypi"]}
    assert cli_env.pip_conf.read_bytes() == before
    shown = cli("config", "show", "--json").json
    row = next(s for s in shown["settings"] if s["key"] == "mirrors")
    assert row["value"] == ["tuna", "aliyun", "pypi"]
    assert row["kind"] == "user" and row["source"] == f"{cli_env.config}:3"


def test_use_keeps_unrelated_keys_and_comments(cli: Runner, cli_env: CliEnv) -> None:
    cli_env.config.parent.mkdir(parents=True)
    original = ('# my settings\ntimeout = 7  # slow link\nmirrors = [\n  "tuna",\n  "pypi",\n]\n'
                'allow_http = ["10.0.0.5"]\n')
    cli_env.config.write_text(original)
    assert cli("use", "http://10.0.0.5/simple/", "pypi").code == 0
    text = cli_env.config.read_text()
    assert text.startswith("# my settings\ntimeout = 7  # slow link\n")
    assert read(cli_env.config) == {"timeout": 7, "allow_http": ["10.0.0.5"],
                                    "mirrors": ["http://10.0.0.5/simple/", "pypi"]}
    assert cli("use", "auto").code == 0
    assert read(cli_env.config)["mirrors"] == "auto"


@pytest.mark.parametrize(("argv", "needle"), [
    (["use", "nosuchmirror"], "unknown mirror 'nosuchmirror'"),
    (["use", "http://mirror.example/simple/"], "plain http"),
    (["use", "auto", "tuna"], "auto cannot be combined"),
    (["use", "ftp://x/simple/"], "not a simple-index URL"),
    (["config", "set", "timeout", "-1"], "timeout must be"),
    (["config", "set", "timeout", "abc"], "timeout must be a number"),
    (["config", "set", "colour", "red"], "unknown setting 'colour'"),
])
def test_invalid_values_are_rejected_and_nothing_written(
        cli: Runner, cli_env: CliEnv, argv: list[str], needle: str) -> None:
    cli_env.config.parent.mkdir(parents=True)
    cli_env.config.write_text("timeout = 3\n")
    r = cli(*argv)
    assert r.code == 2, r
    assert needle in r.err and "Traceback" not in r.err
    assert cli_env.config.read_text() == "timeout = 3\n"


def test_config_set_get_unset_and_precedence(cli: Runner, cli_env: CliEnv,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("config", "set", "hedge-delay", "0.5").code == 0
    assert cli("config", "set", "PIP_91N_ALLOW_HTTP", "10.0.0.5", "10.0.0.6").code == 0
    assert read(cli_env.config) == {"hedge_delay": 0.5, "allow_http": ["10.0.0.5", "10.0.0.6"]}
    assert cli("config", "get", "hedge_delay").out == "0.5\n"
    got = cli("config", "get", "allow_http", "--json").json
    assert got["value"] == ["10.0.0.5", "10.0.0.6"] and got["kind"] == "user"
    # site config is below the user file; the environment is above both
    cli_env.site_config.parent.mkdir(parents=True)
    cli_env.site_config.write_text('timeout = 9\nhedge_delay = 2\n')
    rows = {s["key"]: s for s in cli("config", "show", "--json").json["settings"]}
    assert rows["timeout"]["value"] == 9 and rows["timeout"]["kind"] == "site"
    assert rows["hedge_delay"]["value"] == 0.5 and rows["hedge_delay"]["kind"] == "user"
    monkeypatch.setenv("PIP_91N_HEDGE_DELAY", "0")
    r = cli("config", "set", "hedge_delay", "1")
    assert "PIP_91N_HEDGE_DELAY is set in the environment" in r.err
    got = cli("config", "get", "hedge_delay", "--json").json
    assert got["value"] == 0 and got["source"] == "PIP_91N_HEDGE_DELAY"
    assert cli("config", "unset", "hedge_delay").code == 0
    assert "hedge_delay" not in read(cli_env.config)
    assert cli("config", "unset", "hedge_delay").code == 0  # idempotent


def test_pip91n_config_variable_names_the_file(cli: Runner, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "pip-91n.toml"
    monkeypatch.setenv("PIP_91N_CONFIG", str(target))
    assert cli("use", "sjtu").code == 0
    assert read(target) == {"mirrors": ["sjtu"]}
    assert cli("config", "get", "mirrors").out == "sjtu\n"


def test_use_check_refuses_dead_mirrors(cli: Runner, cli_env: CliEnv, mirror_factory, dep_tree) -> None:  # type: ignore[no-untyped-def]
    dead = mirror_factory.refused()
    r = cli("use", "--check", dead.simple_url)
    assert r.code == 1 and "nothing written" in r.err
    assert not cli_env.config.exists()
    live = mirror_factory(dep_tree)
    assert cli("use", "--check", live.simple_url).code == 0


def test_edit_text_only_touches_its_key() -> None:
    text = 'a_comment = 1\n# keep\nmirrors = "tuna"\nlog = "-"\n'
    # the unknown key is left alone by the editor (validation is separate)
    assert edit_text(text, "mirrors", ["pypi"]) == ('a_comment = 1\n# keep\nmirrors = ["pypi"]\n'
                                                   'log = "-"\n')
    assert edit_text(text, "log", None) == 'a_comment = 1\n# keep\nmirrors = "tuna"\n'
    assert edit_text("", "timeout", 2.5) == HEADER + "timeout = 2.5\n"
    assert edit_text('x = "a\\"b"\n', "log", 'C:\\logs "x"') == (
        'x = "a\\"b"\nlog = "C:\\\\logs \\"x\\""\n')


def test_update_is_atomic_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("timeout = 3\n")
    os.chmod(path, 0o640)
    update_config(path, {"log": "-"})
    assert read(path) == {"timeout": 3, "log": "-"}
    assert path.stat().st_mode & 0o777 == 0o640
    with pytest.raises(ConfigError):
        update_config(path, {"mirrors": ["nope"]})
    assert read(path) == {"timeout": 3, "log": "-"}
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temp files left


def test_broken_existing_file_is_reported_not_rewritten(cli: Runner, cli_env: CliEnv) -> None:
    cli_env.config.parent.mkdir(parents=True)
    cli_env.config.write_text('timeout = 3\nmirrors = ["tuna"\n')
    r = cli("use", "pypi")
    assert r.code == 3 and str(cli_env.config) in r.err
    assert cli_env.config.read_text() == 'timeout = 3\nmirrors = ["tuna"\n'
    cli_env.config.write_text('mirror = "tuna"\n')
    r = cli("config", "set", "timeout", "2")
    assert r.code == 3 and f"{cli_env.config}:1: unknown setting 'mirror'" in r.err


def test_use_without_pypi_gives_a_hint(cli: Runner) -> None:
    r = cli("use", "tuna", "aliyun")
    assert r.code == 0 and "pypi is not in the chain" in r.err
    assert "pypi is not in" not in cli("use", "tuna", "pypi").err
