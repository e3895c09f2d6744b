"""Benchmark: 50 project pages through a mirror chain whose head is broken, side by side with a
chain of only the healthy mirror, in one run (loopback mirrors from tests.harness).

Heads: a black hole (accepts, never answers), a refused port, and a mirror answering 503.
Each scenario gets a fresh ``FailoverTransport`` and a fresh health memory (a new cache dir),
so the first page pays for discovering the broken head; the goal is about the pages after
that: <= 1.2x the healthy-only chain. Defaults are the product's (timeout 5 s, hedge 0.75 s).

The ratio compares the best of ``--rounds`` interleaved rounds (a shared 2-core machine adds
bimodal noise that a median does not remove); the median is printed beside it.

Usage: ``python bench/chain_pages.py [--pages 50] [--rounds 15] [--nagle]``; prints a Markdown
table (for docs/benchmarks.md) and writes bench/results/chain_pages.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from pip_91n.chain.health import HealthStore  # noqa: E402
from pip_91n.chain.transport import FailoverTransport  # noqa: E402
from pip_91n.settings.catalog import LAYOUT_PYPI, Mirror  # noqa: E402
from pip_91n.settings.values import DEFAULT_HEDGE_DELAY, DEFAULT_TIMEOUT  # noqa: E402
from tests.harness import (  # noqa: E402
    BlackHole,
    MirrorServer,
    PackageIndex,
    RefusedMirror,
    ServerError,
    WheelSpec,
    build_index,
)


def mirror_of(server: MirrorServer | RefusedMirror, name: str) -> Mirror:
    if isinstance(server, RefusedMirror):
        return Mirror(name, server.simple_url)
    return Mirror(name, server.simple_url, server.url + "/packages/", LAYOUT_PYPI)


def run_chain(chain: list[Mirror], projects: list[str], cache: Path, timeout: float,
              hedge: float) -> tuple[float, float]:
    """(seconds for the first page, seconds for the rest)."""
    transport = FailoverTransport(chain, health=HealthStore(cache / "health.json"),
                                  timeout=timeout, hedge_delay=hedge)
    with httpx.Client(transport=transport) as client:
        t0 = time.perf_counter()
        first = client.get(f"https://pypi.org/simple/{projects[0]}/")
        t1 = time.perf_counter()
        for p in projects[1:]:
            r = client.get(f"https://pypi.org/simple/{p}/")
            assert r.status_code == 200, (p, r.status_code)
        t2 = time.perf_counter()
    assert first.status_code == 200
    return t1 - t0, t2 - t1


def run_direct(simple_url: str, projects: list[str]) -> tuple[float, float]:
    """Plain httpx straight to the healthy mirror, no pip-91n: the floor."""
    with httpx.Client() as client:
        t0 = time.perf_counter()
        client.get(f"{simple_url}{projects[0]}/").raise_for_status()
        t1 = time.perf_counter()
        for p in projects[1:]:
            client.get(f"{simple_url}{p}/").raise_for_status()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ap.add_argument("--hedge", type=float, default=DEFAULT_HEDGE_DELAY)
    ap.add_argument("--nagle", action="store_true",
                    help="leave Nagle on in the harness server (its header and body writes then "
                         "meet the client's delayed ACK: ~40 ms per keep-alive request)")
    args = ap.parse_args(argv)
    if args.nagle:
        # The harness server sets TCP_NODELAY (socketserver's documented switch); --nagle turns
        # it off again to show what the ~40 ms delayed-ACK wait per keep-alive request costs.
        from tests.harness import server as harness_server

        harness_server._Handler.disable_nagle_algorithm = False

    work = Path(tempfile.mkdtemp(prefix="pip91n-bench-chain-"))
    projects = [f"proj-{i:02d}" for i in range(args.pages)]
    index: PackageIndex = build_index(work / "wheels", [WheelSpec(p, "1.0") for p in projects])
    good = MirrorServer(index, name="good").start()
    hole = MirrorServer(index, faults=[BlackHole(hold=60.0)], name="hole").start()
    busy = MirrorServer(index, faults=[ServerError()], name="busy").start()
    refused = RefusedMirror("refused").start()
    healthy = mirror_of(good, "good")
    scenarios = {
        "healthy mirror only (baseline)": [healthy],
        "head: black hole": [mirror_of(hole, "hole"), healthy],
        "head: refused port": [mirror_of(refused, "refused"), healthy],
        "head: HTTP 503": [mirror_of(busy, "busy"), healthy],
    }
    direct = "plain httpx to the healthy mirror (no pip-91n)"
    results: dict[str, dict[str, list[float]]] = {
        k: {"first": [], "rest": []} for k in [*scenarios, direct]}
    try:
        for rnd in range(args.rounds):  # interleaved, so drift hits every scenario alike
            for name, chain in scenarios.items():
                first, rest = run_chain(chain, projects, work / f"cache-{rnd}-{len(name)}",
                                        args.timeout, args.hedge)
                results[name]["first"].append(first)
                results[name]["rest"].append(rest)
            first, rest = run_direct(good.simple_url, projects)
            results[direct]["first"].append(first)
            results[direct]["rest"].append(rest)
    finally:
        for s in (good, hole, busy, refused):
            s.stop()

    base = results["healthy mirror only (baseline)"]
    base_best, base_med = min(base["rest"]), statistics.median(base["rest"])
    n = args.pages
    print(f"{n} project pages, {args.rounds} rounds (best and median); timeout {args.timeout:g} s,"
          f" hedge {args.hedge:g} s; TCP_NODELAY {'off' if args.nagle else 'on'}; "
          f"{platform.python_implementation()} {platform.python_version()}\n")
    print(f"| chain | first page (median) | next {n - 1} pages, best | vs baseline, best "
          f"| next {n - 1} pages, median | vs baseline, median |")
    print("|---|---|---|---|---|---|")
    table = {}
    for name, r in results.items():
        first = statistics.median(r["first"])
        best, med = min(r["rest"]), statistics.median(r["rest"])
        table[name] = {"first_s": first, "rest_best_s": best, "rest_median_s": med,
                       "ratio_best": best / base_best, "ratio_median": med / base_med, "runs": r}
        print(f"| {name} | {first * 1000:.0f} ms | {best * 1000:.0f} ms "
              f"({best / (n - 1) * 1000:.2f} ms/page) | **{best / base_best:.2f}x** | "
              f"{med * 1000:.0f} ms | {med / base_med:.2f}x |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chain_pages.json").write_text(json.dumps(
        {"pages": n, "rounds": args.rounds, "timeout": args.timeout, "hedge": args.hedge,
         "results": table}, indent=2))
    worst = max(v["ratio_best"] for k, v in table.items() if k != direct)
    print(f"\nworst ratio after the first failure (best of {args.rounds}): {worst:.2f}x "
          "(goal <= 1.2x)")
    return 0 if worst <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
