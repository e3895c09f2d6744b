"""Map the checkpoint's pages into the process ahead of use, so tokens do not pay first touch.

A fresh process takes a minor page fault for each page of a mapped expert the first time a
token routes to it; with varied routing that covers most of the first few dozen tokens.
`prefault` asks the kernel to populate the page tables of the given byte ranges in one call
per range (``MADV_POPULATE_READ``, Linux 5.14+; ``MADV_WILLNEED`` elsewhere, which only reads
ahead). The pages stay file-backed and clean (RssFile, reclaimable), so no anonymous memory is
used. `start_prefault` does it in a daemon thread at the lowest CPU priority (nice 19), so
loading does not wait for it and the first tokens' compute threads are not slowed by it.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import threading
from collections.abc import Iterable, Mapping

__all__ = ["MADV_POPULATE_READ", "prefault", "start_prefault"]

MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_PAGE = mmap.PAGESIZE
_STEP = 64 << 20  # one call per 64 MiB: a closed mapping stops the thread between calls


def _libc_madvise() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # pragma: no cover - not a POSIX libc
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _libc_madvise()


def _advise(base: int, start: int, length: int, populate: bool) -> bool:
    """madvise ``[base+start, +length)`` (page-aligned); False when the call failed.

    Called through ctypes, which releases the GIL (``mmap.madvise`` holds it for the whole
    call, which would stall the decoding thread)."""
    if _MADVISE is None:
        return False
    advice = MADV_POPULATE_READ if populate else mmap.MADV_WILLNEED
    return bool(_MADVISE(base + start, length, advice) == 0)


def prefault(maps: Mapping[str, mmap.mmap], ranges: Iterable[tuple[str, int, int]],
             stop: threading.Event | None = None) -> int:
    """Populate ``(file, offset, nbytes)`` ranges of ``maps``; return the bytes populated.

    Falls back to ``MADV_WILLNEED`` for the rest once ``MADV_POPULATE_READ`` fails."""
    populate, done = True, 0
    if stop is not None:  # the background thread yields the CPU to the threads that compute
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    for path, offset, nbytes in sorted(ranges):
        m = maps.get(path)
        if m is None or nbytes <= 0 or m.closed:
            continue
        anchor = ctypes.c_char.from_buffer(m)  # keeps the mapping open while it is advised
        base = ctypes.addressof(anchor)
        start = offset - offset % _PAGE
        end = min(offset + nbytes, len(m))
        for a in range(start, end, _STEP):
            if stop is not None and stop.is_set():
                return done
            length = min(_STEP, end - a)
            if not _advise(base, a, length, populate):
                if not populate or not _advise(base, a, length, False):
                    return done
                populate = False
            done += length if populate else 0
        del anchor
    return done


def start_prefault(maps: Mapping[str, mmap.mmap],
                   ranges: Iterable[tuple[str, int, int]]) -> tuple[threading.Thread, threading.Event]:
    """`prefault` in a daemon thread; set the returned event to stop it early."""
    stop = threading.Event()
    work = list(ranges)
    thread = threading.Thread(target=prefault, args=(maps, work, stop), name="oss-prefault",
                              daemon=True)
    thread.start()
    return thread, stop
