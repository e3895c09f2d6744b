"""The ``"transformers"`` backend: ``GptOssForCausalLM.from_pretrained`` as the plan says.

On a GPU this is transformers' native MXFP4 path (the Triton kernels); elsewhere, dequantized
weights when the plan asked for them and memory allows. Its sibling, the ``"mapped"`` backend
(CPU, experts memory-mapped and still MXFP4), is `oss_runtime.bind`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oss_runtime.errors import MissingDependency
from oss_runtime.plan import LoadPlan

__all__ = ["load_transformers_model"]


def load_transformers_model(path: Path, plan: LoadPlan) -> Any:
    """The model of the checkpoint at ``path``, loaded by transformers as ``plan`` says."""
    try:
        import torch
        from transformers import GptOssForCausalLM, Mxfp4Config  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:  # pragma: no cover
        raise MissingDependency(
            f"this plan needs transformers with gpt-oss support ({exc})."
        ) from exc
    kwargs: dict[str, Any] = {"dtype": getattr(torch, plan.dtype)}
    if plan.max_memory:
        kwargs.update(device_map="auto", max_memory=dict(plan.max_memory))
    else:
        kwargs["device_map"] = plan.device
    if plan.quantization == "dequantized":
        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    if plan.device == "cpu":
        kwargs["attn_implementation"] = "eager"
    model: Any = GptOssForCausalLM.from_pretrained(os.fspath(path), **kwargs)
    return model.eval()
