"""Parser, --help of every command, exit codes, error messages and import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pip_91n import __version__
from pip_91n.cli import main
from pip_91n.cli.parser import COMMANDS

from .conftest import REPO, Runner, subprocess_env

SUBCOMMANDS = [*COMMANDS, "config show", "config get", "config set", "config unset",
               "cache list", "cache purge"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pip-91n {__version__}"


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pip-91n " + command)
    assert "--json" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "exit codes" in out


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_setting_is_one_message_exit_3(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_TIMEOUT", "soon")
    r = cli("status", "--no-pip")
    assert r.code == 3
    assert r.err.startswith("pip-91n: error: PIP_91N_TIMEOUT")
    assert "Traceback" not in r.err and r.out == ""


def test_broken_config_file_names_file_and_line(cli: Runner, cli_env) -> None:  # type: ignore[no-untyped-def]
    cli_env.config.parent.mkdir(parents=True)
    cli_env.config.write_text('mirrors = ["tuna"]\ntimeout = "x\n')
    r = cli("config", "show")
    assert r.code == 3
    assert f"{cli_env.config}:2" in r.err and "Traceback" not in r.err


def test_unwritable_config_is_exit_4(cli: Runner, cli_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    blocker = cli_env.home / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("PIP_91N_CONFIG", str(blocker / "config.toml"))
    r = cli("use", "tuna")
    assert r.code == 4
    assert r.err.startswith("pip-91n: error:") and "Traceback" not in r.err


def test_python_m_and_version_import_nothing_heavy() -> None:
    code = ("import sys; from pip_91n.cli import main; rc = main(['--version']); "
            "heavy = [m for m in ('rich', 'httpx', 'pip', 'pip_91n.settings.config') if m in sys.modules]; "
            "print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd=REPO, check=True).stdout
    assert out.strip().endswith("0 []")
    r = subprocess.run([sys.executable, "-m", "pip_91n", "--version"], capture_output=True,
                       text=True, env=subprocess_env(), cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == f"pip-91n {__version__}"


def test_plain_output_when_not_a_tty_and_rich_when_forced(cli: Runner) -> None:
    plain = cli("config", "show")
    assert plain.code == 0 and "\x1b[" not in plain.out
    assert "mirrors" in plain.out and "built-in default" in plain.out
    forced = cli("config", "show", "--color", "always")
    assert forced.code == 0 and "\x1b[" in forced.out


def test_without_rich_a_terminal_gets_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from pip_91n.cli import output as cli_output

    assert cli_output.Output(color="always", stream=io.StringIO()).rich  # rich is installed
    monkeypatch.setattr(cli_output, "_rich_installed", lambda: False)
    out = cli_output.Output(color="always", stream=io.StringIO())
    assert not out.rich
    out.table(["a", "b"], [["1", "2"]])
    assert "\x1b[" not in out.stream.getvalue() and "1" in out.stream.getvalue()


def test_json_option_before_or_after_the_command(cli: Runner) -> None:
    assert cli("--json", "config", "show").json["settings"]
    assert cli("config", "show", "--json").json["settings"]
