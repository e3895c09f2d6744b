"""``DownloadStream``: a download read like a response body, while it downloads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from pip_91n.downloads.engine import Download
from pip_91n.downloads.files import hash_file, pread
from pip_91n.errors import DownloadFailed

__all__ = ["DownloadStream"]


class DownloadStream:
    """A download read like a response body: ``read(n)``, iteration, ``close()``.

    The download runs in a background thread (into the cache dir, as ``fetch`` does); ``read``
    returns bytes as they arrive, in order, except the last one, which waits for the sha256
    check. ``read`` then returns b"" at the end, or raises ``DownloadFailed``. If a restart
    replaced bytes already handed out, and the verified file differs in them, ``read`` raises
    instead of silently joining two different files.

    ``size`` is the expected length once known (``Content-Length`` for a wrapper),
    ``path`` the verified file in the cache dir after the end.
    """

    def __init__(self, download: Download) -> None:
        self._download = download
        self._st = download.state
        self.sha256 = download.sha256
        self.filename = download.filename
        self._pos = 0
        self._fd: int | None = None
        self._hasher = hashlib.sha256()
        self._gen: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pip-91n-stream-{download.sha256[:8]}")
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(BaseException):
            self._download.run()

    @property
    def size(self) -> int | None:
        return self._st.size

    def tell(self) -> int:
        return self._pos

    @property
    def path(self) -> Path | None:
        return self._st.data_path if self._st.verified else None

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the download to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_size(self, timeout: float) -> int | None:
        """Block until the size is known (or the download ended), at most ``timeout`` s."""
        st = self._st
        with st.cond:
            st.cond.wait_for(lambda: st.size is not None or st.finished, timeout)
            return st.size

    def _check_replaced(self, path: Path) -> None:
        """After a restart: the bytes already handed out must equal the verified file's."""
        if self._pos and hash_file(path, self._pos) != self._hasher.hexdigest():
            raise DownloadFailed(self.filename, [*self._st.attempts]) from None

    def read(self, n: int = -1) -> bytes:
        if self._closed:
            raise ValueError("read from a closed DownloadStream")
        st = self._st
        for _ in range(10_000_000):  # bounded: each turn waits <= 0.2 s or returns
            with st.cond:
                if st.error is not None:
                    if isinstance(st.error, DownloadFailed):
                        raise st.error
                    raise DownloadFailed(self.filename, st.attempts) from st.error
                view = st.view()
                if self._gen is not None and view.generation != self._gen and self._pos:
                    if not view.final:
                        st.cond.wait(0.2)
                        continue
                    assert view.path is not None
                    self._check_replaced(view.path)
                self._gen = view.generation
                if self._pos >= view.end:
                    if view.final:
                        return b""
                    st.cond.wait(0.2)
                    continue
            take = view.end - self._pos if n is None or n < 0 else min(n, view.end - self._pos)
            if self._fd is None:
                assert view.path is not None
                try:
                    self._fd = os.open(view.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except FileNotFoundError:  # renamed to .complete just now: ask again
                    continue
            data = pread(self._fd, take, self._pos)
            with st.cond:
                if st.generation != view.generation:
                    continue  # a restart raced with this read: read again
            self._pos += len(data)
            self._hasher.update(data)
            return data
        raise DownloadFailed(self.filename, st.attempts)

    def skip(self, n: int, digest: bytes) -> None:
        """Read past the first ``n`` bytes, which must hash (sha256) to ``digest``: a reader
        that reopened a download after a failure passes over what it already handed on.
        ``DownloadFailed`` when they differ or the download ends first."""
        check, left = hashlib.sha256(), n
        while left:
            chunk = self.read(min(left, 64 * 1024))
            if not chunk:
                break
            check.update(chunk)
            left -= len(chunk)
        if left or check.digest() != digest:
            raise DownloadFailed(self.filename or "", [])

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(256 * 1024)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Stop reading. An unfinished download is cancelled (its partial stays, to resume);
        a finished one is removed from the cache dir: the reader has it now."""
        if self._closed:
            return
        self._closed = True
        if not self._st.finished:
            self._download.cancel()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._st.verified:
            self._download.discard()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> DownloadStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
