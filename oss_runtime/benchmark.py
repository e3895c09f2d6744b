"""Measure a load: time from the call to the first token, prefill and decode tokens/s, peak RSS.

Used by ``oss-runtime bench SOURCE`` and ``bench/oss_load_20b.py``. Prompts are token ids (the
chat template is not needed, so checkpoints without a tokenizer are measured too); decoding is
greedy with transformers' ``DynamicCache``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_table", "memory_status", "run_benchmark"]


def memory_status() -> dict[str, int]:
    """Bytes: ``peak_rss`` (ru_maxrss) and, on Linux, ``rss_anon``, ``rss_file``, ``hwm``; page
    fault counts: ``major_faults`` (read from disk) and ``minor_faults``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"peak_rss": usage.ru_maxrss * 1024, "major_faults": usage.ru_majflt,
           "minor_faults": usage.ru_minflt}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                name = {"RssAnon": "rss_anon", "RssFile": "rss_file", "VmHWM": "hwm"}.get(key)
                if name:
                    out[name] = int(value.split()[0]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return out


def process_age() -> float | None:
    """Seconds since this process started (Linux; None elsewhere)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def run_benchmark(source: str | os.PathLike[str] | None, *, prompt_tokens: int = 32,
                  new_tokens: int = 8, threads: int | None = None,
                  load_kwargs: Mapping[str, Any] | None = None, steady_tokens: int = 0,
                  extra_prefills: Sequence[int] = ()) -> dict[str, Any]:
    """Load ``source`` with `load_gpt_oss_20b`, prefill ``prompt_tokens``, decode ``new_tokens``.

    ``steady_tokens``: then decode that many more, timed apart (``steady_tok_s``: the first
    tokens of a fresh process also pay the first touch of each expert's mapped pages).
    ``extra_prefills``: then prefill prompts of these lengths, each with a new cache
    (``extra_prefill_tok_s``)."""
    import torch
    from transformers import DynamicCache

    from oss_runtime.api import load_gpt_oss_20b
    from oss_runtime.chat import cache_kwarg

    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    rt = load_gpt_oss_20b(source, **dict(load_kwargs or {}))
    loaded = time.perf_counter()
    vocab = rt.checkpoint.spec.vocab_size
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, min(vocab, 50_000), (1, prompt_tokens), generator=gen)
    device = next(p for p in rt.model.parameters() if not p.is_meta).device
    prompt = prompt.to(device)
    cache = DynamicCache(config=rt.model.config)
    kw = {cache_kwarg(rt.model): cache, "use_cache": True, "logits_to_keep": 1}
    with torch.inference_mode():
        logits = rt.model(input_ids=prompt, **kw).logits
        token = logits[:, -1].argmax(-1, keepdim=True)
        first = time.perf_counter()
        age = process_age()
        for _ in range(new_tokens):
            logits = rt.model(input_ids=token, **kw).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
        done = time.perf_counter()
        for _ in range(steady_tokens):
            logits = rt.model(input_ids=token, **kw).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
        steady = time.perf_counter()
        extra = {}
        for n in extra_prefills:
            ids = torch.randint(0, min(vocab, 50_000), (1, n), generator=gen).to(device)
            kw[cache_kwarg(rt.model)] = DynamicCache(config=rt.model.config)
            t0 = time.perf_counter()
            rt.model(input_ids=ids, **kw)
            extra[str(n)] = n / max(time.perf_counter() - t0, 1e-9)
    mem = memory_status()
    return {
        "source": str(rt.path),
        "device": rt.plan.device,
        "backend": rt.plan.backend,
        "quantization": rt.plan.quantization,
        "dtype": rt.plan.dtype,
        "compute": rt.plan.compute,
        "compute_reason": rt.plan.reasons.get("kernel", ""),
        "expert_activations": rt.plan.expert_activations,
        "linear_weights": rt.plan.linear_weights,
        "threads": torch.get_num_threads(),
        "load_s": loaded - started,
        "first_token_s": first - started,
        "prefill_tokens": prompt_tokens,
        "prefill_tok_s": prompt_tokens / max(first - loaded, 1e-9),
        "decode_tokens": new_tokens,
        "decode_tok_s": new_tokens / max(done - first, 1e-9),
        "first_token_since_start_s": age,
        "steady_tokens": steady_tokens,
        "steady_tok_s": steady_tokens / max(steady - done, 1e-9) if steady_tokens else None,
        "extra_prefill_tok_s": extra,
        "estimated_peak_bytes": rt.plan.estimated_peak_bytes,
        **mem,
    }


def format_table(result: Mapping[str, Any]) -> str:
    gb = 1e9
    rows = [
        ("checkpoint", result["source"]),
        (
            "plan",
            f"{result['device']} / {result['backend']} / {result['quantization']} / {result['dtype']}",
        ),
        ("compute", f"{result['compute']}"
                    + (f" ({result['compute_reason']})" if result.get("compute_reason") else "")),
        ("expert inputs", str(result.get("expert_activations", "float32"))),
        ("linear weights", str(result.get("linear_weights", "exact"))),
        ("threads", str(result["threads"])),
        ("load", f"{result['load_s']:.2f} s"),
        ("call to first token", f"{result['first_token_s']:.2f} s"),
        ("prefill", f"{result['prefill_tok_s']:.2f} tok/s ({result['prefill_tokens']} tokens)"),
        ("decode", f"{result['decode_tok_s']:.2f} tok/s ({result['decode_tokens']} tokens)"),
        (
            "peak RSS",
            f"{result['peak_rss'] / gb:.2f} GB (plan estimated {result['estimated_peak_bytes'] / gb:.2f} GB)",
        ),
    ]
    if "rss_anon" in result:
        rows.append(("RSS now", f"{result['rss_anon'] / gb:.2f} GB anonymous + "
                                f"{result.get('rss_file', 0) / gb:.2f} GB file-backed"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)
