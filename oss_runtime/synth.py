"""Synthetic gpt-oss checkpoints with the real tensor names and layout, for tests and benchmarks.

Shapes:

* ``tiny``: a few-KB model (hidden 64) for parity tests;
* ``wide``: the real 20B widths and vocabulary with a chosen number of layers (default 4);
* ``20b`` / ``20b-sparse``: the full 20B shape; ``sparse`` writes only the headers and leaves the
  data as file holes (zeros) that cost no disk.

Random data is deterministic in ``seed``; MXFP4 experts are random codes with scales chosen so the
dequantized weights have a sensible magnitude. Files are streamed tensor by tensor, so writing the
wide checkpoint needs little memory.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from oss_runtime.errors import CheckpointError
from oss_runtime.layout import DTYPE_SIZES, TensorSpec, expected_tensors
from oss_runtime.spec import spec_from_config

__all__ = ["SHAPES", "synth_config", "write_checkpoint", "write_safetensors"]

SHAPES = ("tiny", "wide", "20b", "20b-sparse")

_ROPE = {
    "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
    "original_max_position_embeddings": 4096, "truncate": False,
}

_20B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "num_hidden_layers": 24,
    "hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 32,
    "num_experts_per_tok": 4, "experts_per_token": 4, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 64, "attention_bias": True, "attention_dropout": 0.0,
    "sliding_window": 128, "rope_theta": 150000, "rope_scaling": _ROPE,
    "max_position_embeddings": 131072, "initial_context_length": 4096, "vocab_size": 201088,
    "rms_norm_eps": 1e-05, "hidden_act": "silu", "swiglu_limit": 7.0, "router_aux_loss_coef": 0.9,
    "output_router_logits": False, "tie_word_embeddings": False, "use_cache": True,
    "initializer_range": 0.02, "eos_token_id": 200002, "pad_token_id": 199999,
    "torch_dtype": "bfloat16", "transformers_version": "4.55.0.dev0",
    "quantization_config": {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head",
        ],
    },
}

_TINY: dict[str, Any] = {
    "vocab_size": 512, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4,
    "num_experts_per_tok": 2, "experts_per_token": 2, "sliding_window": 8,
    "max_position_embeddings": 4096, "pad_token_id": 0, "eos_token_id": 2, "bos_token_id": 1,
}


def synth_config(
    shape: str = "tiny",
    *,
    layers: int | None = None,
    experts: int | None = None,
    top_k: int | None = None,
    dense_experts: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """config.json contents for a synthetic checkpoint of ``shape`` (see module docstring)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    config: dict[str, Any] = json.loads(json.dumps(_20B))
    if shape == "tiny":
        config.update(_TINY)
    elif shape == "wide" and layers is None:
        layers = 4
    if layers is not None:
        config["num_hidden_layers"] = layers
    if experts is not None:
        config["num_local_experts"] = experts
    if top_k is not None:
        config["num_experts_per_tok"] = config["experts_per_token"] = top_k
    config.update(overrides)
    n = config["num_hidden_layers"]
    config.setdefault("layer_types", None)
    if config["layer_types"] is None:
        config["layer_types"] = [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)
        ]
    if dense_experts:
        config.pop("quantization_config", None)
    return config


