"""The download engine: one file, many sources, one verified result.

A ``Download`` works on one partial entry (``pip_91n.downloads.partials``) under its file
lock: lock → reuse → fetch → verify → hand over.

1. reuse a verified ``.complete`` if another process made it and is still handing it over;
2. otherwise replay the journal and fetch only the missing bytes
   (``pip_91n.downloads.workers``);
3. hash the result. A mismatch blames the source that served the bytes (or, when several did,
   retries one source at a time) and starts over. Nothing unverified is renamed to
   ``.complete`` or published; stream readers get bytes as they arrive, but never the last
   one before the hash matched (``DownloadState.view``);
4. hand the verified file over: ``fetch`` moves it to its destination, a stream's reader
   removes it once read. Only unfinished downloads stay in the cache dir (none at all with
   ``keep_partials`` off: pip's ``--no-cache-dir``).

Without Content-Length the body is read to EOF and the hash decides; a mismatch is first
checked with one ``Range`` probe for a truncated body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from pip_91n.downloads.files import PrefixHash, copy_beside, hash_file, sha256_mismatch
from pip_91n.downloads.partials import Journal, PartialMeta
from pip_91n.downloads.segments import RangeSet
from pip_91n.downloads.state import DownloadState
from pip_91n.downloads.workers import run_workers
from pip_91n.errors import Attempt, DownloadFailed
from pip_91n.net.wire import Wire

__all__ = ["Download"]

log = logging.getLogger("pip_91n")


class Download:
    """Fetch the file ``state`` describes through ``wire``; ``run()`` returns the verified
    ``.complete`` path. Readers follow along through ``state``."""

    def __init__(self, state: DownloadState, wire: Wire) -> None:
        self.state = state
        self.wire = wire
        self._probed = False
        self._hash = PrefixHash()

    @property
    def sha256(self) -> str:
        return self.state.sha256

    @property
    def filename(self) -> str:
        return self.state.filename

    def run(self, deliver: Callable[[Path], Path] | None = None) -> Path:
        """Download and verify; the verified file's path. ``deliver(path)``, called while the
        file's lock is still held, hands the verified file over (moves it out of the cache
        dir) and returns where it went."""
        st = self.state
        try:
            path = self._run_locked(deliver)
        except BaseException as exc:
            with st.cond:
                st.error = exc
                st.finished = True
                st.cond.notify_all()
            raise
        with st.cond:
            st.verified = True
            st.finished = True
            st.cond.notify_all()
        return path

    def cancel(self) -> None:
        self.state.cancel()

    def discard(self) -> None:
        """Remove the verified file from the cache dir, once its reader has it (unless another
        process holds the file's lock, or waits for it: it reuses the file, and removes it
        itself)."""
        st = self.state
        lock = st.store.lock(st.sha256)
        if lock.try_acquire():
            try:
                if not st.store.has_waiters(st.sha256):
                    st.store.discard(st.sha256)
            finally:
                lock.release()

    # -- lock and reuse --------------------------------------------------------------------
    def _run_locked(self, deliver: Callable[[Path], Path] | None) -> Path:
        st = self.state
        lock = st.store.lock(st.sha256)
        journal_path = st.store.path(st.sha256, ".ranges")
        complete = st.store.path(st.sha256, ".complete")
        seen: list[tuple[int, bool]] = []
        last_change = time.monotonic()

        def keep_waiting() -> bool:
            nonlocal last_change
            try:
                now_state = (journal_path.stat().st_size, complete.exists())
            except OSError:
                now_state = (-1, complete.exists())
            if not seen or seen[-1] != now_state:
                seen.append(now_state)
                last_change = time.monotonic()
                if st.progress is not None and now_state[0] > 0:
                    # another process is downloading: show its progress as ours
                    st.progress(Journal.replay(journal_path).total(), st.expected_size)
            if st.cancelled:
                return False
            return time.monotonic() - last_change < st.opts.lock_stall

        if not lock.try_acquire():  # another holder: wait, and say so (it then leaves the
            st.store.add_waiter(st.sha256)  # verified file here for this thread to reuse)
            try:
                got = lock.acquire(keep_waiting=keep_waiting, poll=0.1)
            finally:
                st.store.remove_waiter(st.sha256)
            if not got:
                raise DownloadFailed(st.what, [Attempt(
                    "lock", str(lock.path),
                    f"another process holds the download lock and made no progress for "
                    f"{st.opts.lock_stall:.0f}s",
                )])
        try:
            with contextlib.suppress(OSError):
                st.store.clean(max_age=st.opts.max_age, max_bytes=st.opts.max_bytes,
                               keep=frozenset({st.sha256}))
            verified = self._reuse(complete) or self._download(complete)
            if deliver is None:
                return verified
            if st.store.has_waiters(st.sha256):  # a copy for this caller, the file for them
                return deliver(copy_beside(verified))
            delivered = deliver(verified)
            st.store.discard(st.sha256)  # its name (the .json) goes with it
            return delivered
        except BaseException:
            if not st.opts.keep_partials:  # pip --no-cache-dir: nothing stays behind
                st.store.discard(st.sha256)
            raise
        finally:
            lock.release()

    def _reuse(self, complete: Path) -> Path | None:
        """``complete``, when another process verified the file and has not handed it over
        yet; None otherwise (a copy that does not hash right is dropped)."""
        st = self.state
        try:
            if hash_file(complete) != st.sha256:
                complete.unlink()
                return None
            size = complete.stat().st_size
        except FileNotFoundError:
            return None
        with st.cond:
            st.size = size
            st.data_path = complete
            st.done = RangeSet([(0, size)])
        st.report(force=True)
        return complete

    # -- the partial -----------------------------------------------------------------------
    def _open_partial(self) -> None:
        st = self.state
        store, sha = st.store, st.sha256
        store.root.mkdir(parents=True, exist_ok=True)
        meta = store.load_meta(sha)
        part = store.path(sha, ".part")
        fresh = meta is None or (
            st.expected_size is not None and meta.size not in (None, st.expected_size)
        )
        if fresh or meta is None:
            store.discard(sha)
            meta = PartialMeta(sha, st.filename, st.expected_size)
            done = RangeSet()
        else:
            if meta.size is not None and st.size is None:
                st.size = meta.size
            meta.filename = meta.filename or st.filename
            done = store.done_ranges(sha, st.size)
        st.meta = meta
        st.fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        st.journal = Journal(store.path(sha, ".ranges"))
        if fresh:
            os.ftruncate(st.fd, 0)
            st.journal.reset()
        store.save_meta(meta)
        with st.cond:
            st.done = done
            st.data_path = part
            st.prior_bytes = done.total()
        if done.total():
            log.debug("pip-91n: resuming %s with %d bytes on disk", st.what, done.total())

    def _close_partial(self) -> None:
        st = self.state
        if st.journal is not None:
            st.journal.close()
            st.journal = None
        if st.fd is not None:
            os.close(st.fd)
            st.fd = None

    def _tick(self) -> None:
        st = self.state
        st.report()
        self._hash.advance(st)
        if st.meta_dirty:
            st.save_meta()

    # -- fetch, verify, keep ---------------------------------------------------------------
    def _download(self, complete: Path) -> Path:
        st = self.state
        self._open_partial()
        poisoned = False
        try:
            for _ in range(2 * len(st.sources) + 2):
                try:
                    run_workers(st, self.wire, self._tick)
                finally:
                    if st.meta_dirty:
                        with contextlib.suppress(OSError):
                            st.save_meta()
                with st.cond:
                    size = st.size if st.size is not None else st.eof_size
                    whole = st.complete_locked()
                if not whole or size is None:
                    # A size remembered from an earlier run that no source confirms came from
                    # a bad source: drop the partial so that the next run starts clean.
                    poisoned = st.expected_size is None and any(
                        a.reason.startswith("serves ") for a in st.attempts)
                    raise DownloadFailed(st.what, st.attempts)
                part = st.store.path(st.sha256, ".part")
                assert st.fd is not None
                os.ftruncate(st.fd, size)
                digest = self._hash.digest(st, size) or hash_file(part, size)
                if digest == st.sha256:
                    with st.cond:
                        st.size = size
                    self._close_partial()
                    os.replace(part, complete)
                    with st.cond:
                        st.data_path = complete
                    st.store.discard(st.sha256, keep_complete=True)
                    st.report(force=True)
                    return complete
                if st.size is None and not self._probed:
                    # No length was announced: maybe the body was cut short. Probe once.
                    self._probed = True
                    with st.cond:
                        st.eof_size = None
                    continue
                self._blame(digest)
            raise DownloadFailed(st.what, st.attempts)
        finally:
            self._close_partial()
            if poisoned:
                st.store.discard(st.sha256)

    def _blame(self, digest: str) -> None:
        st = self.state
        contributors = [s for s in st.sources if s.bytes > 0]
        reason = sha256_mismatch(digest, st.sha256)
        if len(contributors) == 1 and not st.prior_bytes:
            src = contributors[0]
            src.dead = True
            st.record_attempt(src, reason + "; its bytes were discarded", 0.0)
        else:
            # Several sources (or an earlier run) wrote bytes: try one source at a time.
            st.attempts.append(Attempt("partial", st.sha256, reason + " in bytes from "
                                       f"{len(contributors)} sources; retrying one at a time"))
            if st.solo is None:
                st.solo = [s for s in st.sources if not s.dead]
            elif st.solo:
                bad = st.solo.pop(0)
                bad.dead = True
                st.record_attempt(bad, reason + " when it served the whole file alone", 0.0)
        log.warning("pip-91n: %s: %s; fetching it again", st.what, reason)
        with st.cond:
            st.reset_locked()
        st.save_meta()
