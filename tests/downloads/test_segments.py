"""Pure segment bookkeeping: RangeSet, gaps, claim and steal."""

from __future__ import annotations

from pip_91n.downloads.segments import Active, RangeSet, claim, gaps, steal

MB = 1024 * 1024


def test_rangeset_merges_and_prefix() -> None:
    r = RangeSet([(10, 20), (0, 5), (5, 10), (30, 40)])
    assert r.ranges() == [(0, 20), (30, 40)]
    assert r.prefix() == 20 and r.total() == 30
    r.add(15, 35)
    assert r.ranges() == [(0, 40)]
    assert r.covers(0, 40) and not r.covers(0, 41)
    assert RangeSet([(0, 10), (20, 30)]).clip(25).ranges() == [(0, 10), (20, 25)]
    assert RangeSet([(5, 9)]).prefix() == 0


def test_gaps_exclude_done_and_busy() -> None:
    done = RangeSet([(0, 10), (50, 60)])
    assert gaps(100, done) == [(10, 50), (60, 100)]
    assert gaps(100, done, [(10, 30), (90, 100)]) == [(30, 50), (60, 90)]
    assert gaps(60, RangeSet([(0, 60)])) == []


def test_claim_splits_first_gap_among_idle_workers() -> None:
    assert claim([(0, 90 * MB)], 3, MB) == (0, 30 * MB)
    assert claim([(0, 90 * MB)], 1, MB) == (0, 90 * MB)
    assert claim([(0, MB)], 3, MB) == (0, MB)  # too small to share
    assert claim([], 2, MB) is None


def test_steal_by_speed() -> None:
    # equal speeds: halves
    assert steal([Active(1, 0, 10 * MB, 1e6)], 1e6, MB) == (1, 5 * MB)
    # thief 3x faster: takes three quarters
    assert steal([Active(1, 0, 8 * MB, 1e6)], 3e6, MB) == (1, 2 * MB)
    # picks the range that would finish last
    got = steal([Active(1, 0, 10 * MB, 1e7), Active(2, 0, 4 * MB, 1e5)], 1e7, MB)
    assert got is not None and got[0] == 2


def test_steal_endgame_takes_all_from_slow_source() -> None:
    # little left, equal speeds: not worth a request
    assert steal([Active(1, 0, MB, 1e6)], 1e6, MB) is None
    # little left on a source 100x slower that needs > 1 s: take it all
    assert steal([Active(1, 100, 100 + MB // 2, 1e4)], 1e6, MB) == (1, 100)
    # a stalled source loses its range
    assert steal([Active(1, 7, 7 + 300_000, 0.0)], None, MB) == (1, 7)
    assert steal([], 1e6, MB) is None
