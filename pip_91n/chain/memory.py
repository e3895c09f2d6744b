"""What one run of the chain has learned: files (their sha256 and where each mirror keeps
them) and the newest serial seen of each project.

pip strips the ``#sha256=`` fragment before it requests a file, so the hashes named on the
pages the chain served are remembered here, keyed by filename, together with each mirror's
own URL for the file. Serials feed the staleness rule (``pip_91n.index.staleness``): a page
older than one already served is not served again. Thread-safe; lives as long as one
``Failover`` (one pip run).
"""

from __future__ import annotations

import logging
import threading
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
    conflict: bool = False  # two mirrors named different hashes for this filename
    size: int | None = None  # bytes, as the first page that named a size said


class KnownFiles:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, KnownFile] = {}
        self._pages: set[tuple[str, str]] = set()  # (mirror, project) pages read this run

    def learn(self, mirror: str, page: ProjectPage, project: str | None = None) -> None:
        """Remember every file of ``page`` (of ``project``) as served by ``mirror``.

        The first hash seen for a filename is kept; a mirror naming a different one is noted
        as a conflict and its URL is not remembered (never mix two different files).
        """
        with self._lock:
            if project is not None:
                self._pages.add((mirror, project))
            for f in page.files:
                known = self._files.setdefault(f.filename, KnownFile(f.filename))
                if f.sha256 and known.sha256 and f.sha256 != known.sha256:
                    if not known.conflict:
                        log.warning("pip-91n: %s lists %s with sha256 %s, another mirror "
                                    "with %s; keeping the first", mirror, f.filename,
                                    f.sha256[:12], known.sha256[:12])
                    known.conflict = True
                    continue
                known.sha256 = known.sha256 or f.sha256
                known.metadata_sha256 = known.metadata_sha256 or f.metadata_sha256
                if known.size is None:
                    known.size = f.size
                known.urls.setdefault(mirror, f.url)

    def get(self, filename: str) -> KnownFile | None:
        with self._lock:
            k = self._files.get(filename)
            return None if k is None else KnownFile(
                k.filename, k.sha256, k.metadata_sha256, dict(k.urls), k.conflict, k.size)

    def page_read(self, mirror: str, project: str) -> bool:
        """Whether ``mirror``'s page of ``project`` was already read (and learned) this run."""
        with self._lock:
            return (mirror, project) in self._pages


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
