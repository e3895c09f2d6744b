"""Helpers for the pip-integration tests: a chain environment, a header-recording proxy."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.harness import Venv


def chain_env(sealed_env: dict[str, str], mirrors: Sequence[object], **extra: str) -> dict[str, str]:
    """``sealed_env`` with the chain set to ``mirrors`` (their simple URLs, in order), a short
    timeout and the request log in a file next to the cache."""
    log = Path(sealed_env["PIP_91N_CACHE_DIR"]).parent / "pip-91n.log"
    env = {
        **sealed_env,
        "PIP_91N_MIRRORS": ",".join(m.simple_url for m in mirrors),  # type: ignore[attr-defined]
        "PIP_91N_TIMEOUT": "2",
        "PIP_91N_LOG": str(log),
    }
    env.update(extra)
    return env


def log_lines(env: dict[str, str]) -> list[str]:
    path = Path(env["PIP_91N_LOG"])
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def installed(target: Path) -> dict[str, str]:
    """name -> version of the distributions ``pip install --target`` put in ``target``."""
    out = {}
    for d in target.glob("*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].rpartition("-")
        out[name.lower().replace("_", "-")] = version
    return out


def pip_install(venv: Venv, env: dict[str, str], target: Path, *args: str,
                check: bool = True, timeout: float = 120) -> tuple[int, str, str]:
    """``pip install --target`` (the shared venv stays unchanged) without pip's cache."""
    proc = venv.pip("install", "--no-cache-dir", "--disable-pip-version-check", "--target",
                    str(target), *args, env=env, check=False, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"pip failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.returncode, proc.stdout, proc.stderr


class RecordingProxy:
    """A reverse proxy in front of ``upstream`` that records each request's path and
    headers (to prove which credentials reached which host). With ``upstream`` None it is a
    forward HTTP proxy (``http_proxy``, ``pip --proxy``): it records the absolute URLs."""

    def __init__(self, upstream: str | None) -> None:
        self.upstream = (upstream or "").rstrip("/")
        self.seen: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                target = self.path if self.path.startswith("http://") else (
                    owner.upstream + self.path)
                req = urllib.request.Request(target, headers={
                    k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")})
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(req, timeout=10) as resp:
                        body, status, headers = resp.read(), resp.status, resp.headers
                except urllib.error.HTTPError as exc:
                    body, status, headers = exc.read(), exc.code, exc.headers
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.simple_url = self.url + "/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()




BACKEND = '''
"""A tiny PEP 517 backend: builds a pure-Python wheel from pyproject's [project]."""
import base64, hashlib, os, tomllib, zipfile


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"BUILT = True\\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: mini-backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    lines = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\\n".join(lines) + "\\n").encode()
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return wheel
'''


def make_sdist_needing_backend(directory: Path, name: str = "needs-build",
                               version: str = "1.0") -> Path:
    """An sdist whose build needs ``mini-backend`` (a wheel the index must serve)."""
    import io
    import tarfile

    directory.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    base = f"{dist}-{version}"
    members = {
        "pyproject.toml": (f'[build-system]\nrequires = ["mini-backend"]\n'
                           f'build-backend = "mini_backend.backend"\n\n'
                           f'[project]\nname = "{name}"\nversion = "{version}"\n'),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/__init__.py": "BUILT = True\n",
    }
    path = directory / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in members.items():
            data = text.encode()
            ti = tarfile.TarInfo(f"{base}/{rel}")
            ti.size, ti.mtime = len(data), 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
    return path
