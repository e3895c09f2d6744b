"""The parity oracle: transformers' own GptOssForCausalLM holding the dequantized weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import GptOssConfig, GptOssForCausalLM

from oss_runtime import mxfp4
from oss_runtime.checkpoint import inspect_checkpoint


def dense_state_dict(path: Path, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in transformers' dense layout and ``dtype``."""
    ck = inspect_checkpoint(path)
    raw: dict[str, torch.Tensor] = {}
    for file in ck.files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                raw[name] = f.get_tensor(name)
    out: dict[str, torch.Tensor] = {}
    for name, t in raw.items():
        if name.endswith("_scales"):
            continue
        if name.endswith("_blocks"):
            stem = name[: -len("_blocks")]
            out[stem] = mxfp4.to_hf_dense(t, raw[stem + "_scales"], dtype)
        else:
            out[name] = t.to(dtype)
    return out


def reference_model(path: Path, dtype: torch.dtype = torch.float32) -> Any:
    config = GptOssConfig.from_pretrained(path)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._attn_implementation = "eager"
    config.dtype = dtype
    torch.manual_seed(0)
    model = GptOssForCausalLM(config).to(dtype)
    state = dense_state_dict(path, dtype)
    for name in ("input_layernorm", "post_attention_layernorm", "model.norm"):
        for key in state:
            if name in key:
                state[key] = state[key].float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert not [m for m in missing if m != "lm_head.weight" or not config.tie_word_embeddings], (
        missing
    )
    return model.eval()
