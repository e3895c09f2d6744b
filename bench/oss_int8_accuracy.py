"""Benchmark: what ``expert_activations="int8"`` costs in accuracy, against the exact path.

One model is loaded (bf16 non-expert path, the default) and every routed expert runs through the
fused kernel in both modes, so the only difference is the rounding of each expert's input to
int8 per 32 values. Measured on ``--tokens`` random prompt tokens, teacher-forced in one forward
pass per mode:

* max and mean absolute logit difference (with the logits' standard deviation for scale);
* top-1 agreement per position;

for int8 inputs and, as the yardstick, for transformers' own arithmetic (experts dequantized to
bf16 and multiplied in bf16), both against the exact path; and on ``--decode`` greedily generated tokens from the first 8 prompt tokens, per mode: how many
generated tokens agree, and where they first part.

    python bench/oss_int8_accuracy.py /var/tmp/oss18/gpt-oss-20b-random --write

A checkpoint with random weights gives near-flat output distributions, where a tiny logit change
flips the top token more often than with trained weights; its agreement figures are a floor.
``--write`` puts the table into docs/benchmarks.md under "## oss_runtime: int8 expert inputs".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _docs import write_section
from vs_llamacpp import locked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## oss_runtime: int8 expert inputs"


def _experts(model: Any) -> list[Any]:
    return [layer.mlp.experts for layer in model.model.layers]


def _mode(model: Any, mode: str, tokens: int, kernels: list[Any]) -> None:
    for experts, kernel in zip(_experts(model), kernels, strict=True):
        if kernel is None:
            raise SystemExit("the fused kernel is not in use here: nothing to compare")
        experts.int8 = mode == "int8"
        # bf16: transformers' arithmetic (experts dequantized to bf16 tiles, bf16 matmul)
        experts.kernel = None if mode == "bf16" else kernel
        experts.kernel_max_tokens = max(experts.kernel_max_tokens, tokens)


def _greedy(model: Any, prompt: Any, steps: int) -> list[int]:
    from transformers import DynamicCache

    from oss_runtime.chat import cache_kwarg

    kw = {cache_kwarg(model): DynamicCache(config=model.config), "use_cache": True,
          "logits_to_keep": 1}
    out: list[int] = []
    ids = prompt
    for _ in range(steps):
        token = model(input_ids=ids, **kw).logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(token))
        ids = token
    return out


def measure(source: str, tokens: int, decode: int, threads: int) -> dict[str, Any]:
    import torch

    from oss_runtime import load_gpt_oss_20b

    torch.set_num_threads(threads)
    rt = load_gpt_oss_20b(source, progress=False)
    model = rt.model
    vocab = rt.checkpoint.spec.vocab_size
    ids = torch.randint(0, min(vocab, 50_000), (1, tokens), generator=torch.Generator().manual_seed(0))
    kernels = [experts.kernel for experts in _experts(model)]
    logits = {}
    greedy = {}
    with torch.inference_mode():
        for mode in ("exact", "int8", "bf16"):
            _mode(model, mode, tokens, kernels)
            logits[mode] = model(input_ids=ids).logits[0].float()
            if mode != "bf16":  # the bf16 tiles are too slow to decode with here
                greedy[mode] = _greedy(model, ids[:, :8], decode)
    result: dict[str, Any] = {"source": str(rt.path), "dtype": rt.plan.dtype,
                              "threads": torch.get_num_threads(), "tokens": tokens,
                              "decode": decode, "logit_std": float(logits["exact"].std())}
    for mode in ("int8", "bf16"):
        diff = (logits[mode] - logits["exact"]).abs()
        top1 = (logits[mode].argmax(-1) == logits["exact"].argmax(-1)).float().mean()
        result[mode] = {"max_abs_logit_diff": float(diff.max()),
                        "mean_abs_logit_diff": float(diff.mean()), "top1_agreement": float(top1)}
    same = [a == b for a, b in zip(greedy["exact"], greedy["int8"], strict=True)]
    result["int8"]["greedy_same"] = sum(same)
    result["int8"]["greedy_first_divergence"] = same.index(False) if False in same else len(same)
    return result


def table(r: dict[str, Any]) -> str:
    i8, bf = r["int8"], r["bf16"]
    rows = [
        ("max abs logit difference", f"{i8['max_abs_logit_diff']:.4f}", f"{bf['max_abs_logit_diff']:.4f}"),
        ("mean abs logit difference", f"{i8['mean_abs_logit_diff']:.5f}", f"{bf['mean_abs_logit_diff']:.5f}"),
        (f"top-1 agreement over {r['tokens']} positions", f"{100 * i8['top1_agreement']:.1f} %",
         f"{100 * bf['top1_agreement']:.1f} %"),
        (f"greedy tokens identical (of {r['decode']})",
         f"{i8['greedy_same']} (first difference at {i8['greedy_first_divergence']})", ""),
    ]
    lines = [f"| against exact float32 expert inputs (logit std {r['logit_std']:.3f}) | int8 expert "
             "inputs | bf16 expert arithmetic (transformers' way) |", "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, a, b in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a gpt-oss checkpoint directory")
    p.add_argument("--tokens", type=int, default=256, help="teacher-forced positions")
    p.add_argument("--decode", type=int, default=64, help="greedy tokens per mode")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lock", default="/tmp/bench.lock", help="flock file ('' for none)")
    p.add_argument("--json", default=None)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    with locked(a.lock or None, "measuring int8 against exact"):
        result = measure(a.source, a.tokens, a.decode, a.threads)
    text = table(result)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    if a.write:
        notes = (f"`python bench/oss_int8_accuracy.py {result['source']}` ({result['dtype']} "
                 f"non-expert path, {result['threads']} threads). The exact path (float32 expert "
                 "inputs, fused kernel) is the reference; the int8 column rounds the experts' "
                 "inputs, the bf16 column runs the experts as transformers does (dequantized to "
                 "bf16, bf16 matmul), as a yardstick for what arithmetic alone moves. Random "
                 "weights give near-flat output distributions, where a small change flips the "
                 "top token far more often than with trained weights: the agreement is a floor.")
        write_section(SECTION, notes + "\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
