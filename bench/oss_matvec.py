"""Benchmark: the fused kernel's one-token mat-vecs reading their weights from memory, this
tree's kernel against another revision's, side by side in one process.

Decode reads every weight once per token, so what counts is the rate at which a mat-vec
streams weights that are not in any cache. For each entry point decode uses (MXFP4 experts
exact and with int8 inputs, the int8 linear weights, the bf16 linear weights) at gpt-oss-20b's
shapes, enough distinct random matrices to overflow the last-level cache are cycled, one call
each, and the weight bytes read per second are reported for both kernels (rounds alternate
between them). A plain read of the same bytes (a torch sum) gives the machine's bandwidth at
that moment. The results of the two kernels are compared bitwise where the entry point's
arithmetic did not change, and against float64 otherwise.

    python bench/oss_matvec.py --against 6be5c60 [--rounds 3] [--write]

``--against`` builds that revision's kernel sources (``git show``) into a temporary directory
(about a minute). ``--write`` puts the table into docs/benchmarks.md under
"## oss_runtime: decode mat-vecs from memory".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _docs import write_section
from vs_llamacpp import locked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## oss_runtime: decode mat-vecs from memory"
K = 2880  # gpt-oss-20b's hidden size
SHAPES = {  # entry point: (rows, matrices cycled, label)
    "mxfp4 exact": (5760, 40, "expert gate_up, MXFP4, float32 x"),
    "mxfp4 x int8": (5760, 40, "expert gate_up, MXFP4, int8 x"),
    "int8 linear": (4096, 24, "q_proj, int8 copy"),
    "bf16 linear": (4096, 24, "q_proj, bf16"),
}


def build_revision(rev: str, directory: Path) -> Any:
    """The kernel extension built from ``rev``'s sources (same entry points and flags)."""
    from torch.utils import cpp_extension

    from oss_runtime import kernel

    sources = []
    for name in ("mxfp4_linear.cpp", "int8_linear.cpp"):
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:oss_runtime/_kernels/{name}"],
                               capture_output=True, text=True)
        if shown.returncode == 0:
            sources.append(shown.stdout)
    if not sources:
        raise SystemExit(f"{rev}: no kernel sources at that revision")
    source = "\n".join(sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cpp_extension.load_inline(
            name=f"oss_matvec_{abs(hash(rev))}", cpp_sources=[source],
            functions=[f for f in kernel.ENTRY_POINTS if f" {f}(" in source],
            extra_cflags=list(kernel.BUILD_FLAGS), extra_ldflags=["-fopenmp"],
            build_directory=str(directory))


def operands(entry: str, rows: int, count: int) -> tuple[Callable[[Any, Any, int], Any], int]:
    """(call(module, x, i), weight bytes per call) over ``count`` random matrices."""
    import torch

    g = torch.Generator().manual_seed(0)
    empty = torch.empty(0)
    if entry.startswith("mxfp4"):
        blocks = torch.randint(0, 256, (count, rows, K // 32, 16), dtype=torch.uint8, generator=g)
        scales = torch.randint(118, 124, (count, rows, K // 32), dtype=torch.uint8, generator=g)
        name = "mxfp4_linear_q8" if entry == "mxfp4 x int8" else "mxfp4_linear"
        return ((lambda m, x, i: getattr(m, name)(x, blocks[i], scales[i], empty, -1)),
                rows * K * 17 // 32)
    if entry == "int8 linear":
        q = torch.randint(-127, 128, (count, rows, K), dtype=torch.int8, generator=g)
        d = (torch.rand(count, rows, K // 32, generator=g) * 0.01).half()
        return (lambda m, x, i: m.int8_linear(x, q[i], d[i], empty, -1)), rows * K * 34 // 32
    w = (torch.randn(count, rows, K, generator=g) * 0.02).bfloat16()
    return (lambda m, x, i: m.bf16_linear(x, w[i], empty, -1)), rows * K * 2


def rate(fn: Callable[[int], Any], count: int, nbytes: int, seconds: float) -> float:
    for i in range(count):  # every matrix touched once before timing
        fn(i)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        fn(n % count)
        n += 1
    return nbytes * n / (time.perf_counter() - t0) / 1e9


def measure(entry: str, rows: int, count: int, label: str, there: Any, here: Any, x: Any,
            args: argparse.Namespace) -> str:
    """One table row: both kernels' rates (alternating rounds), a plain read, the results."""
    import torch

    call, nbytes = operands(entry, rows, count)
    a, b = call(there, x, 1), call(here, x, 1)
    results = ("bitwise equal" if torch.equal(a, b)
               else f"max diff {float((a - b).abs().max() / a.abs().max()):.1e} of max")
    got: dict[Any, list[float]] = {there: [], here: []}
    for r in range(args.rounds):
        for mod in ((there, here) if r % 2 == 0 else (here, there)):
            got[mod].append(rate(lambda i, m=mod: call(m, x, i), count, nbytes, args.seconds))
    same_bytes = torch.randn(count, nbytes // 4)
    plain = rate(lambda i: same_bytes[i].sum(), count, nbytes, args.seconds)
    old, new = statistics.median(got[there]), statistics.median(got[here])
    return (f"| {entry} ({label}, {rows} x {K}, {count} matrices) | {old:.1f} | {new:.1f} | "
            f"{new / old:.2f}x | {plain:.1f} | {results} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", default="HEAD", help="the revision to compare with (git)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="per entry point and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lock", default="/tmp/bench.lock", help="flock file ('' for none)")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)

    import torch

    from oss_runtime import kernel

    torch.set_num_threads(args.threads)
    here = kernel.load_kernel(required=True)._mod
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="oss-matvec-") as tmp, \
            locked(args.lock, "mat-vecs from memory"):  # the build is held too: it takes the CPU
        print(f"building the kernel of {args.against} (about a minute)", file=sys.stderr)
        there = build_revision(args.against, Path(tmp))
        x = torch.randn(1, K, generator=torch.Generator().manual_seed(1))
        for entry, (rows, count, label) in SHAPES.items():
            rows_out.append(measure(entry, rows, count, label, there, here, x, args))
            print(rows_out[-1], flush=True)
    table = "\n".join([
        f"| mat-vec, one token | {args.against} GB/s | this tree GB/s | ratio | plain read GB/s "
        "| results |",
        "|---|---|---|---|---|---|",
        *rows_out,
        "",
        f"Weight bytes read per second (medians of {args.rounds} alternating rounds of "
        f"{args.seconds:.0f} s), {args.threads} threads, {platform.machine()}, "
        f"{os.cpu_count()} cores; `python bench/oss_matvec.py --against {args.against} "
        f"--rounds {args.rounds}`.",
    ])
    print(table)
    if args.write:
        write_section(SECTION, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
