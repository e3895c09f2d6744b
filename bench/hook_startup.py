"""Benchmark: what the pip integration costs and saves, side by side in one run.

1. Interpreter start-up: ``python -c pass`` in a venv with pip-91n installed (the ``.pth``
   hook runs) against a venv without it; interleaved runs, medians and their difference
   (goal <= 1 ms). Also the hook's own import time from ``-X importtime``.
2. ``pip install`` of 20 small packages from one healthy loopback mirror: pip with the hook
   (default index, mapped to a one-mirror chain) against stock pip with ``--index-url``
   (goal <= 1.10x). Medians of interleaved rounds, each with a fresh target, no pip cache,
   and a fresh pip-91n cache dir (no reuse of verified files between rounds); wall time, and
   the CPU time of the pip process (steadier on a shared machine). A third run per
   round, pip in the pip-91n venv with ``PIP_91N_DISABLE=1`` and ``--index-url``, separates
   what the hook costs from what the venv's extra distributions cost pip itself.
3. The same install with a black-holed head mirror: pip-91n with the chain (head, healthy)
   against stock pip given ``--index-url head --extra-index-url healthy``. Stock pip's
   defaults (15 s timeout, 5 retries) would wait ~97 s per page of the dead index, so it
   runs with ``--timeout 3 --retries 0`` (in its favour); the ratio is reported as is.
4. The healthy install once more, each round, with a chain of two healthy mirrors (what the
   default chain is like): the chain then hedges, so every request runs in a worker thread
   while pip's thread waits for the first good answer; and each file needs the second
   mirror's word (``PIP_91N_VERIFY=quorum``, the default): its project pages are read beside
   the first's. The same chain with ``PIP_91N_VERIFY=off`` gives what verification costs
   (goal <= 1.05x; the verified install against stock pip: goal <= 1.10x).

Usage: ``python bench/hook_startup.py [--pip VERSION] [--starts 200] [--rounds 15]``;
prints a Markdown table (for docs/benchmarks.md) and writes
bench/results/hook_startup-pip<version>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import BlackHole, MirrorServer, WheelSpec, build_index  # noqa: E402
from tests.harness.venvs import (  # noqa: E402
    Venv,
    build_project_wheel,
    create_venv,
    sealed_env,
)

PACKAGES = [f"pkg{i:02d}" for i in range(20)]


def time_starts(venvs: list[Venv], n: int) -> list[list[float]]:
    """Interleaved ``python -c pass`` wall times (seconds) per venv."""
    out: list[list[float]] = [[] for _ in venvs]
    for _ in range(n):
        for i, v in enumerate(venvs):
            t0 = time.perf_counter()
            subprocess.run([str(v.python), "-c", "pass"], env=v.env, check=True)
            out[i].append(time.perf_counter() - t0)
    return out


def hook_import_us(venv: Venv) -> float:
    """Microseconds the ``.pth`` line spends importing pip_91n (``-X importtime``)."""
    proc = subprocess.run([str(venv.python), "-X", "importtime", "-c", "pass"], env=venv.env,
                          capture_output=True, text=True, check=True)
    found: list[tuple[int, int]] = []  # (depth, cumulative us) of pip_91n modules
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(4).startswith("pip_91n"):
            found.append((len(m.group(3)), int(m.group(2))))
    top = min((d for d, _ in found), default=0)
    total = sum(us for d, us in found if d == top)
    return float(total)


def pip_install(venv: Venv, env: dict[str, str], target: Path, *args: str
                ) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of pip's process and its children: steadier than
    wall time on a busy machine) of one ``pip install``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = venv.pip("install", "--no-cache-dir", "--disable-pip-version-check", "-q",
                    "--target", str(target), *args, *PACKAGES, env=env, check=False,
                    timeout=3600)
    took = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"pip failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime


def hooked_env(base: Path, mirrors: list[str], tag: str) -> dict[str, str]:
    env = sealed_env(base / f"env-{tag}")
    cfg = Path(env["PIP_91N_CONFIG"])
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("", encoding="utf-8")
    env["PIP_91N_MIRRORS"] = ",".join(mirrors)
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pip", default=None, help="pip version in both venvs (default: bundled)")
    ap.add_argument("--starts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pip91n-bench-") as tmp:
        base = Path(tmp)
        wheel = build_project_wheel(base / "wheel")
        hooked = create_venv(base / "hooked", pip=args.pip, project_wheel=wheel)
        stock = create_venv(base / "stock", pip=args.pip)
        pip_version = hooked.pip_version

        # 1. start-up
        subprocess.run([str(hooked.python), "-c", "pass"], env=hooked.env, check=True)
        with_hook, without = time_starts([hooked, stock], args.starts)
        med_hook, med_stock = statistics.median(with_hook), statistics.median(without)
        import_us = statistics.median(hook_import_us(hooked) for _ in range(15))

        # 2. healthy mirror, 20 packages
        index = build_index(base / "index", [WheelSpec(p, "1.0") for p in PACKAGES])
        # (wall, cpu) per round
        healthy_91n: list[tuple[float, float]] = []
        healthy_stock: list[tuple[float, float]] = []
        healthy_off: list[tuple[float, float]] = []  # pip-91n installed, hook disabled
        two_91n: list[tuple[float, float]] = []  # a chain of two healthy mirrors
        two_off: list[tuple[float, float]] = []  # the same, PIP_91N_VERIFY=off
        with MirrorServer(index, name="healthy") as mirror, \
                MirrorServer(index, name="second") as second:
            for r in range(args.rounds):
                env = hooked_env(base, [mirror.simple_url], f"h{r}")
                healthy_91n.append(pip_install(hooked, env, base / f"t-h91n-{r}"))
                env = sealed_env(base / f"env-s{r}")
                healthy_stock.append(pip_install(stock, env, base / f"t-hs-{r}", "--index-url",
                                                 mirror.simple_url))
                env = sealed_env(base / f"env-o{r}", {"PIP_91N_DISABLE": "1"})
                healthy_off.append(pip_install(hooked, env, base / f"t-ho-{r}", "--index-url",
                                               mirror.simple_url))
                env = hooked_env(base, [mirror.simple_url, second.simple_url], f"t{r}")
                two_91n.append(pip_install(hooked, env, base / f"t-h2-{r}"))
                env = hooked_env(base, [mirror.simple_url, second.simple_url], f"v{r}")
                env["PIP_91N_VERIFY"] = "off"
                two_off.append(pip_install(hooked, env, base / f"t-h2off-{r}"))

            # 3. black-holed head
            with MirrorServer(index, faults=[BlackHole(hold=3600.0)], name="hole") as hole:
                env = hooked_env(base, [hole.simple_url, mirror.simple_url], "bh")
                bh_91n, _ = pip_install(hooked, env, base / "t-bh91n")
                env = sealed_env(base / "env-bhs")
                bh_stock, _ = pip_install(stock, env, base / "t-bhs", "--index-url",
                                       hole.simple_url, "--extra-index-url", mirror.simple_url,
                                       "--timeout", "3", "--retries", "0")

    h91, hs, hoff, h2, h2off = (statistics.median(w for w, _ in runs) for runs in (
        healthy_91n, healthy_stock, healthy_off, two_91n, two_off))
    c91, cs, coff, c2, c2off = (statistics.median(c for _, c in runs) for runs in (
        healthy_91n, healthy_stock, healthy_off, two_91n, two_off))
    paired_verify = statistics.median(a[0] / b[0] for a, b in zip(two_91n, two_off))
    # the median of each round's own ratio: the rounds share the machine's slow spells
    paired_cpu = statistics.median(a[1] / b[1] for a, b in zip(healthy_91n, healthy_stock))
    result = {
        "machine": f"{platform.machine()}, {platform.python_version()}, pip {pip_version}",
        "startup_ms": {"with_hook": med_hook * 1e3, "without": med_stock * 1e3,
                       "extra": (med_hook - med_stock) * 1e3, "runs": args.starts,
                       "hook_import_us": import_us},
        "healthy_s": {"pip_91n": healthy_91n, "stock": healthy_stock, "ratio": h91 / hs,
                      "hook_disabled": healthy_off, "hook_disabled_ratio": hoff / hs,
                      "cpu_ratio": c91 / cs, "cpu_hook_disabled_ratio": coff / cs,
                      "cpu_ratio_paired": paired_cpu,
                      "two_mirrors": two_91n, "two_mirrors_ratio": h2 / hs,
                      "cpu_two_mirrors_ratio": c2 / cs,
                      "two_mirrors_verify_off": two_off, "verify_on_off_ratio": h2 / h2off,
                      "verify_on_off_ratio_paired": paired_verify,
                      "runs": "[wall, cpu] seconds per round"},
        "black_hole_s": {"pip_91n": bh_91n, "stock": bh_stock, "ratio": bh_91n / bh_stock},
    }
    out = ROOT / "bench" / "results" / f"hook_startup-pip{pip_version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"pip {pip_version}, Python {platform.python_version()}, {platform.machine()}\n")
    print("| measurement | pip-91n | without pip-91n | ratio / difference | goal |")
    print("|---|---|---|---|---|")
    print(f"| `python -c pass`, median of {args.starts} | {med_hook * 1e3:.2f} ms | "
          f"{med_stock * 1e3:.2f} ms | {(med_hook - med_stock) * 1e3:+.2f} ms "
          f"(hook imports: {import_us:.0f} us) | <= 1 ms |")
    print(f"| `pip install` 20 packages, healthy mirror, median of {args.rounds} | {h91:.2f} s | "
          f"{hs:.2f} s (`--index-url`) | {h91 / hs:.2f}x | <= 1.10x |")
    print(f"| same, CPU time of the pip process (user + system), median | {c91:.2f} s | "
          f"{cs:.2f} s | {c91 / cs:.2f}x (per-round median {paired_cpu:.2f}x) | <= 1.10x |")
    print(f"| same, pip-91n installed, `PIP_91N_DISABLE=1` (`--index-url`) | {hoff:.2f} s | "
          f"{hs:.2f} s (`--index-url`) | {hoff / hs:.2f}x (CPU {coff / cs:.2f}x) | report |")
    print(f"| same, chain of two healthy mirrors (hedging on, `PIP_91N_VERIFY=quorum`) | "
          f"{h2:.2f} s | {hs:.2f} s (`--index-url`) | {h2 / hs:.2f}x (CPU {c2 / cs:.2f}x) | "
          "<= 1.10x |")
    print(f"| same two mirrors, verification on vs `PIP_91N_VERIFY=off` | {h2:.2f} s | "
          f"{h2off:.2f} s (off) | {h2 / h2off:.2f}x (per-round median {paired_verify:.2f}x, "
          f"CPU {c2 / c2off:.2f}x) | <= 1.05x |")
    print(f"| same, black-holed head mirror | {bh_91n:.2f} s | {bh_stock:.2f} s "
          f"(`--index-url` head `--extra-index-url` healthy, `--timeout 3 --retries 0`) | "
          f"{bh_91n / bh_stock:.3f}x | report |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
