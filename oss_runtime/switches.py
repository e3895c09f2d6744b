"""The environment switches of the CPU path, read when a model loads (docs/runtime.md).

An on/off switch is off for ``0``, ``off``, ``false`` or ``no``, on for any other value; unset or
empty means its default. ``OSS_RUNTIME_EXPERT_ACTIVATIONS`` and ``OSS_RUNTIME_LINEAR_WEIGHTS`` take
a value and refuse others.
"""

from __future__ import annotations

import os

__all__ = ["EXPERT_ACTIVATIONS", "LINEAR_WEIGHTS", "SWITCHES", "expert_activations",
           "linear_weights", "switch"]

#: The experts' input precision on the fused CPU kernel: exact float32, or int8 per 32 values
#: (llama.cpp's MXFP4 x Q8_0 trade, asked for explicitly; `oss_runtime.kernel`).
EXPERT_ACTIVATIONS = ("float32", "int8")
#: The attention projections' and lm_head's weights on the fused CPU kernel: exact (as stored),
#: or int8 per 32 values (llama.cpp's Q8_0 trade, asked for explicitly; `oss_runtime.q8weights`).
LINEAR_WEIGHTS = ("exact", "int8")
_OFF = frozenset({"0", "off", "false", "no"})
#: The environment switches of the CPU path and their defaults (docs/runtime.md).
SWITCHES = {"OSS_RUNTIME_KERNEL": "1", "OSS_RUNTIME_BF16_GEMV": "1", "OSS_RUNTIME_PREFAULT": "0",
            "OSS_RUNTIME_EXPERT_ACTIVATIONS": "float32", "OSS_RUNTIME_LINEAR_WEIGHTS": "exact"}


def switch(name: str, default: bool) -> bool:
    """An on/off environment switch: unset or empty is ``default``, ``0``/``off``/``false``/``no``
    is off, any other value on."""
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in _OFF


def _choice(value: str | None, option: str, variable: str, allowed: tuple[str, ...],
            meaning: str) -> str:
    """``value``, else ``$variable``, else the first of ``allowed``; checked against ``allowed``."""
    origin = option
    if value is None:
        value = os.environ.get(variable, "").strip() or allowed[0]
        origin = variable
    chosen = str(value).strip().lower()
    if chosen not in allowed:
        raise ValueError(f"{origin} must be {meaning}, got {value!r}")
    return chosen


def expert_activations(value: str | None = None) -> str:
    """``value``, else ``$OSS_RUNTIME_EXPERT_ACTIVATIONS``, else ``"float32"``; checked."""
    return _choice(value, "expert_activations", "OSS_RUNTIME_EXPERT_ACTIVATIONS",
                   EXPERT_ACTIVATIONS, "'float32' (exact, the default) or 'int8' (the experts' "
                   "inputs rounded to int8 per 32 values, as llama.cpp does: faster on a CPU)")


def linear_weights(value: str | None = None) -> str:
    """``value``, else ``$OSS_RUNTIME_LINEAR_WEIGHTS``, else ``"exact"``; checked."""
    return _choice(value, "linear_weights", "OSS_RUNTIME_LINEAR_WEIGHTS", LINEAR_WEIGHTS,
                   "'exact' (as the checkpoint stores them, the default) or 'int8' (attention "
                   "and lm_head weights rounded to int8 per 32 values, llama.cpp's Q8_0: fewer "
                   "bytes per token on a CPU)")
