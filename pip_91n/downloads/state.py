"""The state one download shares between its engine, its workers and its readers.

Everything here is guarded by ``DownloadState.cond``: the byte ranges written (``done``), the
size once known, the sources and how they fared, the workers and their ranges, and what a
reader may take (``view``). The engine (``pip_91n.downloads.engine``) and the workers
(``pip_91n.downloads.workers``) both work on it; neither imports the other.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from pip_91n._urls import redact
from pip_91n.downloads.options import DownloadOptions
from pip_91n.downloads.partials import Journal, PartialMeta, PartialStore
from pip_91n.downloads.segments import RangeSet
from pip_91n.errors import Attempt

__all__ = ["Assign", "DownloadState", "OnAttempt", "Progress", "ReadView", "Source", "Worker"]

Progress = Callable[[int, "int | None"], None]
OnAttempt = Callable[[str, "str | None", float], None]


@dataclass
class Source:
    """One candidate URL and how it has done."""

    url: str
    index: int
    failures: int = 0  # consecutive failures without progress
    total_failures: int = 0
    dead: bool = False
    bytes: int = 0  # bytes written this generation


@dataclass
class Assign:
    """The range a worker fetches: from ``start``, next byte ``pos``, up to ``end``."""

    start: int
    pos: int
    end: int | None  # None: to EOF (size unknown)


@dataclass
class Worker:
    key: int
    source: Source | None
    assign: Assign | None = None
    req_start: float = 0.0
    req_bytes: int = 0
    exited: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    def rate(self, now: float) -> float | None:
        elapsed = now - self.req_start
        if self.assign is None or elapsed < 0.25:
            return None
        return self.req_bytes / elapsed


class ReadView(NamedTuple):
    """What a reader may take now: bytes ``[0, end)`` of ``path``; ``final`` when they are
    all there are and verified. ``generation`` changes when a restart replaced bytes."""

    end: int
    final: bool
    generation: int
    path: Path | None


class DownloadState:
    """One file (``sha256``) from ``urls`` into ``store``; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        sha256: str,
        *,
        store: PartialStore,
        options: DownloadOptions,
        size: int | None = None,
        filename: str = "",
        progress: Progress | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> None:
        self.sources = [Source(u, i) for i, u in enumerate(urls)]
        self.sha256 = sha256
        self.store = store
        self.opts = options
        self.expected_size = size
        self.size: int | None = size
        self.filename = filename
        self.progress = progress
        self.on_attempt = on_attempt
        self.cond = threading.Condition()
        self.done = RangeSet()
        self.generation = 0
        self.attempts: list[Attempt] = []
        self.data_path: Path | None = None  # where readers find the bytes
        self.verified = False
        self.error: BaseException | None = None
        self.finished = False  # the engine returned or raised
        self.meta = PartialMeta(sha256, filename, size)
        self.meta_dirty = False
        self.fd: int | None = None
        self.journal: Journal | None = None
        self.workers: list[Worker] = []
        self.cancelled = False
        self.eof_size: int | None = None  # size seen at EOF when no length was announced
        self.prior_bytes = 0  # bytes an earlier run left
        self.solo: list[Source] | None = None  # after a mismatch: one source at a time

    @property
    def what(self) -> str:
        return self.filename or self.sha256

    # -- readers ---------------------------------------------------------------------------
    def view(self) -> ReadView:
        """What a reader may take now. Before the hash matched, the last byte is held back,
        so a reader never sees a whole unverified file. Call under ``cond``."""
        if self.verified and self.size is not None:
            return ReadView(self.size, True, self.generation, self.data_path)
        prefix = self.done.prefix()
        prefix = min(prefix, self.size - 1) if self.size is not None else prefix - 1
        return ReadView(max(0, prefix), False, self.generation, self.data_path)

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    # -- under cond ------------------------------------------------------------------------
    def complete_locked(self) -> bool:
        size = self.size if self.size is not None else self.eof_size
        return size is not None and (size == 0 or self.done.covers(0, size))

    def live_sources(self) -> list[Source]:
        if self.solo is not None:
            return [s for s in self.solo if not s.dead][:1]
        return [s for s in self.sources if not s.dead]

    def target_workers(self) -> int:
        live = len(self.live_sources())
        if self.size is None or self.size < self.opts.segment_threshold:
            return 1  # small, or unknown size: one stream; resume by failover
        return max(1, min(live, self.opts.max_connections))

    def reset_locked(self) -> None:
        """Drop every byte written: the next bytes start a new generation from zero."""
        assert self.fd is not None and self.journal is not None
        os.ftruncate(self.fd, 0)
        self.journal.reset()
        self.done = RangeSet()
        self.generation += 1
        self.prior_bytes = 0
        self.eof_size = None
        self.size = self.expected_size
        self.meta.size = self.expected_size
        self.meta.validators.clear()
        self.meta_dirty = True
        for s in self.sources:
            s.bytes = 0

    # -- any thread ------------------------------------------------------------------------
    def record_attempt(self, src: Source, reason: str, seconds: float) -> None:
        parts = urlsplit(src.url)
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        with self.cond:
            self.attempts.append(Attempt(host or redact(src.url), redact(src.url), reason,
                                         round(seconds, 3)))
        if self.on_attempt is not None:
            with contextlib.suppress(Exception):
                self.on_attempt(src.url, reason, seconds)

    def report(self, *, force: bool = False) -> None:
        """Tell ``progress`` how far the download is."""
        if self.progress is None:
            return
        with self.cond:
            done, size = self.done.total(), self.size
        if force or done or size:
            self.progress(done, size)

    def save_meta(self) -> None:
        with self.cond:
            self.meta_dirty = False
            m = self.meta
            snap = PartialMeta(m.sha256, m.filename, m.size, dict(m.validators))
        self.store.save_meta(snap)
