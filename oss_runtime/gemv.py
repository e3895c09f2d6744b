"""Decode-time mat-vec for the bf16 linear layers (attention projections, lm_head).

At one token, a linear layer is a mat-vec that reads each weight once; torch's bf16 ``F.linear``
on a CPU without native bf16 arithmetic converts on the way and reaches about half the memory
bandwidth. `install_bf16_gemv` routes calls with at most ``max_tokens`` tokens through the fused
kernel's ``bf16_linear`` (bf16 weights widened exactly to float32 in registers, float32
accumulation, the result cast back to the input dtype) and leaves longer inputs (prefill) to
torch. Only the order of the additions differs from torch's bf16 matmul.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install_bf16_gemv", "linear_layers"]


def linear_layers(model: Any) -> list[tuple[str, Any]]:
    """``(name, module)`` of every bound ``nn.Linear`` outside the experts (attention, lm_head)."""
    from torch import nn

    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and ".mlp." not in f".{name}."
            and not module.weight.is_meta]


def install_bf16_gemv(model: Any, kernel: Any, *, max_tokens: int = 4) -> int:
    """Wrap the ``forward`` of every bf16 linear layer outside the experts that does not already
    run on int8 weights (`oss_runtime.q8weights`); return how many."""
    import torch

    count = 0
    for _, module in linear_layers(model):
        if module.weight.dtype != torch.bfloat16 or getattr(module, "_oss_int8", False):
            continue
        module.forward = _gemv_forward(module, kernel, max_tokens)
        count += 1
    return count


def _gemv_forward(module: Any, kernel: Any, max_tokens: int) -> Any:
    import torch
    from torch.nn import functional as F

    weight = module.weight
    bias32 = None if module.bias is None else module.bias.detach().to(torch.float32)
    out_features, in_features = weight.shape

    def forward(x: torch.Tensor) -> torch.Tensor:
        tokens = x.numel() // in_features if x.shape[-1] == in_features else max_tokens + 1
        if tokens > max_tokens or x.dtype != torch.bfloat16 or x.requires_grad:
            return F.linear(x, weight, module.bias)
        y: torch.Tensor = kernel.bf16_linear(
            x.reshape(tokens, in_features).to(torch.float32), weight, bias32)
        return y.to(x.dtype).reshape(*x.shape[:-1], out_features)

    return forward
