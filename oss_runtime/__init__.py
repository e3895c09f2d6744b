"""oss_runtime: gpt-oss-20b memory-mapped and still MXFP4-quantized.

Importing this package loads no torch, transformers or httpx; the names below are imported on
first use (PEP 562 ``__getattr__``).

* `inspect_checkpoint(path)`: validate a checkpoint from its headers only (stdlib only);
* `load_model(path, dtype=...)`: a transformers ``GptOssForCausalLM`` whose non-expert weights
  are views of the mapped files and whose experts run routed-only from mapped MXFP4 blocks;
* `load_gpt_oss_20b(source=None, ...)`: resolve (directory, HF cache or download), plan and load
  in one call; returns a `GptOssRuntime` (``.model``, ``.tokenizer``, ``.plan``, ``.generate()``);
* `plan_load(checkpoint, environment, options)`: the pure load plan (`LoadPlan`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "inspect_checkpoint": "oss_runtime.checkpoint",
    "Checkpoint": "oss_runtime.checkpoint",
    "TensorInfo": "oss_runtime.checkpoint",
    "ModelSpec": "oss_runtime.spec",
    "load_model": "oss_runtime.bind",
    "load_gpt_oss_20b": "oss_runtime.api",
    "GptOssRuntime": "oss_runtime.api",
    "LoadPlan": "oss_runtime.plan",
    "LoadOptions": "oss_runtime.plan",
    "plan_load": "oss_runtime.plan",
    "Environment": "oss_runtime.environment",
    "detect_environment": "oss_runtime.environment",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oss_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
