"""Response bodies on the wire: ranges, and the byte-level faults (throttle, reset, truncate,
corrupt), counting exactly the body bytes the socket accepted."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import struct
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from . import faults as F
from .index import DistFile

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from .stats import RequestRecord, StatsRecorder

__all__ = ["BodyPlan", "reset_socket", "send_body"]

_PIECE = 64 * 1024


@dataclass(frozen=True)
class BodyPlan:
    """The content (bytes or a file) and the slice [start, end) of it to send."""

    size: int
    start: int
    end: int
    etag: str
    data: bytes | None = None
    dist: DistFile | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> BodyPlan:
        etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
        return cls(len(data), 0, len(data), etag, data=data)

    @classmethod
    def from_file(cls, dist: DistFile) -> BodyPlan:
        return cls(dist.size, 0, dist.size, dist.etag, dist=dist)

    @property
    def length(self) -> int:
        return self.end - self.start

    def ranged(self, start: int, end: int) -> BodyPlan:
        return replace(self, start=start, end=end)

    def select_range(
        self, header: str | None, if_range: str | None, last_modified: str
    ) -> tuple[int, int] | Literal["unsatisfiable"] | None:
        """A single ``bytes=`` range as [start, end), ``None`` for the whole body (no Range, a
        failed If-Range, multiple or malformed ranges), or ``"unsatisfiable"`` (416)."""
        if not header:
            return None
        if if_range is not None and if_range.strip() not in (self.etag, last_modified):
            return None
        unit, _, spec = header.partition("=")
        if unit.strip().lower() != "bytes" or "," in spec:
            return None
        first, dash, last = spec.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                n = int(last)
                if n <= 0:
                    return "unsatisfiable"
                return max(self.size - n, 0), self.size
            start = int(first)
            end = self.size if last == "" else min(int(last) + 1, self.size)
        except ValueError:
            return None
        if start >= self.size or start < 0:
            return "unsatisfiable"
        if end <= start:
            return None
        return start, end

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """(offset in the full content, bytes) for the slice."""
        if self.data is not None:
            yield self.start, self.data[self.start : self.end]
            return
        assert self.dist is not None
        offset = self.start
        for chunk in self.dist.read(self.start, self.end):
            yield offset, chunk
            offset += len(chunk)


def _corrupt(chunk: bytes, offset: int, faults: list[F.Corrupt], size: int) -> bytes:
    out: bytearray | None = None
    for f in faults:
        first = size // 2 if f.offset is None else f.offset
        lo, hi = max(first, offset), min(first + f.count, offset + len(chunk))
        for pos in range(lo, hi):
            out = out if out is not None else bytearray(chunk)
            out[pos - offset] ^= 0xFF
    return chunk if out is None else bytes(out)


def _send(sock: socket.socket, data: bytes, rec: RequestRecord, recorder: StatsRecorder) -> None:
    view = memoryview(data)
    while view:
        n = sock.send(view)
        recorder.add_bytes(rec, n)
        view = view[n:]


def _wait_acked(sock: socket.socket, timeout: float) -> None:
    """Wait (bounded) until the peer has acknowledged everything we sent, so that a following
    RST cannot discard bytes still in our send queue."""
    deadline = time.monotonic() + timeout
    buf = struct.pack("i", 0)
    while time.monotonic() < deadline:
        try:
            (unacked,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf))
        except OSError:
            return
        if unacked == 0:
            return
        time.sleep(0.002)


def reset_socket(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends a real TCP RST."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # rfile (a makefile) keeps the socket object's fd open on close(); detach and close the fd
    with contextlib.suppress(OSError):
        os.close(sock.detach())


def send_body(
    h: BaseHTTPRequestHandler,
    plan: BodyPlan,
    faults: list[F.Fault],
    rec: RequestRecord,
    recorder: StatsRecorder,
    stopping: threading.Event,
) -> None:
    """Write the body with the byte-level faults of ``faults`` applied."""
    sock: socket.socket = h.connection
    length = plan.length
    resets = [f.nbytes for f in faults if isinstance(f, F.ResetAfter)]
    truncs = [length // 2 if f.nbytes is None else f.nbytes for f in faults if isinstance(f, F.Truncate)]
    reset_at = min(resets) if resets else None
    trunc_at = min(truncs) if truncs else None
    cut = min([length, *(x for x in (reset_at, trunc_at) if x is not None)])
    cut = max(cut, 0)
    rates = [f.rate for f in faults if isinstance(f, F.Throttle)]
    rate = min(rates) if rates else None
    corrupt = [f for f in faults if isinstance(f, F.Corrupt)]
    piece = max(1, min(_PIECE, int(rate / 20))) if rate else _PIECE
    sent = 0
    t0 = time.monotonic()
    for offset, chunk in plan.chunks():
        if sent >= cut:
            break
        chunk = chunk[: cut - sent]
        if corrupt:
            chunk = _corrupt(chunk, offset, corrupt, plan.size)
        for i in range(0, len(chunk), piece):
            part = chunk[i : i + piece]
            if rate:
                wait = t0 + (sent + len(part)) / rate - time.monotonic()
                if wait > 0 and stopping.wait(wait):
                    raise ConnectionAbortedError("mirror stopped")
            _send(sock, part, rec, recorder)
            sent += len(part)
    if reset_at is not None and reset_at <= cut:
        _wait_acked(sock, 2.0)
        rec.error = f"reset after {sent} bytes"
        h.close_connection = True
        reset_socket(sock)
    elif sent < length:
        rec.error = f"truncated after {sent} of {length} bytes"
        h.close_connection = True
