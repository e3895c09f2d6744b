"""Resume rules of the download engine, pure: which headers to send, what a response means.

``judge`` is pip's resume logic (``network/download.py``) as a table: a 206 must start where
we asked and announce the expected total; a 200 to a range request means "start again from
zero"; a 416 to the probe after a body without length means "there is nothing more". No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, NamedTuple

__all__ = ["FATAL_STATUS", "Verdict", "judge", "parse_content_range", "range_headers"]

#: Statuses that drop a source at once: the file is not there for us.
FATAL_STATUS = frozenset({401, 403, 404, 410, 451})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total or None)`` of ``bytes first-last/total``; None if malformed."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def range_headers(start: int, end: int | None, size: int | None,
                  validator: str | None) -> dict[str, str]:
    """Headers to fetch ``[start, end)`` (``end`` None: to the end). ``validator`` is the ETag
    or Last-Modified this same URL sent before; it becomes ``If-Range`` when resuming."""
    closed = end is not None and (size is None or end < size)
    if start == 0 and not closed:
        return {}
    headers = {"Range": f"bytes={start}-" + (f"{end - 1}" if closed and end else "")}
    if validator and start > 0:
        headers["If-Range"] = validator
    return headers


class Verdict(NamedTuple):
    """What to do with a response: ``accept`` its body (``total``: the full size it
    announces), ``restart`` from zero with it, ``eof`` (nothing beyond what we have), or
    ``fail`` this source (``fatal``: drop it at once)."""

    action: Literal["accept", "restart", "eof", "fail"]
    total: int | None = None
    reason: str = ""
    fatal: bool = False


def _fail(reason: str, fatal: bool = True) -> Verdict:
    return Verdict("fail", reason=reason, fatal=fatal)


def judge(status: int, headers: Mapping[str, str], *, start: int, size: int | None,
          probing: bool = False) -> Verdict:
    """The verdict on a response to a request for bytes from ``start`` of a file of ``size``
    bytes (None: unknown). ``probing``: the request checks for bytes past a clean EOF."""
    if status == 416 and probing:
        return Verdict("eof")
    if status not in (200, 206):
        return _fail(f"HTTP {status}", status in FATAL_STATUS)
    if status == 206:
        cr = parse_content_range(headers.get("content-range"))
        if cr is None:
            return _fail("206 without a valid Content-Range")
        first, _, total = cr
        if first != start:
            return _fail(f"Content-Range starts at {first}, asked for {start}")
    else:
        length = headers.get("content-length", "")
        total = int(length) if length.isdigit() else None
    if size is not None and total is not None and total != size:
        return _fail(f"serves {total} bytes, expected {size}")
    if status == 200 and start > 0:
        return Verdict("restart", total)
    return Verdict("accept", total)
