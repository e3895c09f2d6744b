"""Single flight: one download per file, however many clients ask for it at once.

The first request for a sha256 starts a ``Flight``: a producer (the chain's download, see
``pip_91n.serve.upstream``) writes the bytes, in order, into a temporary file of the cache;
every client of that file reads from it through its own ``Reader`` as the bytes arrive, so
four clients of one file cost one copy upstream. The producer returns only once the file is
verified (the download engine holds the last byte back until its sha256 matched); the file
then becomes a cache entry by one rename, and readers see the end. A failure reaches every
reader as ``FlightFailed`` (the app then aborts the client's connection: a cut-short or
wrong file never looks complete). When the last reader leaves, the flight lingers a moment
(a client resuming with ``Range`` comes back at once) and is then cancelled; the engine
keeps its partial, so a later request resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Generic, TypeVar

from pip_91n.serve.store import FileCache

__all__ = ["Flight", "FlightFailed", "Flights", "Once", "Producer", "Reader", "Sink"]

log = logging.getLogger("pip_91n")

T = TypeVar("T")


class Once(Generic[T]):
    """Single flight for a small result (a page, a metadata file): one call per key at a
    time; callers that come while it runs wait for its result, or its exception."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Future[T]] = {}

    def run(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            pending = self._pending.get(key)
            mine = pending is None
            if pending is None:
                pending = self._pending[key] = Future()
        if not mine:
            return pending.result()
        try:
            result = fn()
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(result)
        finally:
            with self._lock:
                self._pending.pop(key, None)
        return result


class FlightFailed(Exception):
    """The download of a file failed (or was cancelled); ``reason`` says why."""


class Sink:
    """What a producer writes to: ``set_size`` once known, ``write`` in order, and
    ``cancelled`` to learn that nobody wants the file any more."""

    def __init__(self, flight: Flight) -> None:
        self._flight = flight

    def set_size(self, size: int | None) -> None:
        f = self._flight
        with f.cond:
            f.size = size
            f.cond.notify_all()

    def write(self, data: bytes) -> None:
        f = self._flight
        view = memoryview(data)
        while view:
            n = os.write(f.fd, view)
            view = view[n:]
        with f.cond:
            f.written += len(data)
            f.cond.notify_all()

    def replace_with(self, path: Path) -> None:
        """The verified file is ``path`` and differs from the bytes written so far (the
        engine restarted from another source): take its bytes instead. Readers that were
        already given bytes fail; the others read the verified file."""
        f = self._flight
        with open(path, "rb") as src:
            pos = 0
            while chunk := src.read(1024 * 1024):
                os.pwrite(f.fd, chunk, pos)
                pos += len(chunk)
        os.ftruncate(f.fd, pos)
        with f.cond:
            f.written = pos
            f.generation += 1
            f.cond.notify_all()

    def digest(self) -> bytes:
        """The sha256 of the bytes written so far (read back from the file)."""
        import hashlib

        f, h = self._flight, hashlib.sha256()
        pos = 0
        while pos < f.written:
            chunk = os.pread(f.fd, min(1024 * 1024, f.written - pos), pos)
            if not chunk:
                break
            h.update(chunk)
            pos += len(chunk)
        return h.digest()

    def cancelled(self) -> bool:
        return self._flight.cancel.is_set()


#: ``producer(sink)`` downloads the file into ``sink``; returns once it is verified.
Producer = Callable[[Sink], None]


class Flight:
    """One file in flight. ``path`` is where its bytes are (a temporary file)."""

    def __init__(self, key: str, path: Path, fd: int) -> None:
        self.key, self.path, self.fd = key, path, fd
        self.cond = threading.Condition()
        self.cancel = threading.Event()
        self.size: int | None = None
        self.written = 0
        self.generation = 0  # bumped when the bytes written were replaced
        self.done = False
        self.kept = False
        self.error: str | None = None
        self.readers = 0
        self.idle_since: float | None = None


class Reader:
    """One client's view of a flight: ``wait_size``, ``read``, ``wait_done``, ``close``."""

    def __init__(self, flights: Flights, flight: Flight) -> None:
        self._flights, self.flight = flights, flight
        self._fd: int | None = os.open(flight.path, os.O_RDONLY)
        self.pos = 0
        self._generation = flight.generation

    def wait_size(self, timeout: float) -> int | None:
        """The file's size once the source said it (None when it never did)."""
        f = self.flight
        with f.cond:
            f.cond.wait_for(lambda: f.size is not None or f.done or f.error is not None,
                            timeout)
            if f.error is not None:
                raise FlightFailed(f.error)
            return f.size if f.size is not None else (f.written if f.done else None)

    def read(self, n: int, timeout: float = 0.5) -> bytes | None:
        """Up to ``n`` bytes from the current position; b"" at the verified end; None when
        nothing arrived within ``timeout`` (ask again)."""
        f = self.flight
        with f.cond:
            f.cond.wait_for(lambda: f.written > self.pos or f.done or f.error is not None,
                            timeout)
            if f.error is not None:
                raise FlightFailed(f.error)
            if f.generation != self._generation:
                if self.pos:
                    raise FlightFailed("a source sent a corrupt copy; the bytes already sent "
                                       "came from it (the verified file is kept: ask again)")
                self._generation = f.generation
            end = f.written
            if end <= self.pos:
                return b"" if f.done else None
        assert self._fd is not None
        data = os.pread(self._fd, min(n, end - self.pos), self.pos)
        self.pos += len(data)
        return data

    def wait_done(self, timeout: float) -> bool:
        """Wait until the file is verified (True) or ``timeout`` passed (False)."""
        f = self.flight
        with f.cond:
            f.cond.wait_for(lambda: f.done or f.error is not None, timeout)
            if f.error is not None:
                raise FlightFailed(f.error)
            return f.done

    def dup(self) -> int:
        """A new fd of the file (valid after it moved into the cache, or was dropped)."""
        assert self._fd is not None
        return os.dup(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._flights._leave(self.flight)


class Flights:
    """The files in flight, by key (their sha256). ``linger``: seconds a flight nobody
    reads any more keeps going before it is cancelled."""

    def __init__(self, cache: FileCache, *, linger: float = 3.0) -> None:
        self.cache = cache
        self.linger = linger
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def join(self, key: str, producer: Producer) -> Reader:
        """A reader of ``key``'s flight; the first caller starts it with ``producer``.

        The temporary file is made and the producer's thread started outside the lock, so
        a burst of new files (uv asks for 20 wheels at once) does not queue behind each
        file's disk and thread start-up."""
        spool: tuple[Path, int] | None = None
        if self._live(key) is None:
            spool = self.cache.spool()
        started: Flight | None = None
        try:
            with self._lock:
                flight = self._live(key)
                if flight is None:
                    path, fd = spool if spool is not None else self.cache.spool()
                    spool = None
                    flight = started = self._flights[key] = Flight(key, path, fd)
                reader = Reader(self, flight)  # opened before the flight can be renamed
                with flight.cond:
                    flight.readers += 1
                    flight.idle_since = None
        finally:  # a registered flight gets its producer, even if this caller's reader failed
            if spool is not None:  # another caller started the flight meanwhile
                os.close(spool[1])
                spool[0].unlink(missing_ok=True)
            if started is not None:
                threading.Thread(target=self._run, args=(started, producer), daemon=True,
                                 name=f"pip-91n-serve-{key[:8]}").start()
        return reader

    def _live(self, key: str) -> Flight | None:
        flight = self._flights.get(key)
        return None if flight is None or flight.cancel.is_set() else flight

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)

    def _run(self, flight: Flight, producer: Producer) -> None:
        error: str | None = None
        try:
            producer(Sink(flight))
        except Exception as exc:  # every failure reaches the readers, as a reason
            error = str(exc) or type(exc).__name__
        finally:
            os.close(flight.fd)
        with self._lock:  # no reader joins from here on: the file may move
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        kept = False
        if error is None:
            try:
                kept = self.cache.keep(flight.path, flight.key)
            except OSError as exc:
                log.warning("pip-91n serve: cannot keep %s in the cache: %s", flight.key, exc)
        else:
            with contextlib.suppress(OSError):
                flight.path.unlink()
        with flight.cond:
            flight.error = error
            flight.done = error is None
            flight.kept = kept
            flight.cond.notify_all()

    def _leave(self, flight: Flight) -> None:
        with flight.cond:
            flight.readers -= 1
            if flight.readers > 0 or flight.done or flight.error is not None:
                return
            flight.idle_since = time.monotonic()
        timer = threading.Timer(self.linger, self._maybe_cancel, args=(flight,))
        timer.daemon = True
        timer.start()

    def _maybe_cancel(self, flight: Flight) -> None:
        with flight.cond:
            if flight.readers == 0 and flight.idle_since is not None and not flight.done \
                    and time.monotonic() - flight.idle_since >= self.linger * 0.9:
                flight.cancel.set()
