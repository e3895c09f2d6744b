"""``pip-91n serve`` as a newcomer meets it: wrong options, a busy port, a public address,
the extra not installed, SIGTERM; and the hook stays light."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.venvs import REPO
from tests.serve.conftest import ServeFactory


def _cli(sealed: dict[str, str], *args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    script = code or "import sys; from pip_91n.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=60, env={**sealed, "PYTHONPATH": str(REPO)},
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "says"), [
    (["--port", "70000"], "--port 70000"),
    (["--port", "-1"], "--port -1"),
    (["--port", "http"], "invalid int value"),
    (["--max-cache", "lots"], "--max-cache"),
    (["--max-cache", "-5G"], "--max-cache"),
    (["--host", ""], "--host"),
    (["--host", "http://0.0.0.0"], "--host"),
    (["--bogus"], "unrecognized arguments"),
])
def test_wrong_options_are_usage_errors(sealed_env: dict[str, str], args: list[str],
                                        says: str) -> None:
    r = _cli(sealed_env, "serve", *args)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_a_busy_port_and_an_unknown_host(sealed_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _cli(sealed_env, "serve", "--port", str(port), "--cache-dir", str(tmp_path))
    assert r.returncode == 4 and "--port" in r.stderr and "Traceback" not in r.stderr
    r = _cli(sealed_env, "serve", "--host", "no-such-host.invalid", "--cache-dir",
             str(tmp_path))
    assert r.returncode == 4 and "cannot listen on no-such-host.invalid" in r.stderr


def test_a_cache_dir_that_cannot_be_made(sealed_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    r = _cli(sealed_env, "serve", "--cache-dir", str(tmp_path / "file" / "sub"))
    assert r.returncode == 4 and "Traceback" not in r.stderr


def test_without_the_extra(sealed_env: dict[str, str]) -> None:
    code = ("import sys; sys.modules['uvicorn'] = None; from pip_91n.cli import main; "
            "sys.exit(main(['serve']))")
    r = _cli(sealed_env, code=code)
    assert r.returncode == 1 and "pip install 'pip-91n[serve]'" in r.stderr


def test_the_hook_and_the_cli_do_not_load_the_server_stack(sealed_env: dict[str, str]
                                                           ) -> None:
    code = ("import sys, pip_91n, pip_91n._startup, pip_91n.cli.parser, pip_91n.cli.serve, "
            "pip_91n.cli.env; from pip_91n.cli import main; main(['--help']); "
            "heavy = [m for m in ('uvicorn', 'starlette', 'fastapi', 'anyio') if m in "
            "sys.modules]; assert not heavy, heavy")
    r = _cli(sealed_env, code=code)
    assert r.returncode == 0, r.stderr


def test_listening_beyond_loopback_warns_once(serve: ServeFactory, mirrors, dep_tree) -> None:
    served = serve(mirrors(dep_tree, 1), args=["--host", "0.0.0.0"])
    warnings = [line for line in served.log().splitlines() if "not loopback" in line]
    assert len(warnings) == 1 and served.url.startswith("http://0.0.0.0:")
    assert served.stop() == 0
    assert "stopped" in served.log()