def _header(entries: list[tuple[str, str, tuple[int, ...]]]) -> tuple[bytes, list[int]]:
    meta: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset, sizes = 0, []
    for name, dtype, shape in entries:
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        meta[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
        sizes.append(nbytes)
    raw = json.dumps(meta, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data section 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw, sizes


def write_safetensors(
    path: os.PathLike[str] | str,
    entries: list[tuple[str, str, tuple[int, ...]]],
    chunks: Mapping[str, Iterator[bytes]] | None = None,
) -> int:
    """Write a safetensors file; a tensor without chunks is left as a hole (reads as zeros)."""
    head, sizes = _header(entries)
    total = len(head) + sum(sizes)
    # a new file, renamed over the old one: a process that has the old one mapped keeps it
    # (truncating a mapped file in place kills that process with SIGBUS)
    tmp = Path(f"{os.fspath(path)}.{os.getpid()}.tmp")
    try:
        _write_file(tmp, head, entries, sizes, chunks, total)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return total


def _write_file(path: Path, head: bytes, entries: list[tuple[str, str, tuple[int, ...]]],
                sizes: list[int], chunks: Mapping[str, Iterator[bytes]] | None, total: int
                ) -> None:
    with open(path, "wb") as f:
        f.write(head)
        pos = len(head)
        for (name, _, _), nbytes in zip(entries, sizes):
            source = chunks.get(name) if chunks else None
            if source is None:
                pos += nbytes
                f.seek(pos)
                continue
            written = 0
            for piece in source:
                f.write(piece)
                written += len(piece)
            if written != nbytes:
                raise ValueError(f"{name}: produced {written} bytes, expected {nbytes}")
            pos += nbytes
        f.truncate(total)


def _tensor_bytes(t: TensorSpec, fan_in: int, seed: int, dtype: str) -> Iterator[bytes]:
    """Deterministic random contents of one tensor, streamed in chunks of about 4 M elements."""
    import torch

    gen = torch.Generator().manual_seed(seed ^ zlib.crc32(t.name.encode()))
    total, step, name = math.prod(t.shape), 1 << 22, t.name
    torch_dtype = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}.get(dtype)
    for start in range(0, total, step):
        n = min(step, total - start)
        if name.endswith("_blocks"):
            out = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=gen)
        elif name.endswith("_scales"):
            centre = 127 + round(math.log2(1.0 / (2.93 * math.sqrt(t.shape[-1] * 32))))
            out = torch.randint(centre - 1, centre + 2, (n,), dtype=torch.uint8, generator=gen)
        else:
            values = torch.randn(n, generator=gen)
            if name.endswith("norm.weight"):
                values = 1.0 + 0.1 * values
            elif name.endswith("bias"):
                values = 0.1 * values
            elif not (name.endswith("sinks") or name == "model.embed_tokens.weight"):
                gain = 4.0 if name.endswith("router.weight") else 1.0
                values = values * (gain / math.sqrt(fan_in))
            out = values.to(torch_dtype)
            if out.dtype == torch.bfloat16:
                out = out.view(torch.int16)
        yield out.numpy().tobytes()


def _plan_shards(sizes: list[int], shards: int) -> list[int]:
    """Shard index of each tensor: consecutive runs of about equal bytes."""
    total = sum(sizes) or 1
    out, acc = [], 0
    for size in sizes:
        out.append(min(shards - 1, acc * shards // total))
        acc += size
    return out


def write_checkpoint(
    directory: os.PathLike[str] | str,
    config: Mapping[str, Any],
    *,
    sparse: bool = False,
    shards: int = 2,
    index: bool = True,
    seed: int = 0,
    float_dtype: str = "BF16",
    overwrite: bool = False,
) -> Path:
    """Write config.json and safetensors shards for ``config`` into ``directory``; return it.

    ``directory`` must be new or empty: a real checkpoint there would be overwritten (its shard
    names are the ones written here), so anything else needs ``overwrite=True``. Files are
    replaced, never truncated in place, so a process that maps the old ones keeps them."""
    root = Path(directory).expanduser()
    if root.exists() and not root.is_dir():
        raise CheckpointError(f"{root} is a file, not a directory: give a new or empty directory "
                              "for the synthetic checkpoint.")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise CheckpointError(
            f"{root} is not empty: writing a synthetic checkpoint there would replace its "
            "config.json and model-*.safetensors (a real checkpoint's names). Give a new or "
            "empty directory, or pass overwrite=True (`--overwrite`).")
    root.mkdir(parents=True, exist_ok=True)
    spec = spec_from_config(config)
    tensors = list(expected_tensors(spec).values())
    dtypes = [t.dtype if t.dtype == "U8" else float_dtype for t in tensors]
    sizes = [math.prod(t.shape) * DTYPE_SIZES[d] for t, d in zip(tensors, dtypes)]
    shards = max(1, min(shards, len(tensors)))
    owner = _plan_shards(sizes, shards)
    if shards == 1 and not index:
        names = ["model.safetensors"]
    else:  # the converter's own naming quirk: numbered 0..n-1 "of" n-1
        names = [f"model-{i:05d}-of-{max(shards - 1, 1):05d}.safetensors" for i in range(shards)]
    fan = {t.name: t.shape[-1] for t in tensors}
    for name in fan:  # dense experts are stored [E, in, out]
        if name.endswith("mlp.experts.gate_up_proj"):
            fan[name] = spec.hidden_size
        elif name.endswith("mlp.experts.down_proj"):
            fan[name] = spec.intermediate_size
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(shards):
        mine = [(t, d) for t, d, o in zip(tensors, dtypes, owner) if o == s]
        entries = [(t.name, d, t.shape) for t, d in mine]
        chunks = (
            None if sparse else {t.name: _tensor_bytes(t, fan[t.name], seed, d) for t, d in mine}
        )
        total += write_safetensors(root / names[s], entries, chunks)
        weight_map.update({t.name: names[s] for t, _ in mine})
    if index:
        (root / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
        )
    (root / "config.json").write_text(json.dumps(dict(config), indent=2))
    return root
