"""An inter-process file lock with a bounded, polling wait.

``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows. The lock belongs to the open file, so
two threads of one process that each open the lock also exclude each other, and the kernel
drops it when its process dies (``SIGKILL`` included): a waiter then takes over at once.

Unlike ``pip_91n._statefile.locked`` (a short blocking lock around a JSON update), a download
lock may be held for minutes, so waiting here polls, can be given up, and lets the caller look
at the holder's progress between polls.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["FileLock"]


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on ``path`` (created if missing; never deleted while in use)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; True when this object holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                return False
            # The lock file may have been deleted (by a cleaner holding the lock) between our
            # open and our lock; then we hold a lock nobody else can see. Check and retry.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                return True
            _unlock(fd)
            os.close(fd)
        return False

    def acquire(
        self,
        timeout: float | None = None,
        *,
        poll: float = 0.05,
        keep_waiting: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait for the lock: at most ``timeout`` seconds (None: no limit), and only while
        ``keep_waiting()`` (called between polls) says so. True when acquired."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(poll, 0.01)
        while True:
            if self.try_acquire():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if keep_waiting is not None and not keep_waiting():
                return False
            time.sleep(delay)
            delay = min(poll, delay * 2)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
