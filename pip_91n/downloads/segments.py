"""Pure segment bookkeeping for multi-source downloads: which bytes are done, which to fetch next.

Ranges are half-open ``(start, end)`` byte offsets. ``RangeSet`` is the set of bytes already
written (it is what the partial's journal replays to). ``claim`` and ``steal`` are the two
scheduling decisions of a download worker, modelled on aria2's split + feedback selector:

- ``claim``: an idle worker takes its share of the first gap (the gap is split evenly among the
  workers that are idle, so three mirrors start on three thirds).
- ``steal``: with no gap left, an idle worker takes the tail of the busiest worker's range,
  sized by their observed speeds so both should finish together. A much slower (or stalled)
  source loses even its last small piece. That is how a throttled mirror loses its work to
  faster ones.

No I/O, no clock: callers pass rates in bytes per second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["Active", "RangeSet", "claim", "gaps", "steal"]

Range = tuple[int, int]


class RangeSet:
    """A set of byte offsets kept as sorted, merged, non-empty half-open ranges."""

    __slots__ = ("_ranges",)

    def __init__(self, ranges: Iterable[Range] = ()) -> None:
        self._ranges: list[Range] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        out: list[Range] = []
        placed = False
        for s, e in self._ranges:
            if e < start:
                out.append((s, e))
            elif end < s:
                if not placed:
                    out.append((start, end))
                    placed = True
                out.append((s, e))
            else:
                start, end = min(s, start), max(e, end)
        if not placed:
            out.append((start, end))
        out.sort()
        self._ranges = out

    def ranges(self) -> list[Range]:
        return list(self._ranges)

    def total(self) -> int:
        return sum(e - s for s, e in self._ranges)

    def prefix(self) -> int:
        """Length of the contiguous run that starts at byte 0."""
        if self._ranges and self._ranges[0][0] == 0:
            return self._ranges[0][1]
        return 0

    def covers(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self._ranges)

    def end(self) -> int:
        return self._ranges[-1][1] if self._ranges else 0

    def clip(self, size: int) -> RangeSet:
        return RangeSet((s, min(e, size)) for s, e in self._ranges if s < size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._ranges == other._ranges

    def __repr__(self) -> str:
        return f"RangeSet({self._ranges!r})"


def gaps(size: int, done: RangeSet, busy: Iterable[Range] = ()) -> list[Range]:
    """The ranges of ``[0, size)`` neither done nor being fetched, in order."""
    taken = RangeSet(done.ranges())
    for s, e in busy:
        taken.add(s, e)
    out: list[Range] = []
    pos = 0
    for s, e in taken.ranges():
        if s > pos:
            out.append((pos, min(s, size)))
        pos = max(pos, e)
        if pos >= size:
            break
    if pos < size:
        out.append((pos, size))
    return [(s, e) for s, e in out if e > s]


def claim(free: Sequence[Range], idle_workers: int, min_split: int) -> Range | None:
    """The range an idle worker should take: its even share of the first gap (whole when the
    share would be smaller than ``min_split``)."""
    if not free:
        return None
    start, end = free[0]
    share = (end - start) // max(1, idle_workers)
    if share < min_split or idle_workers <= 1:
        return start, end
    return start, start + share


class Active(NamedTuple):
    """A range being fetched: ``pos`` is the next byte to write, ``end`` where it stops."""

    key: int
    pos: int
    end: int
    rate: float | None  # observed bytes/s of its source; None when not measured yet


def steal(
    active: Sequence[Active],
    thief_rate: float | None,
    min_split: int,
    *,
    slow_ratio: float = 4.0,
    min_gain_s: float = 1.0,
) -> tuple[int, int] | None:
    """``(victim key, split)``: the thief takes ``[split, victim.end)`` and the victim stops at
    ``split``. None when nothing is worth taking.

    The victim is the range expected to finish last. The split makes both finish together,
    given the rates (unknown rates count as equal). If the thief's part would be under
    ``min_split`` it takes the whole rest, but only from a victim at least ``slow_ratio`` times
    slower that still needs more than ``min_gain_s`` seconds (endgame for a throttled or
    stalled source); otherwise stealing would cost more in requests than it saves.
    """
    best: tuple[float, int, Active] | None = None
    for a in active:
        remaining = a.end - a.pos
        if remaining <= 0:
            continue
        eta = remaining / (a.rate or thief_rate or 1.0)
        if best is None or (eta, remaining) > best[:2]:
            best = (eta, remaining, a)
    if best is None:
        return None
    victim = best[2]
    remaining = victim.end - victim.pos
    v = victim.rate
    t = thief_rate
    if v is None or t is None or v <= 0 or t <= 0:
        v = t = 1.0
    thief_part = int(remaining * t / (v + t))
    if thief_part >= min_split and remaining - thief_part >= min_split // 2:
        return victim.key, victim.end - thief_part
    slow = victim.rate is not None and thief_rate is not None and thief_rate >= slow_ratio * max(
        victim.rate, 1.0
    )
    stalled = victim.rate is not None and victim.rate <= 1.0
    if (slow or stalled) and (victim.rate is None or remaining / max(victim.rate, 1.0) > min_gain_s):
        return victim.key, victim.pos
    return None
