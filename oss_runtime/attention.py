"""gpt-oss attention for the CPU path: transformers' eager attention (with sinks), in float32.

transformers' eager attention repeats each key/value head for its query heads (a copy of the
whole cache per layer and token) and, for a bf16 model, runs its two matmuls and the softmax in
bf16; on a CPU without native bf16 arithmetic torch's bf16 batched matmul loops over the 64 heads
in a slow fallback. Here the query heads of one key/value head are stacked into the rows of one
float32 matmul against that head's keys (no repeated copy), the softmax with the sink logit runs
in float32, and the output is cast back to the model's dtype. The sums are those of eager
attention in a different order (a float32 model agrees with it to float32 rounding); a bf16 model
gets float32 attention arithmetic instead of bf16.

`register()` adds it to transformers' attention and mask registries under `NAME`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NAME", "register"]

NAME = "oss_runtime_eager32"


def attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                      scaling: float, dropout: float = 0.0, **kwargs: Any) -> tuple[Any, Any]:
    """Same contract as transformers' gpt-oss ``eager_attention_forward`` (inference only)."""
    import torch
    from torch.nn import functional as F

    batch, heads, q_len, dim = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    group = heads // kv_heads
    q = query.to(torch.float32).reshape(batch, kv_heads, group * q_len, dim)
    logits = torch.matmul(q, key.to(torch.float32).transpose(2, 3)) * scaling
    logits = logits.view(batch, heads, q_len, k_len)
    if attention_mask is not None:
        logits = logits + attention_mask
    sinks = module.sinks.to(torch.float32).reshape(1, -1, 1, 1).expand(batch, -1, q_len, -1)
    combined = torch.cat([logits, sinks], dim=-1)
    combined = combined - combined.max(dim=-1, keepdim=True).values
    probs = F.softmax(combined, dim=-1)[..., :-1]  # the sink takes its share, then is dropped
    out = torch.matmul(probs.reshape(batch, kv_heads, group * q_len, k_len),
                       value.to(torch.float32))
    out = out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous().to(query.dtype)
    return out, probs


def register() -> str:
    """Register the function (and eager's additive mask) with transformers; return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, eager_mask)
    return NAME
