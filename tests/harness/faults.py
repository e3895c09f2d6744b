"""Faults a loopback mirror can inject, as frozen dataclasses.

Every fault has three selectors:

- ``kind``: which requests it hits: ``"page"`` (``/simple/...``), ``"file"`` (distribution
  files), ``"metadata"`` (PEP 658 ``.metadata`` files) or ``"any"``;
- ``match``: a substring of the request path (a project name, a file name), ``None`` = all;
- ``times``: only the first N matching requests get it, ``None`` = every one.

Several faults combine: a request gets every fault that matches it, e.g. ``SlowFirstByte`` +
``Throttle`` + ``ResetAfter``. A response-replacing fault (``BlackHole``, ``HTTPStatus``,
``MetadataMissing``) wins over body faults. ``Stale`` changes what the mirror lists.
A refused port is not a fault of a running server: use :func:`tests.harness.refused_url`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .index import normalize

__all__ = [
    "BlackHole",
    "Corrupt",
    "Fault",
    "FaultPlan",
    "HTTPStatus",
    "Kind",
    "MetadataMissing",
    "NotFound",
    "ResetAfter",
    "ServerError",
    "SlowFirstByte",
    "Stale",
    "Throttle",
    "TooManyRequests",
    "Truncate",
    "WrongContentType",
]

Kind = Literal["page", "file", "metadata", "any"]
KINDS = ("page", "file", "metadata", "any")


@dataclass(frozen=True)
class Fault:
    """Base of all faults: the selectors."""

    kind: Kind = "any"
    match: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None")

    def selects(self, kind: str, path: str) -> bool:
        return (self.kind == "any" or self.kind == kind) and (self.match is None or self.match in path)


@dataclass(frozen=True)
class BlackHole(Fault):
    """Read the request, never answer; close the connection after ``hold`` seconds (or at stop)."""

    hold: float = 10.0


@dataclass(frozen=True)
class SlowFirstByte(Fault):
    """Wait ``delay`` seconds before the status line."""

    delay: float = 1.0


@dataclass(frozen=True)
class Throttle(Fault):
    """Send the body at most ``rate`` bytes per second (total time >= size / rate)."""

    rate: float = 100_000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rate <= 0:
            raise ValueError("rate must be > 0")


@dataclass(frozen=True)
class HTTPStatus(Fault):
    """Answer with ``status`` (a short text body) instead of the content."""

    status: int = 503
    retry_after: int | None = None  # seconds, sent as Retry-After when set


@dataclass(frozen=True)
class ServerError(HTTPStatus):
    """HTTP 503 (or another 5xx given as ``status``)."""

    status: int = 503


@dataclass(frozen=True)
class TooManyRequests(HTTPStatus):
    """HTTP 429 with ``Retry-After``."""

    status: int = 429
    retry_after: int | None = 1


@dataclass(frozen=True)
class NotFound(HTTPStatus):
    """HTTP 404 for content the mirror has."""

    status: int = 404


@dataclass(frozen=True)
class MetadataMissing(Fault):
    """Pages keep advertising PEP 658 metadata, but ``.metadata`` requests get 404."""

    kind: Kind = "metadata"


@dataclass(frozen=True)
class ResetAfter(Fault):
    """Send the headers and ``nbytes`` of the body, then reset the connection (TCP RST).

    Every matching request gets it; ``times=1`` resets only the first one ("once")."""

    nbytes: int = 0


@dataclass(frozen=True)
class Truncate(Fault):
    """Content-Length announces the full body; send ``nbytes`` (default: half), then close."""

    nbytes: int | None = None


@dataclass(frozen=True)
class Corrupt(Fault):
    """Flip ``count`` bytes (XOR 0xFF) starting at ``offset`` (default: the middle); same length."""

    offset: int | None = None
    count: int = 1


@dataclass(frozen=True)
class Stale(Fault):
    """The mirror lags: the newest version of each project (only of the project named
    ``match`` when given) is missing from pages, files and metadata, and serials are lower.
    ``kind`` is ignored; ``times`` counts requests of any kind."""

    def covers(self, project: str) -> bool:
        return self.match is None or normalize(self.match) == normalize(project)


@dataclass(frozen=True)
class WrongContentType(Fault):
    """Send the right body with a wrong ``Content-Type``."""

    kind: Kind = "page"
    content_type: str = "text/plain"


class FaultPlan:
    """The faults of one server with their remaining counts; thread-safe."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: list[list[object]] = []
        self.set(faults)

    def set(self, faults: Iterable[Fault]) -> None:
        entries: list[list[object]] = []
        for f in faults:
            if not isinstance(f, Fault):
                raise TypeError(f"not a Fault: {f!r}")
            entries.append([f, f.times])
        with self._lock:
            self._entries = entries

    def add(self, fault: Fault) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"not a Fault: {fault!r}")
        with self._lock:
            self._entries.append([fault, fault.times])

    @property
    def faults(self) -> tuple[Fault, ...]:
        with self._lock:
            return tuple(e[0] for e in self._entries)  # type: ignore[misc]

    def take(self, kind: str, path: str) -> list[Fault]:
        """The faults for one request; counts down the limited ones. ``Stale`` faults are
        taken by every request (their ``match`` names a project, see :meth:`Stale.covers`)."""
        out: list[Fault] = []
        with self._lock:
            for entry in self._entries:
                fault, left = entry
                assert isinstance(fault, Fault)
                if not isinstance(fault, Stale) and not fault.selects(kind, path):
                    continue
                if left is not None:
                    assert isinstance(left, int)
                    if left <= 0:
                        continue
                    entry[1] = left - 1
                out.append(fault)
        return out
