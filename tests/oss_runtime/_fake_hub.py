"""A small Hugging Face hub on 127.0.0.1 for resolution tests (threaded, bounded, self-stopping).

Serves, for the repos it holds (``{repo_id: {rfilename: bytes}}``):

* ``GET /api/models/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename", "size",
  "blobId", "lfs": {"sha256", "size"}?}]}`` (``*.safetensors`` are LFS files, as on the hub);
* ``GET|HEAD /{repo}/resolve/{rev}/{file}``: the bytes with ``ETag`` (the sha256 for LFS files,
  the git blob id otherwise), ``X-Repo-Commit``, ``Content-Length``, ``Accept-Ranges`` and
  ``Range`` (206) support.

Faults: ``truncate={file: n}`` cuts the first response for that file after ``n`` body bytes;
``broken={file: n}`` does the same and then answers 503 for that file (a run that must fail).
Every request is logged as ``(method, path, range_header)``. The server stops itself after
``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def dead_endpoint() -> str:
    """A 127.0.0.1 URL on which nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], *, truncate: dict[str, int] | None = None,
                 broken: dict[str, int] | None = None, lfs_in_listing: bool = True,
                 lifetime: float = 120.0) -> None:
        self.repos = repos
        self.lfs_in_listing = lfs_in_listing
        self.truncate = {**(truncate or {}), **(broken or {})}
        self.broken = set(broken or {})
        self.log: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, head=True)

            def do_GET(self) -> None:
                hub._serve(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> FakeHub:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def paths(self, method: str = "GET") -> list[str]:
        return [p for m, p, _ in self.log if m == method]

    def _sibling(self, name: str, data: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
        if name.endswith(".safetensors"):
            entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": 134}
        return entry

    def _serve(self, req: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        with self._lock:
            self.log.append((req.command, path, req.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            repo = "/".join(parts[2:4])
            files = self.repos.get(repo)
            if files is None:
                return self._send(req, 404, b'{"error":"Repository not found"}', head=head)
            siblings = [self._sibling(n, d) for n, d in files.items()]
            if not self.lfs_in_listing:
                siblings = [{k: v for k, v in sib.items() if k != "lfs"} for sib in siblings]
            body = json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode()
            return self._send(req, 200, body, {"Content-Type": "application/json"}, head=head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
            data = self.repos.get(repo, {}).get(name)
            if data is None:
                return self._send(req, 404, b"Entry not found", head=head)
            sib = self._sibling(name, data)
            headers = {"ETag": f'"{(sib.get("lfs") or {}).get("sha256") or sib["blobId"]}"',
                       "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
            status, start = 200, 0
            rng = req.headers.get("Range")
            if rng and rng.startswith("bytes="):
                first, _, last = rng[6:].split(",")[0].partition("-")
                start = int(first or 0)
                end = int(last) if last else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start : end + 1], 206
            cut = None
            with self._lock:
                if not head and name in self.truncate:
                    cut = self.truncate.pop(name)
                elif name in self.broken:
                    return self._send(req, 503, b"unavailable", head=head)
            return self._send(req, status, data, headers, head=head, cut=cut)
        self._send(req, 404, b"not found", head=head)

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: dict[str, str] | None = None, *, head: bool, cut: int | None = None) -> None:
        req.send_response(status)
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        if cut is not None:
            req.send_header("Connection", "close")
        req.end_headers()
        if head:
            return
        try:
            req.wfile.write(body if cut is None else body[:cut])
            req.wfile.flush()
        except OSError:
            pass
        if cut is not None:
            req.close_connection = True


def no_internet_endpoint(monkeypatch: Any) -> str:
    """Point the last resort (https://huggingface.co) at a dead local port; return that URL."""
    import oss_runtime.resolve as resolve

    dead = dead_endpoint()
    monkeypatch.setattr(resolve, "DEFAULT_ENDPOINT", dead)
    return dead
