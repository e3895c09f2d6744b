"""Live request and byte counts of a mirror (exact body bytes handed to the socket)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RequestRecord", "ServerStats", "StatsRecorder"]


@dataclass(eq=False)
class RequestRecord:
    """One request as the server saw it. ``status`` 0 = no response (black hole)."""

    method: str
    path: str
    kind: str  # page | file | metadata | other
    name: str = ""  # the mirror's name
    status: int | None = None
    filename: str | None = None  # file or "<file>.metadata" for file/metadata requests
    bytes: int = 0  # body bytes written
    faults: tuple[str, ...] = ()
    error: str | None = None
    duration: float = 0.0
    parked: bool = False
    started: float = field(default_factory=time.monotonic)
    generation: int = 0  # which reset_stats() period it belongs to


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of a mirror's counters."""

    requests: Mapping[str, int]  # path -> requests
    by_kind: Mapping[str, int]  # page | file | metadata | other -> requests
    bytes_by_file: Mapping[str, int]  # file name (or "<file>.metadata") -> body bytes
    bytes_by_path: Mapping[str, int]  # path -> body bytes (pages and errors included)
    records: tuple[RequestRecord, ...]

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_path.values())

    def count(self, kind: str | None = None, contains: str | None = None) -> int:
        """Requests of a kind and/or whose path contains a string."""
        return sum(
            1
            for r in self.records
            if (kind is None or r.kind == kind) and (contains is None or contains in r.path)
        )


class StatsRecorder:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        self._requests: Counter[str] = Counter()
        self._by_kind: Counter[str] = Counter()
        self._bytes_by_file: Counter[str] = Counter()
        self._bytes_by_path: Counter[str] = Counter()
        self._records: list[RequestRecord] = []

    def reset(self) -> None:
        with self._cond:
            self._generation += 1
            self._clear()

    def begin(self, rec: RequestRecord) -> None:
        with self._cond:
            self._in_flight += 1
            rec.generation = self._generation
            self._requests[rec.path] += 1
            self._by_kind[rec.kind] += 1
            self._records.append(rec)

    def park(self, rec: RequestRecord) -> None:
        """The request will not finish soon on purpose (black hole): don't wait for it."""
        with self._cond:
            if not rec.parked:
                rec.parked = True
                self._in_flight -= 1
                self._cond.notify_all()

    def end(self, rec: RequestRecord) -> None:
        with self._cond:
            if not rec.parked:
                rec.parked = True
                self._in_flight -= 1
                self._cond.notify_all()

    def add_bytes(self, rec: RequestRecord, n: int) -> None:
        with self._cond:
            rec.bytes += n
            if rec.generation == self._generation:
                self._bytes_by_path[rec.path] += n
                if rec.filename:
                    self._bytes_by_file[rec.filename] += n

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight <= 0, timeout)

    def snapshot(self, wait: float) -> ServerStats:
        if wait > 0:
            self.wait_idle(wait)
        with self._cond:
            return ServerStats(
                requests=dict(self._requests),
                by_kind=dict(self._by_kind),
                bytes_by_file=dict(self._bytes_by_file),
                bytes_by_path=dict(self._bytes_by_path),
                records=tuple(dataclasses.replace(r) for r in self._records),
            )
