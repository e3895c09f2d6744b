"""The ``"transformers"`` backend: ``GptOssForCausalLM.from_pretrained`` as the plan says.

On a GPU this is transformers' native MXFP4 path (the Triton kernels); elsewhere, dequantized
weights when the plan asked for them and memory allows. Its sibling, the ``"mapped"`` backend
(CPU, experts memory-mapped and still MXFP4), is `oss_runtime.bind`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oss_runtime.errors import MissingDependency
from oss_runtime.plan import LoadPlan

__all__ = ["load_transformers_model"]


def load_transformers_model(path: Path, plan: LoadPlan, *, offline: bool | None = None) -> Any:
    """The model of the checkpoint at ``path``, loaded by transformers as ``plan`` says.
    ``offline``: transformers' native MXFP4 kernel comes from the local Hugging Face cache
    only (the plan made sure it is there)."""
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
    with _offline(bool(offline)):
        model: Any = GptOssForCausalLM.from_pretrained(os.fspath(path), **kwargs)
    return model.eval()


@contextlib.contextmanager
def _offline(on: bool) -> Iterator[None]:
    """Hub offline mode for the duration: the hub kernel is read from the cache. (huggingface_hub
    reads ``HF_HUB_OFFLINE`` once, at import, into ``constants.HF_HUB_OFFLINE``.)"""
    if not on:
        yield
        return
    from huggingface_hub import constants

    saved = (os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE)
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[0]
        constants.HF_HUB_OFFLINE = saved[1]
