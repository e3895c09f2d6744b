"""Benchmark: what the int8 options cost in accuracy, against the exact path.

Two models share the mapped checkpoint (bf16 non-expert path, the default): one as stored, one
with ``linear_weights="int8"`` (attention and lm_head on the int8 copy, llama.cpp's Q8_0).
Every routed expert runs through the fused kernel, with float32 or (``expert_activations=
"int8"``) int8 inputs. Measured on ``--tokens`` random prompt tokens, teacher-forced in one
forward pass per mode, against the exact path:

* max and mean absolute logit difference (and the mean against the logits' spread);
* top-1 agreement per position;
* on ``--decode`` greedily generated tokens from the first 8 prompt tokens: how many agree with
  the exact path's, and where they first part.

Modes: int8 expert inputs, int8 linear weights, both, and, as the yardstick, transformers' own
arithmetic (experts dequantized to bf16 and multiplied in bf16).

    python bench/oss_int8_accuracy.py /var/tmp/oss18/gpt-oss-20b-random --write

A checkpoint with random weights gives near-flat output distributions, where a tiny logit change
flips the top token more often than with trained weights; its agreement figures are a floor.
``--write`` puts the table into docs/benchmarks.md under "## oss_runtime: int8 options, accuracy".
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

SECTION = "## oss_runtime: int8 options, accuracy"


def _experts(model: Any) -> list[Any]:
    return [layer.mlp.experts for layer in model.model.layers]


MODES = {  # label: (int8 linear weights, int8 expert inputs, experts in bf16 the transformers way)
    "exact": (False, False, False),
    "int8 expert inputs": (False, True, False),
    "int8 linear weights": (True, False, False),
    "both int8": (True, True, False),
    "bf16 expert arithmetic": (False, False, True),
}


def _mode(model: Any, int8: bool, bf16: bool, tokens: int, kernels: list[Any]) -> None:
    for experts, kernel in zip(_experts(model), kernels, strict=True):
        if kernel is None:
            raise SystemExit("the fused kernel is not in use here: nothing to compare")
        experts.int8 = int8
        # bf16: transformers' arithmetic (experts dequantized to bf16 tiles, bf16 matmul)
        experts.kernel = None if bf16 else kernel
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
    # two models over the same mapped files: the second runs its linear layers on the int8 copy
    models = {False: load_gpt_oss_20b(source, progress=False),
              True: load_gpt_oss_20b(source, progress=False, linear_weights="int8")}
    if models[True].plan.linear_weights != "int8":
        raise SystemExit(f"int8 linear weights are not in use here: {models[True].plan.reasons}")
    rt = models[False]
    vocab = rt.checkpoint.spec.vocab_size
    ids = torch.randint(0, min(vocab, 50_000), (1, tokens), generator=torch.Generator().manual_seed(0))
    kernels = {k: [e.kernel for e in _experts(m.model)] for k, m in models.items()}
    logits = {}
    greedy = {}
    with torch.inference_mode():
        for label, (linear, int8, bf16) in MODES.items():
            model = models[linear].model
            _mode(model, int8, bf16, tokens, kernels[linear])
            logits[label] = model(input_ids=ids).logits[0].float()
            if not bf16:  # the bf16 tiles are too slow to decode with here
                greedy[label] = _greedy(model, ids[:, :8], decode)
            print(f"{label}: done", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"source": str(rt.path), "dtype": rt.plan.dtype,
                              "threads": torch.get_num_threads(), "tokens": tokens,
                              "decode": decode, "logit_std": float(logits["exact"].std())}
    for label in MODES:
        if label == "exact":
            continue
        diff = (logits[label] - logits["exact"]).abs()
        top1 = (logits[label].argmax(-1) == logits["exact"].argmax(-1)).float().mean()
        result[label] = {"max_abs_logit_diff": float(diff.max()),
                         "mean_abs_logit_diff": float(diff.mean()), "top1_agreement": float(top1)}
        if label in greedy:
            same = [a == b for a, b in zip(greedy["exact"], greedy[label], strict=True)]
            result[label]["greedy_same"] = sum(same)
            result[label]["greedy_first_divergence"] = same.index(False) if False in same else len(same)
    return result


def table(r: dict[str, Any]) -> str:
    labels = [label for label in MODES if label != "exact"]

    def greedy(m: dict[str, Any]) -> str:
        if "greedy_same" not in m:
            return "not run (too slow)"
        return f"{m['greedy_same']} (first difference at {m['greedy_first_divergence']})"

    rows = [
        ("max abs logit difference", [f"{r[k]['max_abs_logit_diff']:.4f}" for k in labels]),
        ("mean abs logit difference", [f"{r[k]['mean_abs_logit_diff']:.5f}" for k in labels]),
        ("mean difference / logit std",
         [f"{100 * r[k]['mean_abs_logit_diff'] / r['logit_std']:.2f} %" for k in labels]),
        (f"top-1 agreement over {r['tokens']} positions",
         [f"{100 * r[k]['top1_agreement']:.1f} %" for k in labels]),
        (f"greedy tokens identical (of {r['decode']})", [greedy(r[k]) for k in labels]),
    ]
    lines = [f"| against the exact path (logit std {r['logit_std']:.3f}) | " + " | ".join(labels)
             + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a gpt-oss checkpoint directory")
    p.add_argument("--tokens", type=int, default=256, help="teacher-forced positions")
    p.add_argument("--decode", type=int, default=256, help="greedy tokens per mode")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lock", default="/tmp/bench.lock", help="flock file ('' for none)")
    p.add_argument("--json", default=None)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    with locked(a.lock or None, "measuring the int8 options against exact"):
        result = measure(a.source, a.tokens, a.decode, a.threads)
    text = table(result)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    if a.write:
        notes = (f"`python bench/oss_int8_accuracy.py {result['source']}` ({result['dtype']} "
                 f"non-expert path, {result['threads']} threads). The exact path (float32 expert "
                 "inputs, linear weights as stored, fused kernel) is the reference. The int8 "
                 "columns are `expert_activations='int8'`, `linear_weights='int8'` and both; the "
                 "bf16 column runs the experts as transformers does (dequantized to bf16, bf16 "
                 "matmul), as a yardstick for what arithmetic alone moves. Random weights give "
                 "near-flat output distributions, where a small change flips the top token far "
                 "more often than with trained weights: the agreement is a floor.")
        write_section(SECTION, notes + "\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
