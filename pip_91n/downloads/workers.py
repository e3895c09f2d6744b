"""The workers of one download: threads that fetch byte ranges from sources over a ``Wire``.

Small files, and files of unknown size, get one worker that walks the sources in order on
failure (failover resume); files of ``segment_threshold`` bytes or more get one worker per
source (up to ``max_connections``). Workers claim gaps and steal the tail of slower workers'
ranges (``pip_91n.downloads.segments``). Each request follows pip's resume rules
(``pip_91n.downloads.resume``): ``Range`` from where the bytes stop, ``If-Range`` with the
validator the same URL sent before; a 206 that starts elsewhere or announces another size
drops the source; a 200 to a range request restarts from zero when no other worker runs
(else that source is dropped as range-less).

``run_workers`` runs them until none is left. Everything shared is in ``DownloadState``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pip_91n import __version__
from pip_91n._urls import redact
from pip_91n.downloads.files import pwrite
from pip_91n.downloads.resume import judge, range_headers
from pip_91n.downloads.segments import Active, claim, gaps, steal
from pip_91n.downloads.state import Assign, DownloadState, Source, Worker
from pip_91n.net.wire import Wire, WireError, WireResponse, describe, follow

__all__ = ["run_workers"]

log = logging.getLogger("pip_91n")

_MAX_IDLE_WAIT = 0.2
_USER_AGENT = f"pip-91n/{__version__}"


class _SourceError(Exception):
    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


def run_workers(st: DownloadState, wire: Wire, tick: Callable[[], None]) -> None:
    """Run workers until none is left (the file is complete, or no source can help);
    ``tick()`` is called about every 0.1 s from this thread. Interrupted (a
    ``KeyboardInterrupt``, say), it cancels the workers and gives them a second to stop."""
    with st.cond:
        st.workers = []
    try:
        _spawn(st, wire)
        last_tick = 0.0
        while True:
            with st.cond:
                alive = [w for w in st.workers if w.thread and w.thread.is_alive()]
                if not alive:
                    break
                st.cond.wait(0.1)
                more = st.target_workers() - len(alive)
                complete = st.complete_locked()
            if more > 0 and not complete:
                _spawn(st, wire, more)
            now = time.monotonic()
            if now - last_tick >= 0.1:
                last_tick = now
                tick()
    except BaseException:
        st.cancel()
        for w in st.workers:
            if w.thread is not None:
                w.thread.join(timeout=1.0)
        raise


def _spawn(st: DownloadState, wire: Wire, count: int | None = None) -> None:
    with st.cond:
        n = st.target_workers() if count is None else count
        used = {id(w.source) for w in st.workers
                if w.thread and w.thread.is_alive() and w.source}
        free = [s for s in st.live_sources() if id(s) not in used]
        new = []
        for src in free[:n]:
            w = Worker(len(st.workers), src)
            st.workers.append(w)
            new.append(w)
    for w in new:
        w.thread = threading.Thread(target=_work, args=(st, wire, w), daemon=True,
                                    name=f"pip-91n-download-{w.key}")
        w.thread.start()


def _next_source(st: DownloadState, w: Worker, *, failed: bool) -> Source | None:
    """Under ``cond``: the source ``w`` uses next. After a failure, fail over to the next
    live source nobody else uses; stay when there is none (and the source still lives)."""
    live = st.live_sources()
    used = {id(o.source) for o in st.workers if o is not w and o.assign is not None}
    cur = w.source
    if cur is not None and not cur.dead and not failed:
        return cur
    start = cur.index + 1 if cur is not None else 0
    order = sorted(live, key=lambda s: (s.index - start) % len(st.sources))
    for s in order:
        if id(s) not in used and s is not cur:
            return s
    if cur is not None and not cur.dead and cur in live:
        return cur
    return None


def _claim(st: DownloadState, w: Worker) -> Assign | None:
    """Under ``cond``: the next range for ``w``, or None when there is nothing for it."""
    others = [o for o in st.workers if o is not w and o.assign is not None]
    if st.size is None:
        if others:
            return None
        start = st.done.prefix()
        return Assign(start, start, None)
    busy = [(o.assign.pos, o.assign.end if o.assign.end is not None else st.size)
            for o in others if o.assign is not None]
    free = gaps(st.size, st.done, busy)
    idle = sum(1 for o in st.workers if o.assign is None and not o.exited)
    got = claim(free, max(1, idle), st.opts.min_split)
    if got is not None:
        return Assign(got[0], got[0], got[1])
    now = time.monotonic()
    active = [Active(o.key, o.assign.pos, o.assign.end, o.rate(now)) for o in others
              if o.assign is not None and o.assign.end is not None]
    mine = [o.rate(now) for o in st.workers if o.source is w.source and o is not w]
    thief_rate = w.req_bytes / max(1e-3, now - w.req_start) if w.req_bytes else None
    thief_rate = thief_rate or next((r for r in mine if r), None)
    picked = steal(active, thief_rate, st.opts.min_split)
    if picked is None:
        return None
    key, split = picked
    victim = next(o for o in others if o.key == key)
    assert victim.assign is not None and victim.assign.end is not None
    end = victim.assign.end
    victim.assign.end = split
    log.debug("pip-91n: worker %d takes [%d, %d) from worker %d", w.key, split, end, key)
    return Assign(split, split, end)


def _work(st: DownloadState, wire: Wire, w: Worker) -> None:
    try:
        _work_loop(st, wire, w)
    except Exception as exc:  # a bug must not hang the download: report it, stop
        log.exception("pip-91n: download worker failed")
        if w.source is not None:
            w.source.dead = True
            st.record_attempt(w.source, f"internal error: {exc!r}"[:200], 0.0)
    finally:
        with st.cond:
            w.assign = None
            w.exited = True
            st.cond.notify_all()


def _work_loop(st: DownloadState, wire: Wire, w: Worker) -> None:
    for _ in range(100_000):  # bounded: each turn fetches bytes, fails, or waits 0.2 s
        with st.cond:
            if st.cancelled or st.complete_locked():
                return
            src = _next_source(st, w, failed=False)
            if src is None:
                return
            w.source = src
            w.assign = _claim(st, w)
            if w.assign is None:
                others = any(o.assign is not None for o in st.workers if o is not w)
                if not others and not st.complete_locked():
                    return  # nothing to claim and nobody working: only with a bad size
                st.cond.wait(_MAX_IDLE_WAIT)
                continue
        if _fetch(st, wire, w, src):
            continue
        with st.cond:
            nxt = _next_source(st, w, failed=True)
            if nxt is None:
                return
            w.source = nxt
        if nxt is src:  # no other source free: back off before trying it again
            time.sleep(min(1.0, 0.05 * 2 ** src.failures))


def _headers(st: DownloadState, a: Assign, url: str) -> list[tuple[str, str]]:
    """Under ``cond``: the options' headers, the file whole and undecoded, and the range."""
    merged = {"user-agent": ("User-Agent", _USER_AGENT)}
    wanted = {**st.opts.headers, "Accept-Encoding": "identity",
              **range_headers(a.start, a.end, st.size, st.meta.validators.get(url))}
    for k, v in wanted.items():
        merged[k.lower()] = (k, v)
    return list(merged.values())


