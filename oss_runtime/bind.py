"""Build a transformers GptOssForCausalLM whose weights are views of the memory-mapped checkpoint.

`load_model(path, dtype=...)`:

1. inspects the checkpoint from its headers (`checkpoint.inspect_checkpoint`);
2. builds an empty skeleton (accelerate ``init_empty_weights``: parameters on meta, buffers such
   as the rotary ``inv_freq`` real), without transformers' quantizer;
3. binds every non-expert tensor as a zero-copy view of the mapped shard when its stored dtype is
   the compute dtype (bf16 checkpoints with ``dtype="bfloat16"``), converting only where needed
   (norms stay float32 as transformers keeps them);
4. replaces each layer's ``mlp`` with `experts.RoutedMoE`, whose experts are mapped MXFP4 blocks
   and scales (or dense experts) computed for the routed experts only.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from typing import Any

from oss_runtime.checkpoint import Checkpoint, TensorInfo, inspect_checkpoint
from oss_runtime.errors import CheckpointError, MissingDependency
from oss_runtime.switches import switch

__all__ = ["MappedFiles", "load_model", "resolve_dtype"]

_FP32_SUFFIXES = ("input_layernorm.weight", "post_attention_layernorm.weight", "model.norm.weight")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(
            "oss_runtime needs torch, transformers and accelerate to load a model; install them "
            "with `pip install 'pip-91n[runtime]'`."
        ) from exc
    return torch


def resolve_dtype(dtype: Any) -> Any:
    """``"float32"``/``"bfloat16"``/``"float16"`` or a torch dtype -> torch dtype."""
    torch = _torch()
    if dtype is None:
        return torch.bfloat16
    if isinstance(dtype, torch.dtype):
        value = dtype
    else:
        value = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                 "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}.get(str(dtype))
    if value not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    return value


class MappedFiles:
    """Private (copy-on-write) read mappings of the shards; tensors are views into them."""

    def __init__(self, files: list[str] | tuple[str, ...]) -> None:
        self._maps: dict[str, mmap.mmap] = {}
        for path in files:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._maps[path] = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)

    def view(self, info: TensorInfo) -> Any:
        """A tensor over the mapped bytes of ``info`` (no copy; pages load when touched)."""
        torch = _torch()
        dtype = _DTYPES()[info.dtype]
        itemsize = torch.empty((), dtype=dtype).element_size()
        count = info.nbytes // itemsize
        if count == 0:
            return torch.empty(info.shape, dtype=dtype)
        if info.offset % itemsize:  # unaligned data: the only case that costs a copy
            raw = torch.frombuffer(
                self._maps[info.file], dtype=torch.uint8, count=info.nbytes, offset=info.offset
            )
            return raw.clone().view(dtype).reshape(info.shape)
        flat = torch.frombuffer(self._maps[info.file], dtype=dtype, count=count, offset=info.offset)
        return flat.reshape(info.shape)


def _DTYPES() -> Mapping[str, Any]:
    torch = _torch()
    return {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "U8": torch.uint8,
            "I8": torch.int8}


def _set_param(model: Any, name: str, value: Any) -> None:
    torch = _torch()
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    old = getattr(module, attr)
    if tuple(old.shape) != tuple(value.shape):
        raise CheckpointError(
            f"tensor {name!r} has shape {tuple(value.shape)}, model expects {tuple(old.shape)}."
        )
    module._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)


def _build_skeleton(ck: Checkpoint, dtype: Any) -> Any:
    try:
        from accelerate import init_empty_weights  # type: ignore[import-untyped]
        from transformers import GptOssConfig, GptOssForCausalLM

        from oss_runtime.attention import register as register_attention
    except ImportError as exc:
        raise MissingDependency(
            f"loading gpt-oss needs transformers>=4.55 and accelerate ({exc}); install them with "
            "`pip install 'pip-91n[runtime]'`."
        ) from exc
    config = GptOssConfig.from_pretrained(ck.root)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # transformers' quantizer must never run here
    # sinks need the raw logits (no sdpa): transformers' eager attention, computed in float32
    config._attn_implementation = register_attention()
    config.dtype = dtype
    with init_empty_weights():
        model = GptOssForCausalLM(config)
    return model


def load_model(
    path: str | os.PathLike[str],
    *,
    dtype: Any = "bfloat16",
    expert_cache_bytes: int = 0,
    kernel: str | bool = "auto",
    tile_rows: int = 512,
    kernel_max_tokens: int | None = None,
    prefill_chunk: int | None = 512,
    checkpoint: Checkpoint | None = None,
    prefault: bool | None = None,
    expert_activations: str = "float32",
    linear_weights: str = "exact",
) -> Any:
    """Load a gpt-oss checkpoint directory as a `GptOssForCausalLM` with mapped MXFP4 experts.

    ``dtype`` is the compute dtype of the non-expert path (``"float32"`` for exact parity tests,
    ``"bfloat16"`` for zero-copy binding of a bf16 checkpoint). ``expert_cache_bytes`` bounds an
    LRU of dequantized experts (0 disables it). ``kernel`` is ``"auto"`` (fused C++ kernel when it
    builds, else pure torch), ``True`` (require it) or ``False`` (pure torch). Prompts longer
    than ``prefill_chunk`` tokens run in chunks sharing the KV cache (``None`` disables it).
    ``kernel_max_tokens``: calls with at most this many tokens per expert (and per bf16 linear
    layer) go through the fused kernels, longer ones through torch's matmul; by default 4, or 256
    for a bf16 model on a CPU without native bf16 matmul (`_default_kernel_tokens`).
    ``prefault`` (default: off unless ``OSS_RUNTIME_PREFAULT=1``) maps the experts' pages into the
    process in a background thread (`oss_runtime.prefault`), so the first tokens of a fresh
    process do not take a page fault per page of each expert they reach.
    ``expert_activations="int8"`` rounds the experts' inputs to int8 per 32 values wherever the
    fused kernel runs them (llama.cpp's trade; ``"float32"``, the default, is exact).
    ``linear_weights="int8"`` runs the attention projections and lm_head on an int8 copy of their
    weights (llama.cpp's Q8_0, written once to the cache dir and mapped: `oss_runtime.q8weights`)
    when the fused kernel has it; ``"exact"``, the default, uses them as stored.
    """
    torch = _torch()
    from oss_runtime import experts as ex
    from oss_runtime.layout import expert_prefix

    ck = checkpoint or inspect_checkpoint(path)
    compute = resolve_dtype(dtype)
    model = _build_skeleton(ck, compute)
    files = MappedFiles(ck.files)
    spec = ck.spec
    for name, info in ck.tensors.items():
        if ".mlp.experts." in name:
            continue
        value = files.view(info)
        want = torch.float32 if name.endswith(_FP32_SUFFIXES) else compute
        if value.dtype != want:
            value = value.to(want)
        _set_param(model, name, value)
    if spec.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    # transformers feeds lm_head a strided slice (hidden[:, -k:, :]); for such an input matmul
    # copies the whole [vocab, hidden] weight (1.16 GB for gpt-oss-20b). A fresh input avoids it.
    model.lm_head.register_forward_pre_hook(_contiguous_input)
    fused = _pick_kernel(kernel)
    if kernel_max_tokens is None:
        kernel_max_tokens = _default_kernel_tokens(compute)
    cache = ex.ExpertCache(expert_cache_bytes) if expert_cache_bytes > 0 else None
    for i, layer in enumerate(model.model.layers):
        p = expert_prefix(i)
        gate_up: tuple[Any, ...]
        down: tuple[Any, ...]
        if spec.quantized:
            gate_up = (
                files.view(ck.tensors[p + "gate_up_proj_blocks"]),
                files.view(ck.tensors[p + "gate_up_proj_scales"]),
            )
            down = (
                files.view(ck.tensors[p + "down_proj_blocks"]),
                files.view(ck.tensors[p + "down_proj_scales"]),
            )
        else:
            gate_up, down = (
                (files.view(ck.tensors[p + "gate_up_proj"]),),
                (files.view(ck.tensors[p + "down_proj"]),),
            )
        weights = ex.ExpertWeights(
            gate_up=gate_up,
            down=down,
            gate_up_bias=files.view(ck.tensors[p + "gate_up_proj_bias"]),
            down_bias=files.view(ck.tensors[p + "down_proj_bias"]),
        )
        experts = ex.MappedExperts(
            weights, layer_idx=i, dtype=compute, limit=spec.swiglu_limit, alpha=spec.swiglu_alpha,
            tile_rows=tile_rows, cache=cache, kernel=fused, kernel_max_tokens=kernel_max_tokens,
            int8=expert_activations == "int8",
        )
        layer.mlp = ex.RoutedMoE(layer.mlp.router, experts)
    if linear_weights == "int8" and fused is not None and getattr(fused, "has_int8_linear", False):
        from oss_runtime.q8weights import cached_copy, install_int8_linear

        path, table, layers = cached_copy(model, ck)
        model._oss_int8_files = MappedFiles([os.fspath(path)])  # lives as long as the model
        install_int8_linear(layers, table, model._oss_int8_files, fused)
    if (fused is not None and compute == torch.bfloat16 and getattr(fused, "has_bf16_linear", False)
            and switch("OSS_RUNTIME_BF16_GEMV", True)):
        from oss_runtime.gemv import install_bf16_gemv

        install_bf16_gemv(model, fused, max_tokens=kernel_max_tokens)
    leftover = sorted(
        n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta
    )
    if leftover:
        raise CheckpointError(f"{ck.root}: no weights were bound for {', '.join(leftover[:8])}.")
    if prefill_chunk:
        from oss_runtime.prefill import install_chunked_prefill

        install_chunked_prefill(model, prefill_chunk)
    model.eval()
    model.requires_grad_(False)
    model._oss_files = files  # keep the mappings alive as long as the model
    if _prefault_on(prefault):
        from oss_runtime.prefault import start_prefault

        dense = {f for f in ck.files if not _sparse(f)}  # holes read as zeros: nothing to map
        ranges = [(i.file, i.offset, i.nbytes) for n, i in ck.tensors.items()
                  if ".mlp.experts." in n and i.dtype == "U8" and i.file in dense]
        model._oss_prefault = start_prefault(files._maps, ranges)
    model._oss_checkpoint = ck
    model._oss_expert_cache = cache
    return model


def _default_kernel_tokens(compute: Any) -> int:
    """How many tokens the fused kernels take before torch's matmul does better.

    Where torch has no native bf16 matmul (no AVX512-BF16/AMX: oneDNN says so), its bf16
    ``F.linear`` runs 3-4x slower than the kernels even at 128 tokens (measured on an AVX2-only
    2-core machine, see docs/benchmarks.md), so a bf16 model sends prefill through them too."""
    torch = _torch()
    if compute != torch.bfloat16:
        return 4
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        native = False
    return 4 if native else 256


def _sparse(path: str) -> bool:
    """Whether most of ``path`` is holes (a synthetic checkpoint written without data)."""
    st = os.stat(path)
    return getattr(st, "st_blocks", None) is not None and st.st_blocks * 512 < st.st_size // 2


def _prefault_on(prefault: bool | None) -> bool:
    # off by default: measured on the random 20b checkpoint, it sped the first 32 decoded tokens
    # of a fresh process up by 5-16 % but slowed the prefill before them by up to 30 %
    return switch("OSS_RUNTIME_PREFAULT", False) if prefault is None else prefault


def _contiguous_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    # .contiguous() keeps odd strides on size-1 dims, which is enough to trigger the copy: clone
    torch = _torch()
    return (args[0].clone(memory_format=torch.contiguous_format), *args[1:])


def _pick_kernel(kernel: str | bool) -> Any:
    if kernel is False or kernel == "off":
        return None
    from oss_runtime import kernel as kernel_mod

    fn = kernel_mod.load_kernel(required=kernel is True or kernel == "on")
    return fn
