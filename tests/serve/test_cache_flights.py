"""The file cache (LRU within ``--max-cache``) and single flight, in process."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from pip_91n.serve.flights import FlightFailed, Flights, Sink
from pip_91n.serve.store import FileCache


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_lru_keeps_the_most_recently_used_within_the_bound(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, max_bytes=3000)
    blobs = [bytes([i]) * 1000 for i in range(4)]
    for b in blobs[:3]:
        cache.put(_sha(b), b)
    got = cache.open(_sha(blobs[0]))  # used: now the newest
    assert got is not None
    import os

    os.close(got[0])
    cache.put(_sha(blobs[3]), blobs[3])
    assert not cache.has(_sha(blobs[1])) and cache.has(_sha(blobs[0]))
    assert cache.total == 3000
    assert sorted(p.name for p in (tmp_path / "files").glob("??/*")) == sorted(
        _sha(b) for b in (blobs[0], blobs[2], blobs[3]))
    again = FileCache(tmp_path, max_bytes=2000)  # a restart with a smaller bound
    assert again.total == 2000 and not again.has(_sha(blobs[2]))
    big = b"x" * 5000  # larger than the whole cache: not kept
    cache.put(_sha(big), big)
    assert not cache.has(_sha(big))


def test_one_flight_for_many_readers(tmp_path: Path) -> None:
    flights = Flights(FileCache(tmp_path, 10**9))
    data = bytes(range(256)) * 4096
    calls = []
    gate = threading.Event()

    def producer(sink: Sink) -> None:
        calls.append(1)
        sink.set_size(len(data))
        for i in range(0, len(data), 65536):
            gate.wait(5)
            sink.write(data[i:i + 65536])

    readers = [flights.join("k" * 64, producer) for _ in range(4)]
    gate.set()
    outs = []
    for r in readers:
        buf = bytearray()
        while (chunk := r.read(100_000, 2.0)) != b"":
            if chunk:
                buf += chunk
        outs.append(bytes(buf))
        r.close()
    assert calls == [1] and all(o == data for o in outs)
    assert flights.cache.has("k" * 64)


def test_callers_racing_to_start_a_flight_start_one(tmp_path: Path) -> None:
    """Joins that find no flight make their temporary file outside the lock: the callers
    that lose the race to start it read the winner's flight and leave no file behind."""
    flights = Flights(FileCache(tmp_path, 10**9))
    data = b"abc" * 1000
    calls: list[int] = []
    barrier = threading.Barrier(8)
    readers = []
    lock = threading.Lock()
    everyone_in = threading.Event()

    def producer(sink: Sink) -> None:  # runs until every caller joined
        calls.append(1)
        everyone_in.wait(10)
        sink.set_size(len(data))
        sink.write(data)

    def join() -> None:
        barrier.wait(5)
        r = flights.join(_sha(data), producer)
        with lock:
            readers.append(r)

    threads = [threading.Thread(target=join) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    everyone_in.set()
    for r in readers:
        assert r.wait_done(5.0)
        r.close()
    assert len(readers) == 8 and calls == [1]
    assert flights.cache.has(_sha(data)) and not list((tmp_path / "tmp").iterdir())


def test_a_flight_whose_first_reader_failed_still_runs(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A flight is registered before its first reader opens the file: if that open fails, the
    flight must still get its producer, or every later client of the file would wait on it."""
    from pip_91n.serve import flights as flights_mod

    flights = Flights(FileCache(tmp_path, 10**9))
    data = b"wheel" * 100
    calls: list[int] = []

    def producer(sink: Sink) -> None:
        calls.append(1)
        sink.set_size(len(data))
        sink.write(data)

    def no_fd(self: object, *args: object) -> None:
        raise OSError("too many open files")

    with monkeypatch.context() as patched:
        patched.setattr(flights_mod.Reader, "__init__", no_fd)
        with pytest.raises(OSError, match="open files"):
            flights.join(_sha(data), producer)
    deadline = time.monotonic() + 10
    while not flights.cache.has(_sha(data)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == [1] and flights.cache.has(_sha(data)) and flights.in_flight() == 0


def test_a_failed_flight_fails_every_reader(tmp_path: Path) -> None:
    flights = Flights(FileCache(tmp_path, 10**9))

    def producer(sink: Sink) -> None:
        sink.set_size(10)
        sink.write(b"12345")
        raise RuntimeError("sha256 mismatch")

    r = flights.join("f" * 64, producer)
    with pytest.raises(FlightFailed, match="mismatch"):
        while r.read(100, 2.0) != b"":
            pass
    r.close()
    assert not flights.cache.has("f" * 64) and not list((tmp_path / "tmp").iterdir())


def test_a_flight_nobody_reads_is_cancelled(tmp_path: Path) -> None:
    flights = Flights(FileCache(tmp_path, 10**9), linger=0.2)
    stopped = threading.Event()

    def producer(sink: Sink) -> None:
        sink.set_size(None)
        for _ in range(200):
            if sink.cancelled():
                stopped.set()
                raise RuntimeError("cancelled")
            sink.write(b"x")
            time.sleep(0.02)

    r = flights.join("c" * 64, producer)
    assert r.read(1, 2.0)
    r.close()
    assert stopped.wait(3)
