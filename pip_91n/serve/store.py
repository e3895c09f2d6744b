"""What the local index keeps on disk, under its cache dir:

- ``files/<aa>/<sha256>``: verified files (and PEP 658 metadata files), named by their
  sha256 and nothing else, at most ``max_bytes`` together, least recently used first out;
- ``tmp/``: files being downloaded (a download becomes a cache entry by one rename);
- ``pages/<project>.json``: the last good page of each project, and ``pages/root.*``: the
  last good ``/simple/`` root, served when every mirror is down.

Nothing here is ever listed to a client: entries are found by sha256 or project name only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pip_91n._statefile import write_json_atomic
from pip_91n.serve.simple import Page

__all__ = ["FileCache", "PageStore", "SavedPage"]

log = logging.getLogger("pip_91n")

#: An entry's mtime is refreshed at most this often (it orders the LRU across restarts).
_TOUCH_INTERVAL = 60.0


class FileCache:
    """Verified files by sha256, bounded by ``max_bytes`` (LRU). Thread-safe."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.files = root / "files"
        self.tmp = root / "tmp"
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, int] = OrderedDict()  # sha256 -> size, oldest first
        self._touched: dict[str, float] = {}
        self.total = 0
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # downloads a previous run left unfinished
            with contextlib.suppress(OSError):
                stale.unlink()
        found = []
        for path in self.files.glob("??/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((st.st_mtime, path.name, st.st_size))
        for _, sha, size in sorted(found):
            self._lru[sha] = size
            self.total += size
        self._evict()

    def path(self, sha256: str) -> Path:
        return self.files / sha256[:2] / sha256

    def open(self, sha256: str) -> tuple[int, int] | None:
        """(a read-only fd, size) of the cached file, marked as just used; None if absent.
        The fd stays valid even if the entry is evicted while it is being sent."""
        with self._lock:
            if sha256 not in self._lru:
                return None
            self._lru.move_to_end(sha256)
        try:
            fd = os.open(self.path(sha256), os.O_RDONLY)
        except OSError:
            with self._lock:
                self.total -= self._lru.pop(sha256, 0)
            return None
        size = os.fstat(fd).st_size
        now = time.time()
        if now - self._touched.get(sha256, 0.0) > _TOUCH_INTERVAL:
            self._touched[sha256] = now
            with contextlib.suppress(OSError):
                os.utime(fd)
        return fd, size

    def has(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._lru

    def size_of(self, sha256: str) -> int | None:
        with self._lock:
            return self._lru.get(sha256)

    def spool(self) -> tuple[Path, int]:
        """A new temporary file for a download: (path, fd opened for writing)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="dl-")
        return Path(name), fd

    def keep(self, tmp: Path, sha256: str) -> bool:
        """Make the verified ``tmp`` the entry of ``sha256`` (evicting the least recently
        used); False, and ``tmp`` removed, when it is larger than the whole cache."""
        size = tmp.stat().st_size
        if size > self.max_bytes:
            tmp.unlink(missing_ok=True)
            return False
        target = self.path(sha256)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
        with self._lock:
            self.total += size - self._lru.pop(sha256, 0)
            self._lru[sha256] = size
            self._evict()
        return True

    def put(self, sha256: str, data: bytes) -> None:
        """Keep a small verified file (PEP 658 metadata) given whole."""
        path, fd = self.spool()
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.keep(path, sha256)

    def _evict(self) -> None:
        while self.total > self.max_bytes and self._lru:
            sha, size = self._lru.popitem(last=False)
            self.total -= size
            self._touched.pop(sha, None)
            with contextlib.suppress(OSError):
                self.path(sha).unlink()
            log.info("pip-91n serve: evicted %s (%d bytes) from the cache", sha[:12], size)


class SavedPage:
    """A page kept on disk: the page, when it was fetched (``time.time()``), and from
    which mirror."""

    __slots__ = ("fetched", "mirror", "page")

    def __init__(self, page: Page, fetched: float, mirror: str) -> None:
        self.page, self.fetched, self.mirror = page, fetched, mirror


class PageStore:
    """The last good page of each project (and of the root), on disk."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pages"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, project: str) -> Path:
        return self.dir / f"{project}.json"

    def save(self, project: str, saved: SavedPage) -> None:
        data: dict[str, Any] = {"fetched": saved.fetched, "mirror": saved.mirror,
                                "page": saved.page.to_json()}
        try:
            write_json_atomic(self._path(project), data)
        except OSError as exc:
            log.warning("pip-91n serve: cannot keep the page of %s: %s", project, exc)

    def load(self, project: str) -> SavedPage | None:
        try:
            data = json.loads(self._path(project).read_text(encoding="utf-8"))
            return SavedPage(Page.from_json(data["page"]), float(data["fetched"]),
                             str(data["mirror"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def root_path(self) -> Path:
        return self.dir / "root.html"
