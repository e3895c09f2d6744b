"""`oss-runtime serve` as users run it: a subprocess on loopback, health, SIGTERM, the log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="serving needs torch")
pytest.importorskip("fastapi", reason="serving needs the serve extra")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from _oss_scripted import FINAL, write_scripted_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEY = "k-91n-CANARY-secret"


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {**os.environ, "OSS_RUNTIME_KERNEL": "0", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "oss_runtime", "serve", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environ)


def _port(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the server did not say where it listens")


@pytest.mark.slow
def test_serve_command_health_request_sigterm(tmp_path: Path) -> None:
    ck = write_scripted_checkpoint(tmp_path / "ck")
    proc = _start(str(ck), "--port", "0", "--dtype", "float32", "--quiet",
                  env={"OSS_RUNTIME_API_KEY": KEY})
    try:
        url = f"http://127.0.0.1:{_port(proc)}"
        first = httpx.get(f"{url}/health", timeout=10)  # torch is still importing: not ready
        assert first.status_code == 503 and first.json()["status"] == "loading"
        deadline = time.monotonic() + 90
        while httpx.get(f"{url}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None, "never became ready"
            time.sleep(0.2)
        with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as client:
            r = client.chat.completions.create(
                model="gpt-oss-20b", temperature=0,
                messages=[{"role": "user", "content": "say hello PROMPT-CANARY"}])
            assert r.choices[0].message.content == FINAL
            # a long stream in flight when SIGTERM comes: it ends, the server exits cleanly
            stream = client.chat.completions.create(
                model="gpt-oss-20b", temperature=0, stream=True, max_tokens=3000,
                messages=[{"role": "user", "content": "tell me a story forever"}])
            next(iter(stream))
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(openai.APIError):
                for _ in stream:
                    pass
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    lines = [line for line in err.splitlines() if "/v1/" in line or "/health" in line]
    assert any(re.search(r"POST /v1/chat/completions 200 prompt=\d+ completion=\d+ "
                         r"finish=stop \d+\.\d+s$", line) for line in lines), err
    assert "GET /health 503" in err and "oss-runtime serve: stopped" in err
    assert "PROMPT-CANARY" not in err and KEY not in err and "Traceback" not in err


def test_serve_command_errors(tmp_path: Path) -> None:
    proc = _start(str(tmp_path / "missing"), "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "no such directory" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    proc = _start(str(tmp_path / "empty"), "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "has no tokenizer" in err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        ck = write_scripted_checkpoint(tmp_path / "ck")
        proc = _start(str(ck), "--port", str(busy.getsockname()[1]))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "cannot listen on 127.0.0.1:" in err
        assert len(err.strip().splitlines()) == 1, err
    finally:
        busy.close()
    proc = _start(str(tmp_path / "ck"), "--max-queue", "-1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--max-queue must be at least 0" in err
