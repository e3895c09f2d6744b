"""Fixtures for ``pip-91n serve``: the real server (``python -m pip_91n serve --port 0``) in a
subprocess, in a sealed environment, over the harness's loopback mirrors.

Every server is stopped with SIGTERM at teardown (and must exit 0 within 15 s); its stdout
gives the URL, its stderr (the request log) is kept in a file for the tests to read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.harness.venvs import REPO

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

UV = Path(sys.executable).with_name("uv")


class Served:
    """One running server: ``url`` (its ``/simple/``), ``log()`` (stderr so far), ``stop()``."""

    def __init__(self, proc: subprocess.Popen[str], url: str, log_path: Path,
                 cache_dir: Path, env: dict[str, str]) -> None:
        self.proc, self.url, self.log_path, self.cache_dir = proc, url, log_path, cache_dir
        self.env = env
        self.base = url[: -len("/simple/")]

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, timeout: float = 5.0) -> str:
        """The log once ``pattern`` (a regular expression) is in it (a request's line is
        written as its response ends, after the client has it), or as it is at ``timeout``."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, text := self.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("the server did not stop within 15 s of SIGTERM") from None
        return self.proc.returncode


ServeFactory = Callable[..., Served]


def start_server(base: Path, sealed: dict[str, str], mirrors: Sequence[object], *,
                 args: Sequence[str] = (), env: dict[str, str] | None = None,
                 cache_dir: Path | None = None) -> Served:
    """Start ``pip-91n serve`` over ``mirrors`` (their simple URLs, in order)."""
    base.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or base / "serve-cache"
    full = {**sealed, "PYTHONPATH": str(REPO), "PIP_91N_TIMEOUT": "2",
            "PIP_91N_MIRRORS": ",".join(m.simple_url for m in mirrors)}  # type: ignore[attr-defined]
    full.update(env or {})
    log_path = base / f"serve-{time.monotonic_ns()}.log"
    err = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "pip_91n", "serve", "--port", "0", "--cache-dir", str(cache),
         *args], env=full, stdout=subprocess.PIPE, stderr=err, text=True,
        stdin=subprocess.DEVNULL, cwd=base)
    err.close()
    deadline = time.monotonic() + 30
    url = ""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line:
            url = line.strip()
            break
        time.sleep(0.05)
    if not url:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"the server did not start:\n{log_path.read_text()}")
    return Served(proc, url, log_path, cache, full)


@pytest.fixture
def serve(tmp_path: Path, sealed_env: dict[str, str]) -> Iterator[ServeFactory]:
    """``serve(mirrors, args=(), env=None, cache_dir=None) -> Served``; all stopped (SIGTERM,
    exit code 0) at teardown."""
    started: list[Served] = []

    def make(mirrors: Sequence[object], **kw: object) -> Served:
        served = start_server(tmp_path / f"serve{len(started)}", sealed_env, mirrors,
                              **kw)  # type: ignore[arg-type]
        started.append(served)
        return served

    yield make
    codes = [s.stop() for s in started]
    assert all(c == 0 for c in codes), f"servers exited with {codes}"


def uv_env(sealed: dict[str, str], base: Path) -> dict[str, str]:
    """The sealed environment for uv: its own cache and no config file of this machine."""
    return {**sealed, "UV_CACHE_DIR": str(base / "uv-cache"), "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}


def uv_install(base: Path, sealed: dict[str, str], index_url: str, *reqs: str,
               venv: str = "uv-venv", timeout: float = 120,
               extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``uv venv`` + ``uv pip install --index-url INDEX REQS`` into ``base/venv``."""
    env = uv_env(sealed, base)
    target = base / venv
    if not target.exists():
        subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(target)],
                       env=env, check=True, capture_output=True, timeout=60)
    return subprocess.run(
        [str(UV), "pip", "install", "--python", str(target / "bin" / "python"),
         "--index-url", index_url, *extra, *reqs],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
