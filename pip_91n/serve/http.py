"""HTTP decisions of the local index, as pure functions: content negotiation (PEP 691, as
PyPI does it), byte ranges, validators and the cache headers each kind of answer carries.

Cache headers are what lets a standard load balancer or CDN sit in front of several
servers: pages are fresh for a short time and vary by ``Accept``; files are immutable
(their URL names their sha256); answers served from the last good copy while every mirror
is down say so and are not cached downstream.
"""

from __future__ import annotations

from typing import NamedTuple

from pip_91n.index.pages import JSON_TYPE
from pip_91n.serve.simple import HTML_TYPE

__all__ = [
    "FILE_CACHE",
    "PAGE_FRESH",
    "ROOT_FRESH",
    "STALE_CACHE",
    "ByteRange",
    "etag_matches",
    "negotiate",
    "page_cache_control",
    "parse_range",
]

#: Seconds a project page is fresh (here and downstream), and the root page.
PAGE_FRESH = 60
ROOT_FRESH = 600
FILE_CACHE = "public, max-age=31536000, immutable"
STALE_CACHE = "no-store"

_ALIASES = {
    JSON_TYPE: JSON_TYPE,
    HTML_TYPE: HTML_TYPE,
    "text/html": "text/html",
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
    "*/*": "text/html",
    "text/*": "text/html",
    "application/*": JSON_TYPE,
}
_FORMATS = {"json": JSON_TYPE, "html": HTML_TYPE, JSON_TYPE: JSON_TYPE, HTML_TYPE: HTML_TYPE,
            "text/html": "text/html"}


def negotiate(accept: str | None, query_format: str | None = None) -> str | None:
    """The content type of a page for ``Accept`` (q-values honoured, ties to the type listed
    first; none or empty: HTML) or PyPI's ``?format=``; None means 406."""
    if query_format:
        return _FORMATS.get(query_format.strip().lower())
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for pos, item in enumerate(accept.split(",")[:32]):
        parts = [p.strip() for p in item.split(";")]
        served = _ALIASES.get(parts[0].lower())
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if served is None or not 0 < q <= 1:
            continue
        if best is None or q > best[0]:
            best = (q, pos, served)
    return None if best is None else best[2]


def page_cache_control(fresh: int, *, stale: bool) -> str:
    if stale:
        return STALE_CACHE
    return f"public, max-age={fresh}, stale-if-error=86400"


class ByteRange(NamedTuple):
    """``[start, end)`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | bool | None:
    """A single ``Range: bytes=...`` against ``size``: the range; None to send the whole
    file (no header, several ranges, another unit, or syntax the RFC says to ignore); False
    when the range cannot be satisfied (416)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or last.isdigit()) or \
            (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return ByteRange(max(0, size - n), size, size)
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return ByteRange(start, end, size)


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` (or ``If-Range``) names ``etag`` (weak comparison)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))
