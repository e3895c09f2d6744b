"""Benchmark: the pip hook of this tree against the hook of another git revision, side by side.

For a refactor ("behaviour and cost do not change"): three venvs with the same pip, one with
this tree's wheel, one with REV's wheel, one stock, and one healthy loopback mirror. First
``python -c pass`` in each, interleaved (the start-up cost of the ``.pth`` hook); then each
round installs 20 small packages with each of them, interleaved, into fresh targets with no
pip cache; the table gives the per-round median of CPU and wall-time ratios (rounds share the
machine's slow spells, so per-round ratios are steadier than ratios of medians).

Usage: ``python bench/hook_ab.py REV [--pip VERSION] [--rounds 15]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hook_startup import PACKAGES, hooked_env, pip_install, time_starts  # same measurements

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import MirrorServer, WheelSpec, build_index  # noqa: E402
from tests.harness.venvs import (  # noqa: E402
    build_project_wheel,
    clean_env,
    create_venv,
    sealed_env,
)


def wheel_of(rev: str, base: Path) -> Path:
    """The project wheel built from git revision ``rev`` (a throwaway worktree)."""
    tree = base / "rev-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
                   check=True)
    try:
        out = base / "rev-wheel"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(tree)], check=True,
                       env=clean_env(base / "rev-home"))
        return next(out.glob("pip_91n-*.whl"))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="git revision to compare against (e.g. HEAD~1, a tag)")
    ap.add_argument("--pip", default=None, help="pip version in all venvs (default: bundled)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--starts", type=int, default=300, help="interleaved `python -c pass` each")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pip91n-ab-") as tmp:
        base = Path(tmp)
        venvs = {
            "this tree": create_venv(base / "this", pip=args.pip,
                                     project_wheel=build_project_wheel(base / "wheel")),
            args.rev: create_venv(base / "rev", pip=args.pip,
                                  project_wheel=wheel_of(args.rev, base)),
            "stock": create_venv(base / "stock", pip=args.pip),
        }
        pip_version = venvs["stock"].pip_version
        starts = dict(zip(venvs, time_starts(list(venvs.values()), args.starts)))
        index = build_index(base / "index", [WheelSpec(p, "1.0") for p in PACKAGES])
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in venvs}
        with MirrorServer(index) as mirror:
            for r in range(args.rounds):
                for i, (name, venv) in enumerate(venvs.items()):
                    if name == "stock":
                        env = sealed_env(base / f"env-{i}-{r}")
                        extra: tuple[str, ...] = ("--index-url", mirror.simple_url)
                    else:
                        env, extra = hooked_env(base, [mirror.simple_url], f"{i}-{r}"), ()
                    runs[name].append(pip_install(venv, env, base / f"t-{i}-{r}", *extra))

    def paired(a: str, b: str, k: int) -> float:
        return statistics.median(x[k] / y[k] for x, y in zip(runs[a], runs[b]))

    def start_ms(name: str) -> float:
        return statistics.median(starts[name]) * 1e3

    print(f"pip {pip_version}; `python -c pass` {args.starts} times each, interleaved; "
          f"{args.rounds} interleaved rounds of 20 packages from a healthy mirror\n")
    print("| hook | `python -c pass` (median) | vs stock | install, CPU (median) | vs stock pip, "
          f"CPU | vs stock pip, wall | vs {args.rev}, CPU |")
    print("|---|---|---|---|---|---|---|")
    for name in ("this tree", args.rev):
        cpu = statistics.median(c for _, c in runs[name])
        print(f"| {name} | {start_ms(name):.2f} ms | {start_ms(name) - start_ms('stock'):+.2f} ms "
              f"| {cpu:.3f} s | {paired(name, 'stock', 1):.3f}x | {paired(name, 'stock', 0):.3f}x "
              f"| {paired(name, args.rev, 1):.3f}x |")
    cpu = statistics.median(c for _, c in runs["stock"])
    print(f"| stock pip (`--index-url`) | {start_ms('stock'):.2f} ms | | {cpu:.3f} s | 1.000x | "
          "1.000x | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
