"""``oss-runtime`` (also ``python -m oss_runtime``): command-line entry points.

Subcommands:

* ``synth DIR --shape tiny|wide|20b|20b-sparse``: write a synthetic checkpoint;
* ``inspect DIR``: validate a checkpoint from its headers and summarise it;
* ``kernel``: build (or find) the fused MXFP4 kernel and say which path runs here;
* ``doctor [SOURCE]``: the environment and the load plan, no weights loaded;
* ``plan SOURCE``: the plan and memory estimate from a checkpoint's headers (8/16/32 GB table);
* ``chat [SOURCE]``: interactive streaming harmony chat on stdin/stdout;
* ``bench [SOURCE]``: load time, time to the first token, prefill/decode tokens/s, peak RSS;
* ``serve [SOURCE]``: an OpenAI-compatible HTTP API (`oss_runtime.serve`, the ``serve`` extra).

The last five live in `oss_runtime.cli_run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from oss_runtime.errors import OssRuntimeError

__all__ = ["build_parser", "main"]


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _cmd_synth(args: argparse.Namespace) -> int:
    from oss_runtime.synth import synth_config, write_checkpoint

    shape = args.shape
    sparse = args.sparse or shape == "20b-sparse"
    config = synth_config(
        shape,
        layers=args.layers,
        experts=args.experts,
        top_k=args.top_k,
        dense_experts=args.dense_experts,
    )
    root = write_checkpoint(
        args.dir, config, sparse=sparse, shards=args.shards, index=not args.no_index,
        seed=args.seed, overwrite=args.overwrite,
    )
    from oss_runtime.checkpoint import inspect_checkpoint

    ck = inspect_checkpoint(root)
    kind = "sparse (holes, no disk)" if sparse else "random data"
    print(
        f"wrote {root}: {shape}, {ck.spec.num_hidden_layers} layers, {len(ck.tensors)} tensors in "
        f"{len(ck.files)} shard(s), {_gb(ck.total_bytes)} of tensors, {kind}"
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from oss_runtime.checkpoint import inspect_checkpoint

    ck = inspect_checkpoint(args.dir)
    s = ck.spec
    print(f"checkpoint   {ck.root}")
    print(f"shards       {len(ck.files)}")
    print(f"tensors      {len(ck.tensors)} ({_gb(ck.total_bytes)})")
    print(f"experts      {s.num_local_experts} per layer, top-{s.num_experts_per_tok}, "
          f"{s.quant_method or 'dense'} ({_gb(ck.expert_bytes())})")
    print(f"layers       {s.num_hidden_layers} (hidden {s.hidden_size}, vocab {s.vocab_size})")
    print(f"non-expert   {_gb(ck.total_bytes - ck.expert_bytes())}")
    return 0


def _cmd_kernel(args: argparse.Namespace) -> int:
    from oss_runtime.kernel import status

    print(status())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oss-runtime", description="gpt-oss memory-mapped MXFP4 runtime"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write a synthetic gpt-oss checkpoint")
    p.add_argument("dir")
    p.add_argument("--shape", choices=("tiny", "wide", "20b", "20b-sparse"), default="tiny")
    p.add_argument("--layers", type=int, default=None, help="number of layers (wide: default 4)")
    p.add_argument("--experts", type=int, default=None, help="experts per layer")
    p.add_argument("--top-k", type=int, default=None, help="experts per token")
    p.add_argument("--shards", type=int, default=3)
    p.add_argument("--no-index", action="store_true", help="no model.safetensors.index.json")
    p.add_argument("--sparse", action="store_true", help="leave tensor data as holes (zeros)")
    p.add_argument("--dense-experts", action="store_true", help="bf16 experts instead of MXFP4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="write into a directory that is not empty (replaces its checkpoint files)")
    p.set_defaults(func=_cmd_synth)
    p = sub.add_parser("inspect", help="validate a checkpoint from its headers")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser("kernel", help="build the fused MXFP4 kernel and report which path runs")
    p.set_defaults(func=_cmd_kernel)
    from oss_runtime.cli_run import add_parsers

    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except (OssRuntimeError, ValueError) as exc:
        print(f"oss-runtime: error: {exc}", file=sys.stderr)
        return 1
