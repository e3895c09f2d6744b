"""What a gpt-oss checkpoint claims to be: `ModelSpec`, parsed from config.json (pure, stdlib only).

The spec is a frozen dataclass with the shape facts the runtime needs. Keys it does not use are
kept verbatim in `extra`; a missing or malformed required key raises `CheckpointError` naming the
key and the file.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from oss_runtime.errors import CheckpointError

__all__ = ["KNOWN_QUANT_METHODS", "ModelSpec", "spec_from_config"]

#: quant methods this runtime executes; ``None`` means dense (unquantized) experts.
KNOWN_QUANT_METHODS = ("mxfp4",)

_REQUIRED_INTS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Shape facts of a gpt-oss model, as read from config.json."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_local_experts: int
    num_experts_per_tok: int
    vocab_size: int
    layer_types: tuple[str, ...]
    tie_word_embeddings: bool = False
    attention_bias: bool = True
    quant_method: str | None = None  # "mxfp4" or None (dense experts)
    swiglu_limit: float = 7.0
    swiglu_alpha: float = 1.702
    extra: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

    @property
    def quantized(self) -> bool:
        return self.quant_method is not None

    @property
    def expert_bytes(self) -> int:
        """Bytes one expert of one layer occupies on disk (weights, scales and biases)."""
        h, i = self.hidden_size, self.intermediate_size
        if self.quantized:
            weights = 2 * i * (h // 32) * 17 + h * (i // 32) * 17
        else:
            weights = 2 * (h * 2 * i + i * h)
        return weights + 2 * (2 * i + h)


def _int(config: Mapping[str, Any], key: str, source: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        if key not in config and default is None:
            raise CheckpointError(
                f"{source}: required key {key!r} is missing; a gpt-oss config.json must set it "
                "(compare with the config.json of openai/gpt-oss-20b)."
            )
        raise CheckpointError(f"{source}: {key!r} must be a positive integer, got {value!r}.")
    return value


def spec_from_config(config: Mapping[str, Any], source: str = "config.json") -> ModelSpec:
    """Parse a config.json mapping into a `ModelSpec`; raise `CheckpointError` on any defect."""
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{source}: expected a JSON object, got {type(config).__name__}.")
    model_type = config.get("model_type")
    if model_type != "gpt_oss":
        raise CheckpointError(
            f"{source}: model_type is {model_type!r}, not 'gpt_oss'; oss_runtime only runs gpt-oss "
            "checkpoints in the Hugging Face layout."
        )
    ints = {key: _int(config, key, source) for key in _REQUIRED_INTS}
    if "num_local_experts" not in config and "num_experts" in config:
        experts = _int(config, "num_experts", source)
    else:
        experts = _int(config, "num_local_experts", source)
    top_k = _int(config, "num_experts_per_tok", source, config.get("experts_per_token", 4))
    heads = ints["num_attention_heads"]
    kv_heads = _int(config, "num_key_value_heads", source, heads)
    head_dim = _int(config, "head_dim", source, ints["hidden_size"] // heads)
    if top_k > experts:
        raise CheckpointError(
            f"{source}: num_experts_per_tok={top_k} exceeds num_local_experts={experts}."
        )
    if heads % kv_heads:
        raise CheckpointError(
            f"{source}: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}."
        )
    layers = ints["num_hidden_layers"]
    layer_types = config.get("layer_types")
    if layer_types is None:
        layer_types = [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)
        ]
    if (
        not isinstance(layer_types, list)
        or len(layer_types) != layers
        or any(t not in ("sliding_attention", "full_attention") for t in layer_types)
    ):
        raise CheckpointError(
            f"{source}: layer_types must list {layers} entries of 'sliding_attention' or "
            f"'full_attention', got {layer_types!r}."
        )
    quant = config.get("quantization_config")
    quant_method: str | None = None
    if quant is not None:
        if not isinstance(quant, Mapping) or "quant_method" not in quant:
            raise CheckpointError(
                f"{source}: quantization_config has no 'quant_method': {quant!r}."
            )
        quant_method = quant["quant_method"]
        if quant_method not in KNOWN_QUANT_METHODS:
            raise CheckpointError(
                f"{source}: unknown quant method {quant_method!r}; oss_runtime executes "
                f"{', '.join(KNOWN_QUANT_METHODS)} experts or dense ones (no quantization_config)."
            )
    if quant_method == "mxfp4":
        for key in ("hidden_size", "intermediate_size"):
            if ints[key] % 32:
                raise CheckpointError(
                    f"{source}: {key}={ints[key]} is not a multiple of 32, the MXFP4 block size."
                )
    if ints["intermediate_size"] % 2:
        raise CheckpointError(f"{source}: intermediate_size must be even.")
    known = set(_REQUIRED_INTS) | {
        "model_type", "num_local_experts", "num_experts", "num_experts_per_tok", "experts_per_token",
        "num_key_value_heads", "head_dim", "layer_types", "quantization_config",
        "tie_word_embeddings", "attention_bias", "swiglu_limit", "swiglu_alpha",
    }
    extra = {k: v for k, v in config.items() if k not in known}
    return ModelSpec(
        hidden_size=ints["hidden_size"],
        intermediate_size=ints["intermediate_size"],
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        num_local_experts=experts,
        num_experts_per_tok=top_k,
        vocab_size=ints["vocab_size"],
        layer_types=tuple(layer_types),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        attention_bias=bool(config.get("attention_bias", True)),
        quant_method=quant_method,
        swiglu_limit=float(config.get("swiglu_limit", 7.0)),
        swiglu_alpha=float(config.get("swiglu_alpha", 1.702)),
        extra=types.MappingProxyType(extra),
    )
