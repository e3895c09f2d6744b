"""``auto``: ranking (pure), the day-long cache, pip's index as head, a real loopback probe."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pip_91n.chain.probe import probe_mirrors, rank
from pip_91n.chain.ranking import RANKING_FILE, resolve_chain
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import resolve_config
from pip_91n.settings.pipconf import PipIndex
from tests.harness import MirrorServer, PackageIndex, RefusedMirror, SlowFirstByte

A, B, C = (Mirror(n, f"https://{n}.example/simple/") for n in "abc")


@pytest.mark.parametrize(
    ("lat", "order"),
    [
        ({"a": 0.3, "b": 0.1, "c": 0.2}, "bca"),
        ({"a": None, "b": 0.1, "c": None}, "bac"),
        ({"a": 0.1, "b": 0.1, "c": 0.1}, "abc"),
        ({}, "abc"),
    ],
)
def test_rank(lat: Mapping[str, float | None], order: str) -> None:
    assert "".join(m.name for m in rank([A, B, C], lat)) == order


class CountingProbe:
    def __init__(self, latencies: Mapping[str, float | None]) -> None:
        self.latencies = latencies
        self.calls = 0

    def __call__(self, mirrors: Sequence[Mirror], budget: float) -> Mapping[str, float | None]:
        self.calls += 1
        assert budget <= 2.0
        return {m.name: self.latencies.get(m.name) for m in mirrors}


def test_auto_is_probed_once_a_day_and_keeps_pypi(tmp_path: Path) -> None:
    cfg = resolve_config({}, default_cache_dir=tmp_path)
    probe = CountingProbe({"aliyun": 0.05, "pypi": 0.2, "tuna": 0.1})
    chain = resolve_chain(cfg, probe=probe, now=1000.0)
    assert [m.name for m in chain][:3] == ["aliyun", "tuna", "pypi"] and len(chain) == 9
    assert resolve_chain(cfg, probe=probe, now=1000.0 + 3600) == chain
    assert probe.calls == 1
    dead = CountingProbe({})
    chain2 = resolve_chain(cfg, probe=dead, now=1000.0 + 90000)  # a day later: probe again
    assert dead.calls == 1 and "pypi" in [m.name for m in chain2]
    assert json.loads((tmp_path / RANKING_FILE).read_text())["at"] == 91000.0


def test_pip_index_heads_the_ranked_chain(tmp_path: Path) -> None:
    cfg = resolve_config({}, default_cache_dir=tmp_path,
                         pip_index=PipIndex("https://pypi.tuna.tsinghua.edu.cn/simple", "x"))
    chain = resolve_chain(cfg, probe=CountingProbe({"pypi": 0.01}), now=5.0)
    assert [m.name for m in chain][:2] == ["tuna", "pypi"]


def test_explicit_chain_is_never_probed(tmp_path: Path) -> None:
    cfg = resolve_config({"PIP_91N_MIRRORS": "sjtu,pypi"}, default_cache_dir=tmp_path)
    probe = CountingProbe({})
    assert [m.name for m in resolve_chain(cfg, probe=probe)] == ["sjtu", "pypi"]
    assert probe.calls == 0


def test_unwritable_cache_still_ranks(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")
    cfg = resolve_config({}, default_cache_dir=blocker / "sub")
    chain = resolve_chain(cfg, probe=CountingProbe({"sjtu": 0.1}), now=1.0)
    assert chain[0].name == "sjtu"


def test_loopback_probe_is_parallel_and_bounded(tmp_path: Path, dep_tree: PackageIndex) -> None:
    with MirrorServer(dep_tree, name="fast") as fast, \
         MirrorServer(dep_tree, faults=[SlowFirstByte(delay=5.0)], name="slow") as slow, \
         RefusedMirror("dead") as dead:
        mirrors = [Mirror("slow", slow.simple_url), Mirror("dead", dead.simple_url),
                   Mirror("fast", fast.simple_url)]
        import time

        t0 = time.monotonic()
        got = probe_mirrors(mirrors, 1.0, project="app")
        took = time.monotonic() - t0
    assert took < 1.8
    assert got["fast"] is not None and got["slow"] is None and got["dead"] is None
    assert [m.name for m in rank(mirrors, got)] == ["fast", "slow", "dead"]
