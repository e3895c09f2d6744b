"""What one run of the chain has learned: files (the sha256 each mirror's page named, where
each mirror keeps them, and the hash the sources' vote settled on) and the newest serial seen
of each project.

pip strips the ``#sha256=`` fragment before it requests a file, so the hashes named on the
pages the chain served are remembered here, keyed by filename, together with each mirror's
own URL for the file. Serials feed the staleness rule (``pip_91n.index.staleness``): a page
older than one already served is not served again. Thread-safe; lives as long as one
``Failover`` (one pip run).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from pip_91n.index.pages import ProjectPage
from pip_91n.index.staleness import newer_serial

__all__ = ["KnownFile", "KnownFiles", "Serials"]

log = logging.getLogger("pip_91n")


@dataclass
class KnownFile:
    filename: str
    sha256: str | None = None
    metadata_sha256: str | None = None
    urls: dict[str, str] = field(default_factory=dict)  # mirror name -> URL (no fragment)
    conflict: bool = False  # mirrors named different hashes, and no vote has settled it
    size: int | None = None  # bytes, as the first page that named a size said


@dataclass
class _Entry:
    first: str | None = None  # the first sha256 a page named
    decided: str | None = None  # the sha256 the sources' vote settled on
    metadata_sha256: str | None = None
    size: int | None = None
    listed: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # mirror -> sha, URL


class KnownFiles:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, _Entry] = {}
        # (mirror, project) -> the files its page named, and when it was read (monotonic)
        self._pages: dict[tuple[str, str], tuple[tuple[str, ...], float]] = {}

    def learn(self, mirror: str, page: ProjectPage, project: str | None = None) -> None:
        """Remember every file of ``page`` (of ``project``) as served by ``mirror``.

        Every mirror's hash is kept (the sources' vote reads them). Until a vote settles a
        filename, the first hash seen is the expected one, and a mirror naming another is a
        conflict whose URL is never used for it (never mix two different files).
        """
        with self._lock:
            if project is not None:
                self._pages[(mirror, project)] = (tuple(f.filename for f in page.files),
                                                  time.monotonic())
            for f in page.files:
                entry = self._files.setdefault(f.filename, _Entry())
                first = entry.first
                if (f.sha256 and first and f.sha256 != first and not entry.decided
                        and all(h in (None, first) for h, _ in entry.listed.values())):
                    log.warning("pip-91n: %s lists %s with sha256 %s, another mirror with "
                                "%s; keeping the first until the sources vote", mirror,
                                f.filename, f.sha256[:12], first[:12])
                entry.first = entry.first or f.sha256
                entry.metadata_sha256 = entry.metadata_sha256 or f.metadata_sha256
                if entry.size is None:
                    entry.size = f.size
                entry.listed.setdefault(mirror, (f.sha256, f.url))

    def decide(self, filename: str, sha256: str) -> None:
        """The sources' vote settled ``filename`` on ``sha256``: that hash is expected from
        now on, and only the URLs of mirrors that list it are used."""
        with self._lock:
            entry = self._files.setdefault(filename, _Entry(first=sha256))
            entry.decided = sha256

    def get(self, filename: str) -> KnownFile | None:
        with self._lock:
            e = self._files.get(filename)
            if e is None:
                return None
            sha = e.decided or e.first
            hashes = {h for h, _ in e.listed.values() if h}
            urls = {m: url for m, (h, url) in e.listed.items() if h in (None, sha)}
            return KnownFile(filename, sha, e.metadata_sha256, urls,
                             e.decided is None and len(hashes) > 1, e.size)

    def listings(self, filename: str) -> dict[str, str]:
        """Mirror -> the sha256 its page named for ``filename`` (mirrors that named none are
        left out)."""
        with self._lock:
            e = self._files.get(filename)
            return {} if e is None else {m: h for m, (h, _) in e.listed.items() if h}

    def page_files(self, mirror: str, project: str) -> tuple[str, ...] | None:
        """The filenames on ``mirror``'s page of ``project``, or None when it was not read."""
        with self._lock:
            known = self._pages.get((mirror, project))
            return None if known is None else known[0]

    def page_read(self, mirror: str, project: str, within: float | None = None) -> bool:
        """Whether ``mirror``'s page of ``project`` was already read (and learned) this run,
        and, with ``within``, less than that many seconds ago."""
        with self._lock:
            known = self._pages.get((mirror, project))
        return known is not None and (within is None or time.monotonic() - known[1] < within)


class Serials:
    """The newest serial served of each project this run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def seen(self, project: str) -> int | None:
        with self._lock:
            return self._seen.get(project)

    def accept(self, project: str, serial: int | None) -> None:
        """Remember that a page of ``project`` with ``serial`` was served."""
        with self._lock:
            newest = newer_serial(self._seen.get(project), serial)
            if newest is not None:
                self._seen[project] = newest
