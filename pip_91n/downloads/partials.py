"""Partial downloads kept in ``<PIP_91N_CACHE_DIR>/partials/``, keyed by the file's sha256.

One entry per file (``<sha256>`` below)::

    <sha256>.part      the bytes so far, written in place (sparse when fetched in segments)
    <sha256>.ranges    journal: one 16-byte record (start, end) per chunk written, appended
                       after the chunk itself, so it never claims bytes that are not there
    <sha256>.json      filename, size when known, and the validator (ETag / Last-Modified)
                       each source URL sent, for ``If-Range`` when resuming from that source
    <sha256>.complete  the verified file (the ``.part`` renamed once its sha256 matched),
                       there only until it is handed over (moved to its destination, or
                       read by a stream), or while another process waits for it
    <sha256>.lock      held by the one process that works on the entry
    <sha256>.wait-P-T  a process (pid P, thread T) waits for the lock: the holder then leaves
                       the verified file for it instead of moving it away

Unfinished entries survive the process: the next run replays the journal and resumes with
``Range``. Finished ones do not: nothing finished is kept twice.
``clean`` drops entries by age and total size, ``purge`` drops them all (the CLI's
``pip-91n cache purge``); both skip an entry whose lock is held.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pip_91n.downloads.segments import RangeSet
from pip_91n.filelock import FileLock
from pip_91n.settings.values import default_cache_dir

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "CleanReport",
    "Journal",
    "PartialMeta",
    "PartialStore",
]

DEFAULT_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_MAX_BYTES = 8 * 1024**3
_RECORD = struct.Struct("<QQ")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_SUFFIXES = (".part", ".ranges", ".json", ".complete", ".lock")
_WAIT_MAX_AGE = 24 * 3600.0


@dataclass
class PartialMeta:
    """The ``<sha256>.json`` of an entry."""

    sha256: str
    filename: str = ""
    size: int | None = None
    validators: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "sha256": self.sha256,
            "filename": self.filename,
            "size": self.size,
            "validators": dict(self.validators),
        }

    @classmethod
    def from_json(cls, sha256: str, data: Any) -> PartialMeta | None:
        if not isinstance(data, dict) or data.get("sha256") != sha256:
            return None
        size = data.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            return None
        vals = data.get("validators")
        validators = (
            {str(k): str(v) for k, v in vals.items()} if isinstance(vals, dict) else {}
        )
        return cls(sha256, str(data.get("filename", "")), size, validators)


class Journal:
    """Append-only record of the byte ranges written to a ``.part`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(path, flags, 0o644)

    def record(self, start: int, end: int) -> None:
        if self._fd is not None and end > start:
            os.write(self._fd, _RECORD.pack(start, end))

    def reset(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @staticmethod
    def replay(path: Path, limit: int | None = None) -> RangeSet:
        """The ranges the journal at ``path`` vouches for (a torn last record is ignored),
        clipped to ``limit`` bytes when given."""
        done = RangeSet()
        try:
            data = path.read_bytes()
        except OSError:
            return done
        usable = len(data) - len(data) % _RECORD.size
        for start, end in _RECORD.iter_unpack(data[:usable]):
            done.add(start, end)
        return done if limit is None else done.clip(limit)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this host; a mark of another host's process lives
    until it is a day old)."""
    if pid == os.getpid() or sys.platform == "win32":  # Windows: signal 0 is CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class CleanReport(NamedTuple):
    removed: tuple[str, ...]  # sha256 of each entry removed
    freed_bytes: int
    kept: int


class PartialStore:
    """The ``partials`` directory of one cache dir."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        base = default_cache_dir() if root is None else Path(root)
        self.root = base / "partials"

    def path(self, sha256: str, suffix: str) -> Path:
        return self.root / f"{sha256}{suffix}"

    def lock(self, sha256: str) -> FileLock:
        return FileLock(self.path(sha256, ".lock"))

    def load_meta(self, sha256: str) -> PartialMeta | None:
        try:
            data = json.loads(self.path(sha256, ".json").read_bytes())
        except (OSError, ValueError):
            return None
        return PartialMeta.from_json(sha256, data)

    def save_meta(self, meta: PartialMeta) -> None:
        path = self.path(meta.sha256, ".json")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta.to_json(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def done_ranges(self, sha256: str, size: int | None) -> RangeSet:
        """What the journal vouches for, limited to what the ``.part`` file really holds."""
        try:
            on_disk = self.path(sha256, ".part").stat().st_size
        except OSError:
            return RangeSet()
        limit = on_disk if size is None else min(size, on_disk)
        return Journal.replay(self.path(sha256, ".ranges"), limit)

    # -- waiters ---------------------------------------------------------------------------
    def _wait_marker(self, sha256: str) -> Path:
        import threading

        return self.path(sha256, f".wait-{os.getpid()}-{threading.get_ident()}")

    def add_waiter(self, sha256: str) -> None:
        """Say that this thread waits for the entry's lock (it wants the verified file)."""
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
            self._wait_marker(sha256).touch()

    def remove_waiter(self, sha256: str) -> None:
        with contextlib.suppress(OSError):
            self._wait_marker(sha256).unlink()

    def has_waiters(self, sha256: str) -> bool:
        """Whether another live process or thread waits for the entry (stale marks of dead
        processes are removed)."""
        mine = self._wait_marker(sha256).name
        now = time.time()
        for marker in self.root.glob(f"{sha256}.wait-*"):
            if marker.name == mine:
                continue
            try:
                pid = int(marker.name.split("-")[1])
                fresh = now - marker.stat().st_mtime < _WAIT_MAX_AGE
            except (ValueError, IndexError, OSError):
                continue
            if fresh and _alive(pid):
                return True
            with contextlib.suppress(OSError):
                marker.unlink()
        return False

    def discard(self, sha256: str, *, keep_complete: bool = False) -> None:
        """Delete the entry's data (the caller holds its lock, so the lock file stays);
        ``keep_complete``: all but the verified file and its ``.json`` (its name)."""
        for suffix in (".part", ".ranges") + (() if keep_complete else (".json", ".complete")):
            with contextlib.suppress(FileNotFoundError):
                self.path(sha256, suffix).unlink()

    # -- housekeeping ------------------------------------------------------------------------
    def _entries(self) -> dict[str, tuple[float, int]]:
        """sha256 -> (newest mtime, bytes on disk) of every entry."""
        out: dict[str, tuple[float, int]] = {}
        try:
            names = os.listdir(self.root)
        except OSError:
            return out
        for name in names:
            sha, dot, _ = name.partition(".")
            if not dot or not _SHA_RE.match(sha):
                continue
            try:
                st = os.stat(self.root / name)
            except OSError:
                continue
            used = getattr(st, "st_blocks", 0) * 512 or st.st_size
            mtime, size = out.get(sha, (0.0, 0))
            out[sha] = (max(mtime, st.st_mtime), size + used)
        return out

    def _remove_entry(self, sha256: str) -> int | None:
        """Remove one entry unless its lock is held; bytes freed, or None when in use."""
        lock = self.lock(sha256)
        if not lock.try_acquire():
            return None
        freed = 0
        try:
            for suffix in _SUFFIXES:
                p = self.path(sha256, suffix)
                with contextlib.suppress(OSError):
                    st = p.stat()
                    p.unlink()
                    freed += getattr(st, "st_blocks", 0) * 512 or st.st_size
        finally:
            lock.release()
        # stray temporaries of a crashed save_meta, and marks of waiters long gone
        for p in [*self.root.glob(f"{sha256}.json.*.tmp"), *self.root.glob(f"{sha256}.wait-*")]:
            with contextlib.suppress(OSError):
                p.unlink()
        return freed

    def clean(
        self,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        now: float | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> CleanReport:
        """Drop entries untouched for ``max_age`` seconds, then the oldest until the rest fit
        in ``max_bytes``. Entries in use by any process (and those in ``keep``) stay."""
        now = time.time() if now is None else now
        entries = self._entries()
        removed: list[str] = []
        freed = 0
        total = sum(size for _, size in entries.values())
        for sha, (mtime, size) in sorted(entries.items(), key=lambda kv: kv[1][0]):
            if sha in keep:
                continue
            if now - mtime <= max_age and total <= max_bytes:
                continue
            got = self._remove_entry(sha)
            if got is not None:
                removed.append(sha)
                freed += got
                total -= size
        return CleanReport(tuple(removed), freed, len(entries) - len(removed))

    def purge(self) -> CleanReport:
        """Remove every entry not in use right now (``pip-91n purge``)."""
        entries = self._entries()
        removed: list[str] = []
        freed = 0
        for sha in entries:
            got = self._remove_entry(sha)
            if got is not None:
                removed.append(sha)
                freed += got
        return CleanReport(tuple(removed), freed, len(entries) - len(removed))

    def usage(self) -> dict[str, int]:
        """sha256 -> bytes on disk, for ``pip-91n status``."""
        return {sha: size for sha, (_, size) in self._entries().items()}
