"""Benchmark: what hash agreement (``PIP_91N_VERIFY``) costs a healthy install, A/B.

One venv with pip-91n, two healthy loopback mirrors holding 20 one-wheel packages, and
``pip install`` of all 20 with ``PIP_91N_VERIFY=quorum`` (the default: each project page is
also read from the second mirror, and each file needs its word) and ``off``, alternating
which goes first in each round. Fresh target, no pip cache, fresh pip-91n cache dir per
install. Prints the medians and the median of each round's own ratio, wall and CPU (goal
<= 1.05x). ``bench/hook_startup.py`` has the same rows against stock pip.

    python bench/verify_ab.py [--rounds 20] [--pip 26.3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from hook_startup import PACKAGES, hooked_env, pip_install  # noqa: E402

from tests.harness import MirrorServer, WheelSpec, build_index  # noqa: E402
from tests.harness.venvs import build_project_wheel, create_venv  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--pip", default="26.3")
    args = ap.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"quorum": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="pip91n-verify-") as tmp:
        base = Path(tmp)
        venv = create_venv(base / "venv", pip=args.pip,
                           project_wheel=build_project_wheel(base / "wheel"))
        index = build_index(base / "index", [WheelSpec(p, "1.0") for p in PACKAGES])
        with MirrorServer(index, name="a") as a, MirrorServer(index, name="b") as b:
            for r in range(args.rounds):
                for mode in ("quorum", "off") if r % 2 else ("off", "quorum"):
                    env = hooked_env(base, [a.simple_url, b.simple_url], f"{mode}{r}")
                    env["PIP_91N_VERIFY"] = mode
                    runs[mode].append(pip_install(venv, env, base / f"t-{mode}-{r}"))
    on, off = runs["quorum"], runs["off"]
    print(f"pip {venv.pip_version}, {args.rounds} rounds, 20 packages, two healthy mirrors\n")
    print("| measurement | `PIP_91N_VERIFY=quorum` | `off` | ratio (per-round median) | goal |")
    print("|---|---|---|---|---|")
    for i, what in ((0, "wall"), (1, "CPU of the pip process")):
        a_med = statistics.median(x[i] for x in on)
        b_med = statistics.median(x[i] for x in off)
        paired = statistics.median(x[i] / y[i] for x, y in zip(on, off))
        print(f"| install, {what}, median | {a_med:.3f} s | {b_med:.3f} s | "
              f"{a_med / b_med:.3f}x ({paired:.3f}x) | <= 1.05x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
