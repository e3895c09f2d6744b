"""Chunked prefill: run a long prompt through the decoder in slices that share one KV cache.

Eager attention (the only kind gpt-oss's sinks allow on CPU) materialises ``[heads, q, k]``
scores: a 4,096-token prompt in one pass needs 4.3 GB in float32 for gpt-oss-20b. Feeding the
prompt in chunks of ``chunk`` tokens, each attending to the cache of the previous ones, bounds
that at ``heads * chunk * k`` and gives the same hidden states (the tests check logits parity).

`install_chunked_prefill(model, chunk)` wraps the inner ``GptOssModel.forward`` of a loaded
model; `model(...)` and `model.generate(...)` then chunk transparently. Calls that ask for
per-layer outputs (attentions, hidden states) or pass a prebuilt mask mapping run unchunked.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["install_chunked_prefill"]


def install_chunked_prefill(model: Any, chunk: int) -> None:
    """Make ``model.model`` process inputs longer than ``chunk`` tokens in chunks."""
    if chunk <= 0:
        raise ValueError(f"prefill chunk must be a positive number of tokens, got {chunk}")
    inner = model.model
    original = getattr(inner, "_oss_unchunked_forward", None) or inner.forward
    inner._oss_unchunked_forward = original

    @functools.wraps(original)
    def forward(
        input_ids: Any = None,
        attention_mask: Any = None,
        position_ids: Any = None,
        cache: Any = None,
        inputs_embeds: Any = None,
        use_cache: Any = None,
        **kwargs: Any,
    ) -> Any:
        tokens = input_ids if input_ids is not None else inputs_embeds
        wants_layers = kwargs.get("output_attentions") or kwargs.get("output_hidden_states")
        if (
            tokens is None
            or tokens.shape[1] <= chunk
            or wants_layers
            or isinstance(attention_mask, dict)
        ):
            return original(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs,
            )
        import torch
        from transformers import DynamicCache

        keep_cache = use_cache if use_cache is not None else inner.config.use_cache
        if cache is None:
            cache = DynamicCache(config=inner.config)
        past = cache.get_seq_length()
        seq = tokens.shape[1]
        if position_ids is None:
            position_ids = torch.arange(past, past + seq, device=tokens.device).unsqueeze(0)
        hidden = []
        out = None
        for start in range(0, seq, chunk):
            end = min(start + chunk, seq)
            out = original(
                input_ids=None if input_ids is None else input_ids[:, start:end],
                inputs_embeds=None if inputs_embeds is None else inputs_embeds[:, start:end],
                attention_mask=None if attention_mask is None else attention_mask[:, : past + end],
                position_ids=position_ids[..., start:end],
                cache=cache,
                use_cache=True,
                **kwargs,
            )
            hidden.append(out.last_hidden_state)
        assert out is not None
        out.last_hidden_state = torch.cat(hidden, dim=1)
        if not keep_cache:
            out.cache = None
        return out

    inner.forward = forward
