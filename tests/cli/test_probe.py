"""`probe`: parallel, bounded, best first; --save writes the ranking to the user config."""

from __future__ import annotations

import sys
import time

from tests.harness import BlackHole, SlowFirstByte

from .conftest import CliEnv, Runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_probe_ranks_best_first_within_the_budget(cli: Runner, cli_env: CliEnv, monkeypatch,  # type: ignore[no-untyped-def]
                                                  mirrors, dep_tree) -> None:
    slow, dead, hole, fast = mirrors(dep_tree, [SlowFirstByte(delay=0.4), "refused",
                                                BlackHole(hold=30), None])
    chain = ",".join(m.simple_url for m in (slow, dead, hole, fast))
    monkeypatch.setenv("PIP_91N_MIRRORS", chain)
    t0 = time.monotonic()
    r = cli("probe", "--project", "app", "--budget", "1.5", "--json")
    elapsed = time.monotonic() - t0
    assert r.code == 0, r.err
    assert elapsed < 3.0  # the black hole does not hold the probe past its budget
    results = r.json["results"]
    assert [x["url"] for x in results] == [fast.simple_url, slow.simple_url, dead.simple_url,
                                           hole.simple_url]
    assert [x["ok"] for x in results] == [True, True, False, False]
    assert results[0]["latency"] < results[1]["latency"]
    assert results[1]["latency"] >= 0.4
    assert results[0]["nbytes"] > 0 and results[0]["throughput"] > 0
    assert results[2]["error"] == "connect failed: connection refused"
    assert "1.5 s" in results[3]["error"] or "timed out" in results[3]["error"]
    # the table, plain text: best first, failures last
    table = cli("probe", "--project", "app", "--budget", "1.5").out.splitlines()
    assert table[0].split()[:3] == ["#", "mirror", "latency"]
    assert table[1].startswith("1  ") and f"{fast.port}" in table[1]
    assert table[2].startswith("2  ") and f"{slow.port}" in table[2]


def test_probe_save_writes_ranking_to_user_config(cli: Runner, cli_env: CliEnv, mirrors,  # type: ignore[no-untyped-def]
                                                  dep_tree) -> None:
    slow, dead, fast = mirrors(dep_tree, [SlowFirstByte(delay=0.3), "refused", None])
    r = cli("probe", "--project", "app", "--budget", "2", "--save",
            slow.simple_url, dead.simple_url, fast.simple_url)
    assert r.code == 0, r.err
    assert "saved mirrors = " in r.out
    saved = tomllib.loads(cli_env.config.read_text())
    assert saved == {"mirrors": [fast.simple_url, slow.simple_url]}
    # the saved chain is what pip-91n now uses
    assert cli("config", "get", "mirrors").out.strip() == f"{fast.simple_url},{slow.simple_url}"


def test_probe_nothing_answers_exit_1_nothing_saved(cli: Runner, cli_env: CliEnv,  # type: ignore[no-untyped-def]
                                                    mirror_factory) -> None:
    dead = mirror_factory.refused()
    r = cli("probe", "--save", "--budget", "1", dead.simple_url)
    assert r.code == 1 and "nothing saved" in r.err
    assert not cli_env.config.exists()


def test_probe_unknown_name_is_usage_error(cli: Runner) -> None:
    r = cli("probe", "nosuch")
    assert r.code == 2 and "unknown mirror 'nosuch'" in r.err


def test_probe_live_view_on_a_terminal(cli: Runner, mirrors, dep_tree) -> None:  # type: ignore[no-untyped-def]
    (m,) = mirrors(dep_tree, 1)
    r = cli("probe", "--color", "always", "--project", "app", "--budget", "2", m.simple_url)
    assert r.code == 0 and "\x1b[" in r.out and "127.0.0.1" in r.out and "ok" in r.out


def test_probe_of_an_auto_chain_refreshes_the_ranking(cli: Runner, cli_env: CliEnv,  # type: ignore[no-untyped-def]
                                                      monkeypatch, mirrors, dep_tree) -> None:
    """With a catalog of loopback mirrors, `probe` ranks the auto chain, and `status` and
    `env --format uv` then use that ranking without probing again."""
    from pip_91n.settings import catalog

    slow, dead, fast = mirrors(dep_tree, [SlowFirstByte(delay=0.3), "refused", None])
    fake = tuple(catalog.Mirror(name, m.simple_url) for name, m in
                 (("slow", slow), ("dead", dead), ("fast", fast)))
    monkeypatch.setattr(catalog, "BUILTIN_MIRRORS", fake)
    assert cli("status", "--json", "--no-pip").json["chain_order"].startswith("auto, not ranked")
    assert cli("probe", "--project", "app", "--budget", "2").code == 0
    status = cli("status", "--json", "--no-pip").json
    assert status["chain_order"].startswith("auto, ranked")
    assert [c["name"] for c in status["chain"]] == ["fast", "slow", "dead"]
    uv = cli("env", "--format", "uv", "--json").json["variables"]
    assert uv == {"UV_INDEX": f"fast={fast.simple_url}", "UV_DEFAULT_INDEX": slow.simple_url}
