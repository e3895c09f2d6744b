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
    "inspect_checkpoint": "checkpoint",
    "Checkpoint": "checkpoint",
    "TensorInfo": "checkpoint",
    "ModelSpec": "spec",
    "load_model": "bind",
    "load_gpt_oss_20b": "api",
    "GptOssRuntime": "api",
    "LoadPlan": "plan",
    "LoadOptions": "plan",
    "plan_load": "plan",
    "Environment": "environment",
    "detect_environment": "environment",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oss_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
