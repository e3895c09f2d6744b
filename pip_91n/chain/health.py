"""Per-mirror health memory: failures, latency, last success; back-off, then re-probe.

The policy is pure (functions over the frozen ``MirrorHealth``); ``HealthStore`` keeps it
in ``<PIP_91N_CACHE_DIR>/health.json``, shared by every pip process through a file lock and
atomic replace. A mirror that fails is skipped for a back-off that doubles with each
consecutive failure (5 s, 10 s, 20 s, ... up to 15 min); once it expires the mirror is tried
again in its place (the re-probe): one success clears the count, one failure doubles it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pip_91n._statefile import locked, read_json, write_json_atomic
from pip_91n.index.routing import mirror_for_url
from pip_91n.settings.catalog import Mirror

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "HEALTH_FILE",
    "HealthStore",
    "MirrorHealth",
    "after_failure",
    "after_success",
    "backoff_seconds",
    "health_reporter",
    "is_backing_off",
    "split_by_health",
]

#: The file in the cache dir.
HEALTH_FILE = "health.json"
BACKOFF_BASE = 5.0
BACKOFF_CAP = 900.0
_LATENCY_WEIGHT = 0.3
_SUCCESS_WRITE_INTERVAL = 60.0
#: How often ``snapshot`` looks at the file for another process's writes (a stat per request
#: would cost more than the request's own bookkeeping).
_RECHECK_INTERVAL = 0.25


@dataclass(frozen=True)
class MirrorHealth:
    """What is remembered about one mirror. Times are ``time.time()`` seconds."""

    failures: int = 0
    last_failure: float | None = None
    last_success: float | None = None
    latency: float | None = None
    skip_until: float = 0.0
    last_reason: str = ""

    @classmethod
    def from_json(cls, data: Any) -> MirrorHealth:
        if not isinstance(data, dict):
            return cls()

        def num(key: str) -> float | None:
            v = data.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        fails = data.get("failures")
        return cls(
            failures=fails if isinstance(fails, int) and fails >= 0 else 0,
            last_failure=num("last_failure"),
            last_success=num("last_success"),
            latency=num("latency"),
            skip_until=num("skip_until") or 0.0,
            last_reason=str(data.get("last_reason", ""))[:200],
        )


def backoff_seconds(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Skip time after ``failures`` consecutive failures: base, 2*base, 4*base, ... <= cap."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 30)))


def after_failure(
    h: MirrorHealth, now: float, reason: str, *, base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
) -> MirrorHealth:
    failures = h.failures + 1
    return replace(
        h,
        failures=failures,
        last_failure=now,
        skip_until=now + backoff_seconds(failures, base, cap),
        last_reason=reason[:200],
    )


def after_success(h: MirrorHealth, now: float, latency: float | None) -> MirrorHealth:
    lat = h.latency
    if latency is not None:
        lat = latency if lat is None else lat + _LATENCY_WEIGHT * (latency - lat)
    # built directly: this runs for every request, and ``replace`` costs three times more
    return MirrorHealth(failures=0, last_failure=h.last_failure, last_success=now, latency=lat)


def is_backing_off(h: MirrorHealth, now: float) -> bool:
    return h.failures > 0 and now < h.skip_until


def split_by_health(
    chain: Sequence[Mirror], health: Mapping[str, MirrorHealth], now: float
) -> tuple[tuple[Mirror, ...], tuple[Mirror, ...]]:
    """(mirrors to try in chain order, mirrors backing off). The caller tries the second group
    only when the first is exhausted, so a dead chain still gets every mirror once."""
    live = tuple(m for m in chain if not is_backing_off(health.get(m.name, MirrorHealth()), now))
    resting = tuple(m for m in chain if m not in live)
    return live, resting


class HealthStore:
    """Health of every mirror, persisted in ``path`` (None keeps it in memory only)."""

    def __init__(self, path: Path | None, *, base: float = BACKOFF_BASE,
                 cap: float = BACKOFF_CAP) -> None:
        self.path = path
        self.base = base
        self.cap = cap
        self._lock = threading.Lock()
        self._cache: dict[str, MirrorHealth] = {}
        self._mtime: int | None = None
        self._checked = float("-inf")  # time.monotonic() of the last stat
        self._last_write: dict[str, float] = {}

    @classmethod
    def in_cache_dir(cls, cache_dir: Path) -> HealthStore:
        """The store every pip process of this cache dir shares."""
        return cls(cache_dir / HEALTH_FILE)

    def _load(self) -> dict[str, MirrorHealth]:
        assert self.path is not None
        raw = read_json(self.path)
        mirrors = raw.get("mirrors", {})
        if not isinstance(mirrors, dict):
            return {}
        return {str(k): MirrorHealth.from_json(v) for k, v in mirrors.items()}

    def snapshot(self) -> dict[str, MirrorHealth]:
        """Current health by mirror name (re-read from disk when another process wrote;
        the file is looked at no more than every 0.25 s)."""
        with self._lock:
            now = time.monotonic()
            if self.path is not None and now - self._checked >= _RECHECK_INTERVAL:
                self._checked = now
                try:
                    mtime: int | None = self.path.stat().st_mtime_ns
                except OSError:
                    mtime = None
                if mtime != self._mtime:
                    self._cache = self._load() if mtime is not None else {}
                    self._mtime = mtime
            return dict(self._cache)

    def get(self, name: str) -> MirrorHealth:
        return self.snapshot().get(name, MirrorHealth())

    def _update(self, name: str, change: Any, *, force: bool, now: float) -> None:
        with self._lock:
            new = change(self._cache.get(name, MirrorHealth()))
            self._cache[name] = new
            if self.path is None:
                return
            if not force and now - self._last_write.get(name, 0.0) < _SUCCESS_WRITE_INTERVAL:
                return
            self._last_write[name] = now
            try:
                with locked(self.path):
                    disk = self._load()
                    disk[name] = change(disk.get(name, MirrorHealth()))
                    write_json_atomic(
                        self.path,
                        {"version": 1, "mirrors": {k: asdict(v) for k, v in disk.items()}},
                    )
                    self._cache = disk
                    self._mtime = self.path.stat().st_mtime_ns
            except OSError:
                # A read-only or full cache dir must not break installs; memory still works.
                self.path = None

    def record_failure(self, name: str, reason: str, *, now: float | None = None) -> None:
        t = time.time() if now is None else now
        self._update(
            name, lambda h: after_failure(h, t, reason, base=self.base, cap=self.cap),
            force=True, now=t,
        )

    def record_success(self, name: str, latency: float | None, *,
                       now: float | None = None) -> None:
        t = time.time() if now is None else now
        force = self._cache.get(name, MirrorHealth()).failures > 0 or name not in self._cache
        self._update(name, lambda h: after_success(h, t, latency), force=force, now=t)


def health_reporter(health: HealthStore, chain: Sequence[Mirror]
                    ) -> Callable[[str, str | None, float], None]:
    """An ``on_attempt(url, reason, seconds)`` callback for the download engine that feeds
    the health memory: a request that worked is a success, a failure (reset, timeout, 5xx,
    bad bytes) a failure of its mirror. A 404 is not held against the mirror (it may just
    lag behind); URLs outside ``chain`` are ignored."""

    def report(url: str, reason: str | None, seconds: float) -> None:
        mirror = mirror_for_url(url, chain)
        if mirror is None:
            return
        if reason is None:
            health.record_success(mirror.name, seconds)
        elif not reason.startswith("HTTP 404"):
            health.record_failure(mirror.name, reason)

    return report
