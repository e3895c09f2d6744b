"""The download engine behind ``pip_91n.download``: one file, many sources, one verified result.

A ``Download`` works on one partial entry (``pip_91n.partials``) under its file lock:

1. reuse a verified ``.complete`` if another process already made it;
2. otherwise replay the journal and fetch only the missing bytes. Workers (threads, one HTTP
   connection each) claim gaps, and steal the tail of slower workers' ranges
   (``pip_91n.segments``). Small files, and files of unknown size, get one worker that walks
   the sources in order on failure (failover resume); large files get one worker per source;
3. hash the result. A mismatch blames the source that served the bytes (or, when several did,
   retries one source at a time) and starts over. Nothing unverified is renamed to
   ``.complete`` or published; stream readers get bytes as they arrive, but never the last
   one before the hash matched (see ``readable``).

Resume rules, as in pip's ``network/download.py``: ``Range: bytes=N-``; ``If-Range`` with the
ETag (else Last-Modified) when the same URL served earlier bytes; a 206 whose ``Content-Range``
does not start at N, or announces another size, drops that source; a 200 to a range request
restarts from zero when no other worker is running (else that source is dropped as
range-less). Without Content-Length the body is read to EOF and the hash decides; a mismatch
is first checked with one ``Range`` probe for a truncated body.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pip_91n.download_http import describe, judge, range_headers
from pip_91n.errors import Attempt, DownloadFailed
from pip_91n.partials import Journal, PartialMeta, PartialStore
from pip_91n.segments import Active, RangeSet, claim, gaps, steal

if TYPE_CHECKING:
    import httpx

__all__ = ["Download", "EngineOptions", "hash_file", "pread"]

log = logging.getLogger("pip_91n")

Progress = Callable[[int, "int | None"], None]
OnAttempt = Callable[[str, "str | None", float], None]

_MAX_IDLE_WAIT = 0.2


_HAVE_PREAD = hasattr(os, "pread")  # not on Windows


def pread(fd: int, n: int, offset: int) -> bytes:
    """``os.pread``; elsewhere seek + read (then the caller must own ``fd`` or hold its lock)."""
    if _HAVE_PREAD:
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows only
    return os.read(fd, n)  # pragma: no cover


def _pwrite(fd: int, data: memoryview, offset: int) -> int:
    if _HAVE_PREAD:
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows only; under ``cond``
    return os.write(fd, data)  # pragma: no cover


def hash_file(path: str | os.PathLike[str], limit: int | None = None) -> str:
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineOptions:
    segment_threshold: int
    max_connections: int
    min_split: int
    chunk_size: int
    timeout: float
    retries: int
    lock_stall: float
    max_age: float
    max_bytes: int
    headers: Mapping[str, str]
    verify: bool


class _PrefixHash:
    """sha256 of the contiguous prefix, advanced while the download runs, so that the check
    at the end only reads what arrived last (a 13 GB model file is not read twice)."""

    _STEP = 64 * 1024 * 1024  # most bytes hashed per call, to keep the caller responsive

    def __init__(self) -> None:
        self.generation = -1
        self.pos = 0
        self._h = hashlib.sha256()

    def advance(self, eng: Download, limit: int | None = None) -> None:
        with eng.cond:
            gen, fd = eng.generation, eng._fd
            end = eng.done.prefix() if limit is None else limit
        if gen != self.generation:
            self.generation, self.pos, self._h = gen, 0, hashlib.sha256()
        if fd is None:
            return
        stop = end if limit is not None else min(end, self.pos + self._STEP)
        h, pos = self._h.copy(), self.pos
        while pos < stop:
            if _HAVE_PREAD:
                block = os.pread(fd, min(4 << 20, stop - pos), pos)
            else:  # pragma: no cover - Windows: the writers seek the same fd
                with eng.cond:
                    block = pread(fd, min(4 << 20, stop - pos), pos)
            if not block:
                break
            h.update(block)
            pos += len(block)
        with eng.cond:
            if eng.generation == gen:  # no restart raced with the reads
                self._h, self.pos = h, pos

    def digest(self, eng: Download, size: int) -> str | None:
        """The digest of the first ``size`` bytes, or None if a restart got in the way."""
        self.advance(eng, size)
        return self._h.hexdigest() if self.pos == size else None


class _SourceError(Exception):
    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


@dataclass
class _Source:
    url: str
    index: int
    failures: int = 0  # consecutive failures without progress
    total_failures: int = 0
    dead: bool = False
    bytes: int = 0  # bytes written this generation
    suspect: bool = False


@dataclass
class _Assign:
    start: int
    pos: int
    end: int | None  # None: to EOF (size unknown)


@dataclass
class _Worker:
    key: int
    source: _Source | None
    assign: _Assign | None = None
    req_start: float = 0.0
    req_bytes: int = 0
    exited: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    def rate(self, now: float) -> float | None:
        elapsed = now - self.req_start
        if self.assign is None or elapsed < 0.25:
            return None
        return self.req_bytes / elapsed


class Download:
    """Fetch one file (``sha256``) from ``urls`` into the partial store; ``run()`` returns the
    verified ``.complete`` path. Thread-safe readers follow along through ``cond``."""

    def __init__(
        self,
        urls: Sequence[str],
        sha256: str,
        *,
        store: PartialStore,
        options: EngineOptions,
        size: int | None = None,
        filename: str = "",
        progress: Progress | None = None,
        on_attempt: OnAttempt | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.sources = [_Source(u, i) for i, u in enumerate(urls)]
        self.sha256 = sha256
        self.store = store
        self.opts = options
        self.expected_size = size
        self.size: int | None = size
        self.filename = filename
        self.progress = progress
        self.on_attempt = on_attempt
        self.transport = transport
        self.cond = threading.Condition()
        self.done = RangeSet()
        self.generation = 0
        self.attempts: list[Attempt] = []
        self.data_path: Path | None = None  # where readers find the bytes
        self.verified = False
        self.error: BaseException | None = None
        self.finished = False  # run() returned or raised
        self._meta = PartialMeta(sha256, filename, size)
        self._fd: int | None = None
        self._journal: Journal | None = None
        self._workers: list[_Worker] = []
        self._cancel = False
        self._eof_size: int | None = None  # size seen at EOF when no length was announced
        self._probed = False
        self._prior_bytes = 0
        self._meta_dirty = False
        self._solo: list[_Source] | None = None
        self._hash = _PrefixHash()

    # -- public --------------------------------------------------------------------------
    def run(self) -> Path:
        try:
            path = self._run_locked()
        except BaseException as exc:
            with self.cond:
                self.error = exc
                self.finished = True
                self.cond.notify_all()
            raise
        with self.cond:
            self.verified = True
            self.finished = True
            self.cond.notify_all()
        return path

    def readable(self) -> tuple[int, bool]:
        """(bytes a reader may take from ``data_path``, final). Before the hash matched, the
        last byte is held back, so a reader never sees a whole unverified file. Call under
        ``cond``."""
        if self.verified and self.size is not None:
            return self.size, True
        prefix = self.done.prefix()
        if self.size is not None:
            prefix = min(prefix, self.size - 1)
        else:
            prefix -= 1
        return max(0, prefix), False

    def cancel(self) -> None:
        with self.cond:
            self._cancel = True
            self.cond.notify_all()

    # -- lock, reuse, attempts -------------------------------------------------------------
    def _run_locked(self) -> Path:
        lock = self.store.lock(self.sha256)
        journal_path = self.store.path(self.sha256, ".ranges")
        complete = self.store.path(self.sha256, ".complete")
        seen: list[tuple[int, bool]] = []
        last_change = time.monotonic()

        def keep_waiting() -> bool:
            nonlocal last_change
            try:
                state = (journal_path.stat().st_size, complete.exists())
            except OSError:
                state = (-1, complete.exists())
            if not seen or seen[-1] != state:
                seen.append(state)
                last_change = time.monotonic()
                if self.progress is not None and state[0] > 0:
                    # another process is downloading: show its progress as ours
                    self.progress(Journal.replay(journal_path).total(), self.expected_size)
            if self._cancel:
                return False
            return time.monotonic() - last_change < self.opts.lock_stall

        if not lock.acquire(keep_waiting=keep_waiting, poll=0.1):
            raise DownloadFailed(self._what(), [Attempt(
                "lock", str(lock.path),
                f"another process holds the download lock and made no progress for "
                f"{self.opts.lock_stall:.0f}s",
            )])
        try:
            with contextlib.suppress(OSError):
                self.store.clean(max_age=self.opts.max_age, max_bytes=self.opts.max_bytes,
                                 keep=frozenset({self.sha256}))
            if complete.exists():
                if hash_file(complete) == self.sha256:
                    os.utime(complete)
                    size = complete.stat().st_size
                    with self.cond:
                        self.size = size
                        self.data_path = complete
                        self.done = RangeSet([(0, size)])
                    self._report(force=True)
                    return complete
                complete.unlink()
            return self._download(complete)
        finally:
            lock.release()

    def _what(self) -> str:
        return self.filename or self.sha256

    def _open_partial(self) -> None:
        store, sha = self.store, self.sha256
        store.root.mkdir(parents=True, exist_ok=True)
        meta = store.load_meta(sha)
        part = store.path(sha, ".part")
        fresh = meta is None or (
            self.expected_size is not None and meta.size not in (None, self.expected_size)
        )
        if fresh or meta is None:
            store.discard(sha)
            meta = PartialMeta(sha, self.filename, self.expected_size)
            done = RangeSet()
        else:
            if meta.size is not None and self.size is None:
                self.size = meta.size
            meta.filename = meta.filename or self.filename
            done = store.done_ranges(sha, self.size)
        self._meta = meta
        self._fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        self._journal = Journal(store.path(sha, ".ranges"))
        if fresh:
            os.ftruncate(self._fd, 0)
            self._journal.reset()
        store.save_meta(meta)
        with self.cond:
            self.done = done
            self.data_path = part
            self._prior_bytes = done.total()
        if done.total():
            log.debug("pip-91n: resuming %s with %d bytes on disk", self._what(), done.total())

    def _close_partial(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _download(self, complete: Path) -> Path:
        self._open_partial()
        poisoned = False
        try:
            for _ in range(2 * len(self.sources) + 2):
                self._run_workers()
                with self.cond:
                    size = self.size if self.size is not None else self._eof_size
                    whole = self._complete_locked()
                if not whole or size is None:
                    # A size remembered from an earlier run that no source confirms came from
                    # a bad source: drop the partial so that the next run starts clean.
                    poisoned = self.expected_size is None and any(
                        a.reason.startswith("serves ") for a in self.attempts)
                    raise DownloadFailed(self._what(), self.attempts)
                part = self.store.path(self.sha256, ".part")
                assert self._fd is not None
                os.ftruncate(self._fd, size)
                digest = self._hash.digest(self, size) or hash_file(part, size)
                if digest == self.sha256:
                    with self.cond:
                        self.size = size
                    self._close_partial()
                    os.replace(part, complete)
                    with self.cond:
                        self.data_path = complete
                    self.store.discard(self.sha256, keep_complete=True)
                    self._report(force=True)
                    return complete
                if self.size is None and not self._probed:
                    # No length was announced: maybe the body was cut short. Probe once.
                    self._probed = True
                    with self.cond:
                        self._eof_size = None
                    continue
                self._blame(digest)
            raise DownloadFailed(self._what(), self.attempts)
        finally:
            self._close_partial()
            if poisoned:
                self.store.discard(self.sha256, keep_complete=True)

    def _blame(self, digest: str) -> None:
        contributors = [s for s in self.sources if s.bytes > 0]
        reason = f"sha256 mismatch (got {digest[:12]}..., expected {self.sha256[:12]}...)"
        if len(contributors) == 1 and not self._prior_bytes:
            src = contributors[0]
            src.dead = True
            self._attempt(src, reason + "; its bytes were discarded", 0.0)
        else:
            # Several sources (or an earlier run) wrote bytes: try one source at a time.
            for s in contributors:
                s.suspect = True
            self.attempts.append(Attempt("partial", self.sha256, reason + " in bytes from "
                                         f"{len(contributors)} sources; retrying one at a time"))
            if self._solo is None:
                self._solo = [s for s in self.sources if not s.dead]
            elif self._solo:
                bad = self._solo.pop(0)
                bad.dead = True
                self._attempt(bad, reason + " when it served the whole file alone", 0.0)
        log.warning("pip-91n: %s: %s; fetching it again", self._what(), reason)
        with self.cond:
            assert self._fd is not None and self._journal is not None
            os.ftruncate(self._fd, 0)
            self._journal.reset()
            self.done = RangeSet()
            self.generation += 1
            self._prior_bytes = 0
            self._eof_size = None
            self.size = self.expected_size
            self._meta.validators.clear()
            self._meta.size = self.expected_size
            for s in self.sources:
                s.bytes = 0
        self._save_meta()

    # -- workers ---------------------------------------------------------------------------
    def _live_sources(self) -> list[_Source]:
        if self._solo is not None:
            live = [s for s in self._solo if not s.dead]
            return live[:1]
        return [s for s in self.sources if not s.dead]

    def _target_workers(self) -> int:
        live = len(self._live_sources())
        if self.size is None or self.size < self.opts.segment_threshold:
            return 1  # small, or unknown size: one stream; resume by failover
        return max(1, min(live, self.opts.max_connections))

    def _complete_locked(self) -> bool:
        size = self.size if self.size is not None else self._eof_size
        return size is not None and (size == 0 or self.done.covers(0, size))

    def _run_workers(self) -> None:
        import httpx

        timeout = httpx.Timeout(self.opts.timeout)
        limits = httpx.Limits(max_connections=self.opts.max_connections + 2,
                              max_keepalive_connections=self.opts.max_connections + 2)
        client = httpx.Client(
            transport=self.transport, timeout=timeout, limits=limits, verify=self.opts.verify,
            headers={**self.opts.headers, "Accept-Encoding": "identity"}, follow_redirects=True,
        )
        self._workers = []
        try:
            self._spawn(client)
            last_report = 0.0
            while True:
                with self.cond:
                    alive = [w for w in self._workers if w.thread and w.thread.is_alive()]
                    if not alive:
                        break
                    self.cond.wait(0.1)
                    more = self._target_workers() - len(alive)
                if more > 0 and not self._complete_locked():
                    self._spawn(client, more)
                now = time.monotonic()
                if now - last_report >= 0.1:
                    last_report = now
                    self._report()
                    self._hash.advance(self)
                if self._meta_dirty:
                    self._save_meta()
        except BaseException:
            self.cancel()
            for w in self._workers:
                if w.thread is not None:
                    w.thread.join(timeout=1.0)
            raise
        finally:
            client.close()
            if self._meta_dirty:
                with contextlib.suppress(OSError):
                    self._save_meta()

    def _save_meta(self) -> None:
        with self.cond:
            self._meta_dirty = False
            m = self._meta
            snap = PartialMeta(m.sha256, m.filename, m.size, dict(m.validators))
        self.store.save_meta(snap)

    def _spawn(self, client: httpx.Client, count: int | None = None) -> None:
        with self.cond:
            n = self._target_workers() if count is None else count
            used = {id(w.source) for w in self._workers
                    if w.thread and w.thread.is_alive() and w.source}
            free = [s for s in self._live_sources() if id(s) not in used]
            new = []
            for src in free[:n]:
                w = _Worker(len(self._workers), src)
                self._workers.append(w)
                new.append(w)
        for w in new:
            w.thread = threading.Thread(target=self._work, args=(client, w), daemon=True,
                                        name=f"pip-91n-download-{w.key}")
            w.thread.start()

    def _next_source(self, w: _Worker, *, failed: bool) -> _Source | None:
        """Under ``cond``: the source ``w`` uses next. After a failure, fail over to the next
        live source nobody else uses; stay when there is none (and the source still lives)."""
        live = self._live_sources()
        used = {id(o.source) for o in self._workers if o is not w and o.assign is not None}
        cur = w.source
        if cur is not None and not cur.dead and not failed:
            return cur
        start = cur.index + 1 if cur is not None else 0
        order = sorted(live, key=lambda s: (s.index - start) % len(self.sources))
        for s in order:
            if id(s) not in used and s is not cur:
                return s
        if cur is not None and not cur.dead and cur in live:
            return cur
        return None

    def _claim(self, w: _Worker) -> _Assign | None:
        """Under ``cond``: the next range for ``w``, or None when there is nothing for it."""
        others = [o for o in self._workers if o is not w and o.assign is not None]
        if self.size is None:
            if others:
                return None
            start = self.done.prefix()
            return _Assign(start, start, None)
        busy = [(o.assign.pos, o.assign.end if o.assign.end is not None else self.size)
                for o in others if o.assign is not None]
        free = gaps(self.size, self.done, busy)
        idle = sum(1 for o in self._workers if o.assign is None and not o.exited)
        got = claim(free, max(1, idle), self.opts.min_split)
        if got is not None:
            return _Assign(got[0], got[0], got[1])
        now = time.monotonic()
        active = [Active(o.key, o.assign.pos, o.assign.end, o.rate(now)) for o in others
                  if o.assign is not None and o.assign.end is not None]
        mine = [o.rate(now) for o in self._workers if o.source is w.source and o is not w]
        thief_rate = w.req_bytes / max(1e-3, now - w.req_start) if w.req_bytes else None
        thief_rate = thief_rate or next((r for r in mine if r), None)
        picked = steal(active, thief_rate, self.opts.min_split)
        if picked is None:
            return None
        key, split = picked
        victim = next(o for o in others if o.key == key)
        assert victim.assign is not None and victim.assign.end is not None
        end = victim.assign.end
        victim.assign.end = split
        log.debug("pip-91n: worker %d takes [%d, %d) from worker %d", w.key, split, end, key)
        return _Assign(split, split, end)

    def _work(self, client: httpx.Client, w: _Worker) -> None:
        try:
            self._work_loop(client, w)
        except Exception as exc:  # a bug must not hang the download: report it, stop
            log.exception("pip-91n: download worker failed")
            if w.source is not None:
                w.source.dead = True
                self._attempt(w.source, f"internal error: {exc!r}"[:200], 0.0)
        finally:
            with self.cond:
                w.assign = None
                w.exited = True
                self.cond.notify_all()

    def _work_loop(self, client: httpx.Client, w: _Worker) -> None:
        for _ in range(100_000):  # bounded: each turn fetches bytes, fails, or waits 0.2 s
            with self.cond:
                if self._cancel or self._complete_locked():
                    return
                src = self._next_source(w, failed=False)
                if src is None:
                    return
                w.source = src
                w.assign = self._claim(w)
                if w.assign is None:
                    others = any(o.assign is not None for o in self._workers if o is not w)
                    if not others and not self._complete_locked():
                        # nothing to claim and nobody working: only with a bad size
                        return
                    self.cond.wait(_MAX_IDLE_WAIT)
                    continue
            if self._fetch(client, w, src):
                continue
            with self.cond:
                nxt = self._next_source(w, failed=True)
                if nxt is None:
                    return
                w.source = nxt
            if nxt is src:  # no other source free: back off before trying it again
                time.sleep(min(1.0, 0.05 * 2 ** src.failures))

    # -- one request -----------------------------------------------------------------------
    def _request_headers(self, a: _Assign, url: str) -> dict[str, str]:
        return range_headers(a.start, a.end, self.size, self._meta.validators.get(url))

    def _fetch(self, client: httpx.Client, w: _Worker, src: _Source) -> bool:
        """One request for ``w.assign`` from ``src``; True unless the source failed."""
        import httpx

        a = w.assign
        assert a is not None
        t0 = time.monotonic()
        with self.cond:
            w.req_start, w.req_bytes = t0, 0
            headers = self._request_headers(a, src.url)
        first_byte = 0.0
        try:
            with client.stream("GET", src.url, headers=headers) as resp:
                first_byte = time.monotonic() - t0
                if not self._accept(w, src, resp):
                    return True
                for chunk in resp.iter_raw(self.opts.chunk_size):
                    if not self._write(w, src, chunk):
                        break
                else:
                    self._at_eof(w, src)
        except (httpx.HTTPError, OSError, _SourceError) as exc:
            self._failed(w, src, exc, time.monotonic() - t0)
            return False
        finally:
            with self.cond:
                w.assign = None
                self.cond.notify_all()
        with self.cond:
            src.failures = 0
        if self.on_attempt is not None:
            self.on_attempt(src.url, None, first_byte)
        return True

    def _accept(self, w: _Worker, src: _Source, resp: httpx.Response) -> bool:
        """Check the status and headers; False when the request turned out to be moot."""
        a = w.assign
        assert a is not None
        with self.cond:
            probing = a.end is None and self.size is None and a.start == self.done.prefix() > 0
            verdict = judge(resp.status_code, resp.headers, start=a.start, size=self.size,
                            probing=probing)
        if verdict.action == "fail":
            raise _SourceError(verdict.reason, fatal=verdict.fatal)
        if verdict.action == "eof":
            with self.cond:  # the probe after EOF: nothing beyond what we have
                self._eof_size = a.start
            return False
        if verdict.action == "restart":
            with self.cond:
                if self._cancel:
                    return False
                if any(o.assign is not None for o in self._workers if o is not w):
                    raise _SourceError("ignores Range (HTTP 200)", fatal=True)
                # pip's rule: a 200 to a Range request means start again from zero.
                log.info("pip-91n: %s answered 200 to a Range request: restarting %s",
                         src.url, self._what())
                self._restart_locked()
                a.start = a.pos = 0
                a.end = verdict.total if verdict.total is not None else self.size
        self._learn_size(verdict.total)
        validator = resp.headers.get("etag") or resp.headers.get("last-modified")
        if validator:
            with self.cond:
                if self._meta.validators.get(src.url) != validator:
                    self._meta.validators[src.url] = validator
                    self._meta_dirty = True
        return True

    def _restart_locked(self) -> None:
        assert self._fd is not None and self._journal is not None
        os.ftruncate(self._fd, 0)
        self._journal.reset()
        self.done = RangeSet()
        self.generation += 1
        self._prior_bytes = 0
        self._meta.validators.clear()
        self.size = self.expected_size
        self._meta_dirty = True
        for s in self.sources:
            s.bytes = 0

    def _learn_size(self, total: int | None) -> None:
        if total is None:
            return
        with self.cond:
            if self.size is None:
                self.size = total
                self._meta.size = total
                self._meta_dirty = True
                self.done = self.done.clip(total)
                for o in self._workers:
                    if o.assign is not None and o.assign.end is None:
                        o.assign.end = total
            elif total != self.size:
                raise _SourceError(f"serves {total} bytes, expected {self.size}", fatal=True)

    def _write(self, w: _Worker, src: _Source, chunk: bytes) -> bool:
        with self.cond:
            a = w.assign
            if self._cancel or a is None:
                return False
            limit = a.end if a.end is not None else self.size
            n = len(chunk) if limit is None else min(len(chunk), limit - a.pos)
            if n <= 0:
                return False
            assert self._fd is not None and self._journal is not None
            view = memoryview(chunk)[:n]
            written = 0
            while written < n:
                written += _pwrite(self._fd, view[written:], a.pos + written)
            self._journal.record(a.pos, a.pos + n)
            self.done.add(a.pos, a.pos + n)
            a.pos += n
            src.bytes += n
            w.req_bytes += n
            self.cond.notify_all()
            return limit is None or a.pos < limit

    def _at_eof(self, w: _Worker, src: _Source) -> None:
        with self.cond:
            a = w.assign
            if a is None:
                return
            limit = a.end if a.end is not None else self.size
            if limit is None:
                self._eof_size = a.pos  # no length announced: the hash will decide
                return
            if a.pos < limit:
                raise _SourceError(f"body ended at byte {a.pos} of {limit}")

    def _failed(self, w: _Worker, src: _Source, exc: BaseException, seconds: float) -> None:
        reason = exc.reason if isinstance(exc, _SourceError) else describe(exc)
        fatal = isinstance(exc, _SourceError) and exc.fatal
        with self.cond:
            src.total_failures += 1
            src.failures = 1 if w.req_bytes else src.failures + 1
            if fatal or src.failures >= self.opts.retries or \
                    src.total_failures >= 4 * self.opts.retries + 4:
                src.dead = True
        log.info("pip-91n: %s from %s: %s", self._what(), src.url, reason)
        self._attempt(src, reason + (f" after {w.req_bytes} bytes" if w.req_bytes else ""),
                      seconds)

    def _attempt(self, src: _Source, reason: str, seconds: float) -> None:
        from urllib.parse import urlsplit

        from pip_91n.routing import redact

        with self.cond:
            self.attempts.append(Attempt(urlsplit(src.url).netloc or src.url, redact(src.url),
                                         reason, round(seconds, 3)))
        if self.on_attempt is not None:
            with contextlib.suppress(Exception):
                self.on_attempt(src.url, reason, seconds)

    def _report(self, *, force: bool = False) -> None:
        if self.progress is None:
            return
        with self.cond:
            done, size = self.done.total(), self.size
        if force or done or size:
            self.progress(done, size)
