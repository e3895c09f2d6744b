"""The environment switches of the CPU path, read when a model loads (docs/runtime.md).

An on/off switch is off for ``0``, ``off``, ``false`` or ``no``, on for any other value; unset or
empty means its default. ``OSS_RUNTIME_EXPERT_ACTIVATIONS`` takes a value and refuses others.
"""

from __future__ import annotations

import os

__all__ = ["EXPERT_ACTIVATIONS", "SWITCHES", "expert_activations", "switch"]

#: The experts' input precision on the fused CPU kernel: exact float32, or int8 per 32 values
#: (llama.cpp's MXFP4 x Q8_0 trade, asked for explicitly; `oss_runtime.kernel`).
EXPERT_ACTIVATIONS = ("float32", "int8")
_OFF = frozenset({"0", "off", "false", "no"})
#: The environment switches of the CPU path and their defaults (docs/runtime.md).
SWITCHES = {"OSS_RUNTIME_KERNEL": "1", "OSS_RUNTIME_BF16_GEMV": "1", "OSS_RUNTIME_PREFAULT": "0",
            "OSS_RUNTIME_EXPERT_ACTIVATIONS": "float32"}


def switch(name: str, default: bool) -> bool:
    """An on/off environment switch: unset or empty is ``default``, ``0``/``off``/``false``/``no``
    is off, any other value on."""
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in _OFF


def expert_activations(value: str | None = None) -> str:
    """``value``, else ``$OSS_RUNTIME_EXPERT_ACTIVATIONS``, else ``"float32"``; checked."""
    origin = "expert_activations"
    if value is None:
        value = os.environ.get("OSS_RUNTIME_EXPERT_ACTIVATIONS", "").strip() or "float32"
        origin = "OSS_RUNTIME_EXPERT_ACTIVATIONS"
    chosen = str(value).strip().lower()
    if chosen not in EXPERT_ACTIVATIONS:
        raise ValueError(
            f"{origin} must be 'float32' (exact, the default) or 'int8' (the experts' inputs "
            f"rounded to int8 per 32 values, as llama.cpp does: faster on a CPU), got {value!r}"
        )
    return chosen
