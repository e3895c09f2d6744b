"""`status` (chain, sources, health, hook) and `cache list|purge` with real state files."""

from __future__ import annotations

import json
import time

import pytest

from pip_91n.chain.health import HealthStore
from pip_91n.downloads.partials import Journal, PartialMeta, PartialStore

from .conftest import CliEnv, Runner

SHA_A = "a" * 64
SHA_B = "b" * 64


def make_state(cli_env: CliEnv, *names: str) -> None:
    health = HealthStore(cli_env.cache / "health.json")
    now = time.time()
    health.record_success(names[0], 0.042, now=now - 30)
    health.record_failure(names[1], "connect failed: refused", now=now)
    health.record_failure(names[1], "connect failed: refused", now=now)
    store = PartialStore(cli_env.cache)
    store.root.mkdir(parents=True, exist_ok=True)
    store.save_meta(PartialMeta(SHA_A, "big-1.0-py3-none-any.whl", 1000))
    store.path(SHA_A, ".part").write_bytes(b"x" * 400)
    journal = Journal(store.path(SHA_A, ".ranges"))
    journal.record(0, 400)
    journal.close()
    store.save_meta(PartialMeta(SHA_B, "done-1.0-py3-none-any.whl", 10))
    store.path(SHA_B, ".complete").write_bytes(b"y" * 10)


def test_status_json(cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                     mirrors, dep_tree) -> None:
    m0, m1 = mirrors(dep_tree, [None, "refused"])
    monkeypatch.setenv("PIP_91N_MIRRORS", f"{m0.simple_url},{m1.simple_url}")
    assert cli("config", "set", "timeout", "4").code == 0
    names = [f"127.0.0.1:{m.port}/simple" for m in (m0, m1)]
    make_state(cli_env, *names)
    r = cli("status", "--json", "--no-pip")
    assert r.code == 0, r.err
    data = r.json
    assert data["chain_order"] == "as configured"
    assert [c["url"] for c in data["chain"]] == [m0.simple_url, m1.simple_url]
    ok, bad = data["chain"]
    assert ok["failures"] == 0 and ok["latency"] == pytest.approx(0.042)
    assert bad["failures"] == 2 and bad["skipped_until"] > time.time()
    assert bad["last_reason"] == "connect failed: refused"
    sources = {s["key"]: s["source"] for s in data["settings"]}
    assert sources["mirrors"] == "PIP_91N_MIRRORS"
    assert sources["timeout"] == f"{cli_env.config}:3"
    assert sources["hedge_delay"] == "built-in default"
    assert data["cache"] == {"dir": str(cli_env.cache), "partials": 2,
                             "bytes": data["cache"]["bytes"]}
    hook = data["hook"]
    assert hook["installed"] is False and hook["active"] is False  # the test interpreter
    assert hook["pip"]
    # and for people
    text = cli("status", "--no-pip").out
    assert "skipped for" in text and "2 failures" not in text
    assert "ok 30 s ago" in text and "42 ms" in text
    assert "PIP_91N_MIRRORS" in text and "hook file" in text


def test_status_auto_uses_cached_ranking_without_probing(cli: Runner, cli_env: CliEnv) -> None:
    r = cli("status", "--json", "--no-pip").json
    assert r["chain_order"].startswith("auto, not ranked yet")
    assert r["chain"][-1]["name"] == "pypi"
    cli_env.cache.mkdir(parents=True, exist_ok=True)
    order = ["pypi", "aliyun", "tuna", "91n", "bfsu", "ustc", "tencent", "huawei", "sjtu"]
    (cli_env.cache / "auto-ranking.json").write_text(
        json.dumps({"at": time.time() - 7200, "order": order}))
    r = cli("status", "--json", "--no-pip").json
    assert r["chain_order"] == "auto, ranked 2.0 h ago"
    assert [c["name"] for c in r["chain"]] == order


def test_status_reports_disable(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_DISABLE", "1")
    r = cli("status", "--no-pip")
    assert "PIP_91N_DISABLE is set" in r.out
    assert cli("status", "--json", "--no-pip").json["hook"]["disabled"] is True


def test_cache_list_and_purge(cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_MIRRORS", "tuna,pypi")
    make_state(cli_env, "tuna", "pypi")
    data = cli("cache", "list", "--json").json
    partials = {p["sha256"]: p for p in data["partials"]}
    assert partials[SHA_A]["filename"] == "big-1.0-py3-none-any.whl"
    assert partials[SHA_A]["done"] == 400 and partials[SHA_A]["size"] == 1000
    assert partials[SHA_B]["complete"] is True
    assert partials[SHA_B]["filename"] == "done-1.0-py3-none-any.whl"  # named, not "?"
    assert {h["name"] for h in data["health"]} == {"tuna", "pypi"}
    text = cli("cache", "list").out
    assert "40% of 1000 B" in text and "complete" in text and "mirror health" in text
    assert "done-1.0-py3-none-any.whl" in text and "?" not in text
    # a held lock keeps its entry
    lock = PartialStore(cli_env.cache).lock(SHA_A)
    assert lock.try_acquire()
    try:
        r = cli("cache", "purge", "--partials", "--json").json
    finally:
        lock.release()
    assert r["partials_removed"] == 1 and r["partials_in_use"] == 1
    assert (cli_env.cache / "health.json").exists()
    r = cli("cache", "purge")
    assert r.code == 0 and "removed 1 partial downloads" in r.out
    assert "removed mirror health state" in r.out
    assert not (cli_env.cache / "health.json").exists()
    assert sorted(p.name for p in cli_env.cache.rglob("*") if p.is_file()) == []  # no locks
    after = cli("cache", "list", "--json").json
    assert after["partials"] == [] and after["health"] == []


def test_health_cells_are_short_and_counted_in_words() -> None:
    from pip_91n.cli.status import health_text

    row = {"latency": None, "skipped_until": None, "failures": 1, "last_success": None,
           "last_reason": "connect failed: " + "HTTPSConnectionPool(host='x', port=443) " * 9}
    _lat, _n, state, style = health_text(row)
    assert state.startswith("1 failure: connect failed") and len(state) <= 75, state
    assert style == "warn" and health_text({**row, "failures": 3})[2].startswith("3 failures:")
