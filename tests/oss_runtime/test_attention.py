"""The float32 grouped attention against transformers' eager gpt-oss attention (with sinks)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
modeling = pytest.importorskip("transformers.models.gpt_oss.modeling_gpt_oss")

from oss_runtime.attention import NAME, attention_forward  # noqa: E402


def _inputs(q_len: int, k_len: int, dtype: torch.dtype, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 8, q_len, 16, generator=g)
    k = torch.randn(2, 2, k_len, 16, generator=g)
    v = torch.randn(2, 2, k_len, 16, generator=g)
    sinks = torch.randn(8, generator=g)
    # causal over the last q_len keys, and a window of 6 keys (a sliding layer's mask)
    pos_q = torch.arange(k_len - q_len, k_len)[:, None]
    pos_k = torch.arange(k_len)[None, :]
    allowed = (pos_k <= pos_q) & (pos_k > pos_q - 6)
    mask = torch.where(allowed, 0.0, torch.finfo(dtype).min)[None, None].expand(2, 1, -1, -1)
    module = SimpleNamespace(sinks=sinks.to(dtype), num_key_value_groups=4, training=False)
    return module, q.to(dtype), k.to(dtype), v.to(dtype), mask.to(dtype)


@pytest.mark.parametrize(("q_len", "k_len"), [(1, 1), (1, 9), (5, 12)])
def test_float32_matches_eager(q_len: int, k_len: int) -> None:
    module, q, k, v, mask = _inputs(q_len, k_len, torch.float32)
    want, want_w = modeling.eager_attention_forward(module, q, k, v, mask, 0.25)
    got, got_w = attention_forward(module, q, k, v, mask, 0.25)
    assert got.shape == want.shape == (2, q_len, 8, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)


def test_bfloat16_is_closer_to_exact_than_bf16_arithmetic() -> None:
    module, q, k, v, mask = _inputs(1, 40, torch.bfloat16, seed=3)
    exact, _ = modeling.eager_attention_forward(
        SimpleNamespace(sinks=module.sinks.double(), num_key_value_groups=4, training=False),
        q.double(), k.double(), v.double(), mask.double(), 0.25)
    got, _ = attention_forward(module, q, k, v, mask, 0.25)
    eager, _ = modeling.eager_attention_forward(module, q, k, v, mask, 0.25)
    assert got.dtype == torch.bfloat16
    ours = float((got.double() - exact).abs().max())
    theirs = float((eager.double() - exact).abs().max())
    assert ours <= theirs
    assert ours <= 2 * float(exact.abs().max()) * 2**-8  # the output's own bf16 rounding


def test_a_loaded_model_uses_it(tiny_checkpoint: Path) -> None:
    from oss_runtime.bind import load_model

    model = load_model(tiny_checkpoint, dtype="float32")
    assert model.config._attn_implementation == NAME
    calls = []
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, lambda *a, **kw: calls.append(1) or attention_forward(*a, **kw))
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([[1, 2, 3]]))
    finally:
        AttentionInterface.register(NAME, attention_forward)
    assert len(calls) == model.config.num_hidden_layers