def _fetch(st: DownloadState, wire: Wire, w: Worker, src: Source) -> bool:
    """One request for ``w.assign`` from ``src``; True unless the source failed."""
    a = w.assign
    assert a is not None
    t0 = time.monotonic()
    with st.cond:
        w.req_start, w.req_bytes = t0, 0
        headers = _headers(st, a, src.url)
    first_byte = 0.0
    resp: WireResponse | None = None
    try:
        resp, _ = follow(wire, src.url, headers, st.opts.timeout)
        first_byte = time.monotonic() - t0
        if not _accept(st, w, src, resp):
            return True
        for chunk in resp:
            if not _write(st, w, src, chunk):
                break
        else:
            _at_eof(st, w)
    except (WireError, OSError, _SourceError) as exc:
        _failed(st, w, src, exc, time.monotonic() - t0, reading=resp is not None)
        return False
    finally:
        if resp is not None:
            resp.close()
        with st.cond:
            w.assign = None
            st.cond.notify_all()
    with st.cond:
        src.failures = 0
    if st.on_attempt is not None:
        st.on_attempt(src.url, None, first_byte)
    return True


def _accept(st: DownloadState, w: Worker, src: Source, resp: WireResponse) -> bool:
    """Check the status and headers; False when the request turned out to be moot."""
    a = w.assign
    assert a is not None
    with st.cond:
        probing = a.end is None and st.size is None and a.start == st.done.prefix() > 0
        verdict = judge(resp.status, resp.headers, start=a.start, size=st.size,
                        probing=probing)
    if verdict.action == "fail":
        raise _SourceError(verdict.reason, fatal=verdict.fatal)
    if verdict.action == "eof":
        with st.cond:  # the probe after EOF: nothing beyond what we have
            st.eof_size = a.start
        return False
    if verdict.action == "restart":
        with st.cond:
            if st.cancelled:
                return False
            if any(o.assign is not None for o in st.workers if o is not w):
                raise _SourceError("ignores Range (HTTP 200)", fatal=True)
            # pip's rule: a 200 to a Range request means start again from zero.
            log.info("pip-91n: %s answered 200 to a Range request: restarting %s",
                     redact(src.url), st.what)
            st.reset_locked()
            a.start = a.pos = 0
            a.end = verdict.total if verdict.total is not None else st.size
    _learn_size(st, verdict.total)
    validator = resp.headers.get("etag") or resp.headers.get("last-modified")
    if validator:
        with st.cond:
            if st.meta.validators.get(src.url) != validator:
                st.meta.validators[src.url] = validator
                st.meta_dirty = True
    return True


