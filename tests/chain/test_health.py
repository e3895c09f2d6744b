"""Health memory: back-off policy (pure) and the shared file under concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pip_91n.chain.health import (
    HealthStore,
    MirrorHealth,
    after_failure,
    after_success,
    backoff_seconds,
    is_backing_off,
    split_by_health,
)
from pip_91n.settings.catalog import Mirror

A, B, C = (Mirror(n, f"https://{n}.example/simple/") for n in "abc")


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0), (8, 640.0), (9, 900.0), (100, 900.0)],
)
def test_backoff_grows_then_caps(failures: int, seconds: float) -> None:
    assert backoff_seconds(failures) == seconds


def test_failure_then_reprobe_then_success() -> None:
    h = after_failure(MirrorHealth(), 100.0, "HTTP 503")
    assert (h.failures, h.skip_until, h.last_reason) == (1, 105.0, "HTTP 503")
    assert is_backing_off(h, 104.9) and not is_backing_off(h, 105.0)  # re-probe after 5 s
    h = after_failure(h, 106.0, "connect failed")
    assert (h.failures, h.skip_until) == (2, 116.0)
    ok = after_success(h, 120.0, 0.2)
    assert (ok.failures, ok.skip_until, ok.last_success, ok.latency) == (0, 0.0, 120.0, 0.2)
    assert ok.last_failure == 106.0
    assert after_success(ok, 121.0, 1.2).latency == pytest.approx(0.5)


def test_split_by_health_keeps_order() -> None:
    health = {"b": after_failure(MirrorHealth(), 100.0, "x")}
    assert split_by_health([A, B, C], health, 101.0) == ((A, C), (B,))
    assert split_by_health([A, B, C], health, 200.0) == ((A, B, C), ())


def test_store_persists_and_is_shared(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    one = HealthStore(path)
    one.record_failure("a", "HTTP 503", now=1000.0)
    two = HealthStore(path)
    assert two.get("a").failures == 1 and two.get("a").last_reason == "HTTP 503"
    two.record_success("a", 0.1, now=1001.0)
    assert one.get("a").failures == 0  # re-read after the other store wrote
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["mirrors"]["a"]["last_success"] == 1001.0


def test_corrupt_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    path.write_text("{not json")
    store = HealthStore(path)
    assert store.snapshot() == {}
    store.record_failure("a", "x")
    assert json.loads(path.read_text())["mirrors"]["a"]["failures"] == 1
    path.write_text('{"mirrors": {"a": {"failures": "many", "latency": true}}}')
    assert HealthStore(path).get("a") == MirrorHealth()


def test_unwritable_cache_dir_keeps_working_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = HealthStore(blocker / "sub" / "health.json")
    store.record_failure("a", "x", now=1.0)
    assert store.get("a").failures == 1 and store.path is None


def test_memory_only_store() -> None:
    store = HealthStore(None)
    store.record_failure("a", "x")
    store.record_success("b", 0.5)
    assert store.get("a").failures == 1 and store.get("b").latency == 0.5


def _hammer(path: str, name: str, n: int) -> None:
    store = HealthStore(Path(path))
    for _ in range(n):
        store.record_failure(name, "boom")
        store.record_failure("shared", "boom")


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    ctx = multiprocessing.get_context("spawn" if multiprocessing.get_start_method() != "fork" else "fork")
    procs = [ctx.Process(target=_hammer, args=(str(path), f"p{i}", 20)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    snap = HealthStore(path).snapshot()
    assert snap["shared"].failures == 80
    assert all(snap[f"p{i}"].failures == 20 for i in range(4))
