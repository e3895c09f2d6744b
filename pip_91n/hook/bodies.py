"""Response bodies for the adapter: files from the download engine, and ``response.raw``.

``EngineBody`` reads one file through ``pip_91n.downloads`` (failover, resume, segments,
sha256 before pip sees the bytes); ``RawBody`` is the small part of urllib3's response API
that requests and pip use (``read``, ``stream``, ``close``, ``release_conn``).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from pip_91n.downloads.options import DownloadOptions
from pip_91n.errors import DownloadFailed
from pip_91n.hook.shim import ChainShim
from pip_91n.index.routing import Resource

if TYPE_CHECKING:
    from pip_91n.downloads.stream import DownloadStream

__all__ = ["BUFFER_MAX", "EngineBody", "RawBody"]

#: Files below this size reach pip only after their sha256 matched (pip >= 25.2; older pips
#: get every file that way, having no resume logic of their own).
BUFFER_MAX = 16 * 1024 * 1024
_CHUNK = 64 * 1024


class EngineBody(io.RawIOBase):
    """A file's bytes from the download engine.

    A small file whose size a page named is first fetched with one GET from the first
    candidate (``_fast``). Otherwise, or when that fails, the project pages of live mirrors
    that have not named the file yet are read, so every mirror's copy is a candidate and the
    engine fails over (and resumes) across all of them. Files below ``shim.stream_from``
    (all files when it is None: pips without download resumption, < 25.2) are handed to pip
    only once verified, from the engine's verified file (a corrupt mirror then costs pip
    nothing). Larger ones stream as
    they arrive, the last byte held back until the sha256 matched; if a mid-stream failure
    or a restart changed bytes pip already has, ``read`` raises urllib3's ``ReadTimeoutError``
    (what pip >= 25.2 resumes after), and pip's own resume asks again for the verified file.
    """

    def __init__(self, shim: ChainShim, res: Resource, sha256: str, request_url: str,
                 options: DownloadOptions) -> None:
        super().__init__()
        self.shim, self.res, self.sha256, self.request_url = shim, res, sha256, request_url
        self.options = options
        self.pos = 0
        self.given = hashlib.sha256()
        self.extended = False
        self.stream: DownloadStream | None = None
        self.spool: IO[bytes] | None = None
        self.served_by = ""
        self.started = time.monotonic()
        self.logged = False
        shim.track(self)

    def _open(self) -> DownloadStream:
        return self.shim.open_file(self.res, self.sha256, options=self.options,
                                   on_attempt=self._attempt, request_url=self.request_url)

    def _attempt(self, url: str, reason: str | None, seconds: float) -> None:
        # failures are logged at once; the success line waits for the byte count
        if reason is None:
            self.served_by, self.started = url, time.monotonic() - seconds
        self.shim.on_attempt(url, reason, seconds, log=reason is not None)

    def _done(self, nbytes: int) -> None:
        if self.served_by and not self.logged:
            self.logged = True
            self.shim.log(self.served_by, 200, nbytes, time.monotonic() - self.started)

    def _extend(self) -> bool:
        """Read the other mirrors' pages again and reopen; False when nothing new turned up."""
        if self.extended:
            return False
        self.extended = True
        if not self.shim.more_copies(self.res, self.request_url):
            return False
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()
        return True

    def _fast(self) -> int | None:
        """Small files that arrive verified anyway, of a size a page named: one GET from
        the first candidate in this thread (``pip_91n.downloads.small``). Their size, or None
        when the engine has to do it (it then reuses, resumes and fails over as usual)."""
        known = self.shim.known_file(self.res.filename or "")
        size = known.size if known is not None else None
        limit = self.shim.stream_from
        if size is None or (limit is not None and size >= limit):
            return None
        data = self.shim.fetch_small(self.res, self.sha256, size, options=self.options,
                                     on_attempt=self._attempt, request_url=self.request_url)
        if data is None:
            return None
        self.spool = io.BytesIO(data)
        self._done(size)
        return size

    def start(self) -> int | None:
        """Start; the size once known. Raises ``DownloadFailed`` when no mirror has it."""
        size = self._fast()
        if size is not None:
            return size
        self.shim.look_up_file(self.res)  # only now: the other mirrors' pages cost requests
        self.stream = self._open()
        while True:
            size = self.stream.wait_size(3600)
            try:
                limit = self.shim.stream_from
                if size is None or limit is None or size < limit:
                    self._buffer()
                    assert self.spool is not None
                    return self.spool.seek(0, 2) if size is None else size
                return size
            except DownloadFailed:
                if not self._extend():
                    raise
            finally:
                if self.spool is not None:
                    self.spool.seek(0)

    def _buffer(self) -> None:
        """Wait until the engine verified the whole file, then read that file."""
        assert self.stream is not None
        try:
            while self.stream.read(1024 * 1024):
                pass
        except DownloadFailed:
            if self.stream.path is None:  # else: verified after a restart replaced bytes
                raise
        path = self.stream.path
        if path is None:
            raise DownloadFailed(self.res.filename or self.request_url, [])
        spool = open(path, "rb")  # noqa: SIM115 - closed with this body
        self._done(spool.seek(0, 2))
        self.stream.close()
        self.spool = spool

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if self.spool is not None:
            return self.spool.read(-1 if n is None else n)
        while True:
            assert self.stream is not None
            try:
                data = self.stream.read(-1 if n is None else n)
            except DownloadFailed:
                if not self._extend():
                    raise
                assert self.stream is not None
                self.stream.skip(self.pos, self.given.digest())
                continue
            self.pos += len(data)
            self.given.update(data)
            if not data and n != 0:
                self._done(self.pos)
            return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Done (or given up, or pip exits). An unfinished download keeps its partial for the
        next run, except with pip's ``--no-cache-dir``: then the engine drops it, and this
        waits a moment for that."""
        if self.stream is not None:
            self.stream.close()
            if not self.options.keep_partials:
                self.stream.wait(2.0)
        if self.spool is not None:
            self.spool.close()
        super().close()


class RawBody:
    """What requests and pip read from ``response.raw``: ``read``, ``stream``, ``close``."""

    def __init__(self, body: Any, on_error: Callable[[Exception], Exception] | None = None
                 ) -> None:
        self._body = body
        self._on_error = on_error
        self.closed = False

    def read(self, amt: int | None = None, decode_content: bool | None = None,
             **_: Any) -> bytes:
        if self.closed:
            return b""
        try:
            data: bytes = self._body.read(-1 if amt is None else amt)
        except DownloadFailed as exc:
            raise (self._on_error(exc) if self._on_error else exc) from exc
        if amt is None or (amt and not data):
            self.close()
        return data

    def stream(self, amt: int = _CHUNK, decode_content: bool | None = None) -> Iterator[bytes]:
        while not self.closed:
            data = self.read(amt)
            if not data:
                return
            yield data

    def isclosed(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._body.close()

    def release_conn(self) -> None:
        pass