def _learn_size(st: DownloadState, total: int | None) -> None:
    if total is None:
        return
    with st.cond:
        if st.size is None:
            st.size = total
            st.meta.size = total
            st.meta_dirty = True
            st.done = st.done.clip(total)
            for o in st.workers:
                if o.assign is not None and o.assign.end is None:
                    o.assign.end = total
        elif total != st.size:
            raise _SourceError(f"serves {total} bytes, expected {st.size}", fatal=True)


def _write(st: DownloadState, w: Worker, src: Source, chunk: bytes) -> bool:
    with st.cond:
        a = w.assign
        if st.cancelled or a is None:
            return False
        limit = a.end if a.end is not None else st.size
        n = len(chunk) if limit is None else min(len(chunk), limit - a.pos)
        if n <= 0:
            return False
        assert st.fd is not None and st.journal is not None
        view = memoryview(chunk)[:n]
        written = 0
        while written < n:
            written += pwrite(st.fd, view[written:], a.pos + written)
        st.journal.record(a.pos, a.pos + n)
        st.done.add(a.pos, a.pos + n)
        a.pos += n
        src.bytes += n
        w.req_bytes += n
        st.cond.notify_all()
        return limit is None or a.pos < limit


def _at_eof(st: DownloadState, w: Worker) -> None:
    with st.cond:
        a = w.assign
        if a is None:
            return
        limit = a.end if a.end is not None else st.size
        if limit is None:
            st.eof_size = a.pos  # no length announced: the hash will decide
            return
        if a.pos < limit:
            raise _SourceError(f"body ended at byte {a.pos} of {limit}")


def _failed(st: DownloadState, w: Worker, src: Source, exc: BaseException, seconds: float,
            *, reading: bool) -> None:
    if isinstance(exc, _SourceError):
        reason, fatal = exc.reason, exc.fatal
    else:
        reason, fatal = describe(exc, st.opts.timeout, reading=reading), False
    with st.cond:
        src.total_failures += 1
        src.failures = 1 if w.req_bytes else src.failures + 1
        if fatal or src.failures >= st.opts.retries or \
                src.total_failures >= 4 * st.opts.retries + 4:
            src.dead = True
    log.info("pip-91n: %s from %s: %s", st.what, redact(src.url), reason)
    st.record_attempt(src, reason + (f" after {w.req_bytes} bytes" if w.req_bytes else ""),
                      seconds)
