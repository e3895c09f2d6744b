"""The precision choices of the mapped CPU path, decided with the plan (pure, no I/O).

Two choices trade exactness for speed, as llama.cpp does, and both default to exact:
``expert_activations`` (each expert's input rounded to int8 per 32 values) and ``linear_weights``
(the attention projections' and lm_head's weights rounded to int8 per 32 values, llama.cpp's
Q8_0). Each is taken only when asked for and only where the fused kernel runs it; otherwise the
plan says why, as a warning, and the path stays exact.
"""

from __future__ import annotations

from oss_runtime.switches import expert_activations, linear_weights

__all__ = ["NO_INT8", "NO_INT8_LINEAR", "choose"]

#: why int8 expert inputs were asked for and not used
NO_INT8 = "int8 inputs need the fused CPU kernel, so the experts run exact"
#: why int8 linear weights were asked for and not used
NO_INT8_LINEAR = "int8 linear weights need the fused CPU kernel, so they stay exact"
#: measured by bench/oss_int8_accuracy.py (docs/benchmarks.md, "int8 options, accuracy")
_LINEAR_ACCURACY = ("measured on a random full-width 4-layer checkpoint: mean logit difference "
                    "6.7 % of the logits' spread (bf16 arithmetic: 2.7 %), top-1 agreement 83 %")


#: plan reason key -> (option, parser, exact value, why not without the kernel, reason when
#: exact, reason when taken)
_OPTIONS = {
    "activations": (
        "expert_activations", expert_activations, "float32", NO_INT8,
        "exact; expert_activations='int8' trades accuracy for speed on a CPU",
        "asked for: each expert's input is rounded to int8 per 32 values, as llama.cpp does "
        "(relative error about 0.5 %); the weights stay exact"),
    "linear": (
        "linear_weights", linear_weights, "exact", NO_INT8_LINEAR,
        "as stored; linear_weights='int8' trades accuracy for speed on a CPU",
        "asked for: attention and lm_head weights rounded to int8 per 32 values (llama.cpp's "
        "Q8_0), about half their bytes per token, written once to the cache dir and mapped; "
        + _LINEAR_ACCURACY),
}


def choose(key: str, value: str | None, kernel: str, reasons: dict[str, str],
           warnings: list[str]) -> str:
    """Option ``key`` (``"activations"`` or ``"linear"``) as it will run on ``kernel``; its reason
    goes into ``reasons[key]``, and a warning when int8 was asked for and cannot run."""
    option, parse, exact, unavailable, exact_reason, taken_reason = _OPTIONS[key]
    asked = parse(value)
    if asked == exact:
        reasons[key] = exact_reason
        return exact
    if kernel != "fused":
        reasons[key] = unavailable
        warnings.append(f"{option}={asked!r} was asked for, but {unavailable}")
        return exact
    reasons[key] = taken_reason
    return asked
