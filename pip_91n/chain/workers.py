"""A tiny pool of daemon threads for mirror attempts.

Starting a thread per attempt costs a few hundred microseconds, noticeable on fast mirrors;
``concurrent.futures`` threads are not daemons, so an attempt stuck on a black-holed mirror
would hold up interpreter exit. Here idle workers are reused, a new daemon worker is started
whenever none is idle (so an attempt never queues behind a stuck one), and a worker idle for
``idle_exit`` seconds ends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Workers"]

log = logging.getLogger("pip_91n")

_Job = Callable[[], None]


class Workers:
    def __init__(self, *, idle_exit: float = 30.0, name: str = "pip-91n-attempt") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._idle_exit = idle_exit
        self._name = name
        self.started = 0

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # claimed: that worker will take a job
            else:
                self.started += 1
                threading.Thread(target=self._loop, name=self._name, daemon=True).start()
        self._jobs.put(job)

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # still unclaimed: leave
                        self._idle -= 1
                        return
                continue  # claimed just now: a job is on its way
            if job is None:
                return
            try:
                job()
            except Exception:  # jobs catch their own errors; this is a last guard
                log.exception("pip-91n: attempt worker failed")
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Let idle workers end (busy ones end after their job)."""
        with self._lock:
            n, self._idle = self._idle, 0
        for _ in range(n):
            self._jobs.put(None)
