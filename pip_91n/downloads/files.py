"""Bytes on disk for downloads: positional reads and writes, hashing, moving into place.

``PrefixHash`` hashes the contiguous prefix of a partial while it downloads, so the check at
the end reads only what arrived last (a 13 GB model file is not read twice). ``move_into``
puts a verified file at its destination atomically and leaves no copy behind. ``sha256_mismatch`` is the one wording
of a hash that did not match, for the engine, the chain and the pip hook alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pip_91n.downloads.state import DownloadState

__all__ = ["PrefixHash", "copy_beside", "hash_file", "move_into", "pread", "pwrite",
           "sha256_mismatch"]

_HAVE_PREAD = hasattr(os, "pread")  # not on Windows


def sha256_mismatch(got: str, expected: str) -> str:
    """The reason given when bytes do not hash to what a page named."""
    return f"sha256 mismatch (got {got[:12]}..., expected {expected[:12]}...)"


def pread(fd: int, n: int, offset: int) -> bytes:
    """``os.pread``; elsewhere seek + read (then the caller must own ``fd`` or hold its lock)."""
    if _HAVE_PREAD:
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows only
    return os.read(fd, n)  # pragma: no cover


def pwrite(fd: int, data: memoryview, offset: int) -> int:
    """``os.pwrite``; elsewhere seek + write under the caller's lock."""
    if _HAVE_PREAD:
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows only
    return os.write(fd, data)  # pragma: no cover


def hash_file(path: str | os.PathLike[str], limit: int | None = None) -> str:
    """sha256 hex of ``path`` (of its first ``limit`` bytes when given)."""
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


def move_into(src: Path, dest: Path) -> Path:
    """Move the verified ``src`` to ``dest`` atomically: a rename on the same filesystem,
    else a copy beside ``dest`` renamed into place, then ``src`` removed. ``dest`` is the old
    file or the new one, never half of one, and no second copy stays behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
        return dest
    except OSError:
        pass  # another filesystem (a Docker volume, say): copy, then drop the source
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        src.unlink()
    return dest


def copy_beside(src: Path) -> Path:
    """A second name for ``src`` in its directory (a hard link, else a copy), for a caller
    that takes it away while ``src`` stays for others."""
    tmp = src.with_name(f"{src.name}.{os.getpid()}.{threading.get_ident()}.copy")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    return tmp


class PrefixHash:
    """sha256 of the contiguous prefix of a download's partial, advanced while it runs."""

    _STEP = 64 * 1024 * 1024  # most bytes hashed per call, to keep the caller responsive

    def __init__(self) -> None:
        self.generation = -1
        self.pos = 0
        self._h = hashlib.sha256()

    def advance(self, st: DownloadState, limit: int | None = None) -> None:
        with st.cond:
            gen, fd = st.generation, st.fd
            end = st.done.prefix() if limit is None else limit
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
                with st.cond:
                    block = pread(fd, min(4 << 20, stop - pos), pos)
            if not block:
                break
            h.update(block)
            pos += len(block)
        with st.cond:
            if st.generation == gen:  # no restart raced with the reads
                self._h, self.pos = h, pos

    def digest(self, st: DownloadState, size: int) -> str | None:
        """The digest of the first ``size`` bytes, or None if a restart got in the way."""
        self.advance(st, size)
        return self._h.hexdigest() if self.pos == size else None
