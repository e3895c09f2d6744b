"""The tensor names, dtypes and shapes a gpt-oss checkpoint must hold (pure, stdlib only).

`expected_tensors(spec)` is the single source of truth for both the checkpoint validator and the
synthetic checkpoint writer, so the two cannot drift apart. Names follow the Hugging Face layout
of openai/gpt-oss-20b (459 tensors for the 20B config).
"""

from __future__ import annotations

import dataclasses

from oss_runtime.spec import ModelSpec

__all__ = [
    "DTYPE_SIZES",
    "FLOAT_DTYPES",
    "TensorSpec",
    "expected_tensors",
    "expert_prefix",
    "layer_prefix",
]

#: safetensors dtype name -> bytes per element
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}

#: dtypes accepted for the non-expert ("float") tensors; the runtime converts where needed
FLOAT_DTYPES = ("BF16", "F16", "F32")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One expected tensor: its name, allowed dtypes (first is the canonical one) and shape."""

    name: str
    dtypes: tuple[str, ...]
    shape: tuple[int, ...]

    @property
    def dtype(self) -> str:
        return self.dtypes[0]


def layer_prefix(i: int) -> str:
    return f"model.layers.{i}."


def expert_prefix(i: int) -> str:
    return f"model.layers.{i}.mlp.experts."


def expected_tensors(spec: ModelSpec) -> dict[str, TensorSpec]:
    """Every tensor the checkpoint of `spec` must contain, in file order of the 20B checkpoint."""
    h, inter, e = spec.hidden_size, spec.intermediate_size, spec.num_local_experts
    q_width = spec.num_attention_heads * spec.head_dim
    kv_width = spec.num_key_value_heads * spec.head_dim
    out: dict[str, TensorSpec] = {}

    def add(name: str, shape: tuple[int, ...], dtypes: tuple[str, ...] = FLOAT_DTYPES) -> None:
        out[name] = TensorSpec(name, dtypes, shape)

    add("model.embed_tokens.weight", (spec.vocab_size, h))
    for i in range(spec.num_hidden_layers):
        p = layer_prefix(i)
        add(p + "input_layernorm.weight", (h,))
        add(p + "post_attention_layernorm.weight", (h,))
        for proj, width in (("q", q_width), ("k", kv_width), ("v", kv_width)):
            add(p + f"self_attn.{proj}_proj.weight", (width, h))
            if spec.attention_bias:
                add(p + f"self_attn.{proj}_proj.bias", (width,))
        add(p + "self_attn.o_proj.weight", (h, q_width))
        if spec.attention_bias:
            add(p + "self_attn.o_proj.bias", (h,))
        add(p + "self_attn.sinks", (spec.num_attention_heads,))
        add(p + "mlp.router.weight", (e, h))
        add(p + "mlp.router.bias", (e,))
        x = expert_prefix(i)
        if spec.quantized:
            add(x + "gate_up_proj_blocks", (e, 2 * inter, h // 32, 16), ("U8",))
            add(x + "gate_up_proj_scales", (e, 2 * inter, h // 32), ("U8",))
            add(x + "down_proj_blocks", (e, h, inter // 32, 16), ("U8",))
            add(x + "down_proj_scales", (e, h, inter // 32), ("U8",))
        else:
            add(x + "gate_up_proj", (e, h, 2 * inter))
            add(x + "down_proj", (e, inter, h))
        add(x + "gate_up_proj_bias", (e, 2 * inter))
        add(x + "down_proj_bias", (e, h))
    add("model.norm.weight", (h,))
    if not spec.tie_word_embeddings:
        add("lm_head.weight", (spec.vocab_size, h))
    return out
