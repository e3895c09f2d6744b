"""The MXFP4 codec: bit-exact against the format facts, transformers' conversion and itself."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from oss_runtime import mxfp4  # noqa: E402

transformers_mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.dtype == torch.bfloat16 else torch.int32)


def test_nibble_order_and_scale_bias() -> None:
    # byte 0x21: low nibble 1 (0.5) is element 0, high nibble 2 (1.0) is element 1
    blocks = torch.zeros(1, 1, 16, dtype=torch.uint8)
    blocks[0, 0, 0] = 0x21
    blocks[0, 0, 1] = 0xF8  # low 8 = -0.0, high 15 = -6.0
    w = mxfp4.dequantize(blocks, torch.tensor([[127]], dtype=torch.uint8))
    assert w.shape == (1, 32)
    assert w[0, :4].tolist() == [0.5, 1.0, -0.0, -6.0]
    assert torch.signbit(w[0, 2])
    w = mxfp4.dequantize(blocks, torch.tensor([[129]], dtype=torch.uint8))
    assert w[0, :4].tolist() == [2.0, 4.0, -0.0, -24.0]


def test_every_byte_every_scale_matches_transformers() -> None:
    # all 256 bytes in every position, all 256 scales (including 0 and 255), both dtypes
    blocks = torch.arange(256, dtype=torch.uint8).repeat(256).reshape(2, 128, 16, 16)
    scales = torch.arange(256, dtype=torch.uint8).reshape(2, 128, 1).expand(2, 128, 16).contiguous()
    for dtype in (torch.float32, torch.bfloat16):
        ref = transformers_mxfp4.convert_moe_packed_tensors(
            blocks.clone(), scales.clone(), dtype=dtype
        )
        ours = mxfp4.to_hf_dense(blocks, scales, dtype)
        assert ours.shape == ref.shape == (2, 512, 128)
        assert torch.equal(bits(ours), bits(ref)), dtype


def test_random_against_transformers_bf16_and_fp32() -> None:
    g = torch.Generator().manual_seed(3)
    blocks = torch.randint(0, 256, (3, 96, 4, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(110, 135, (3, 96, 4), dtype=torch.uint8, generator=g)
    for dtype in (torch.float32, torch.bfloat16):
        ref = transformers_mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=dtype)
        assert torch.equal(bits(mxfp4.to_hf_dense(blocks, scales, dtype)), bits(ref))


def _blocks_with_full_range(g: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Random codes (no -0) where every block's largest magnitude code is 6 or 7 (|v| >= 4)."""
    codes = torch.randint(0, 16, (*shape, 32), generator=g)
    codes[codes == 8] = 0
    pos = torch.randint(0, 32, shape, generator=g)
    top = torch.randint(6, 8, shape, generator=g) | (torch.randint(0, 2, shape, generator=g) << 3)
    codes.scatter_(-1, pos.unsqueeze(-1), top.unsqueeze(-1))
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).to(torch.uint8)


def test_quantize_inverts_dequantize_bit_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    blocks = _blocks_with_full_range(g, (5, 64, 3))
    scales = torch.randint(100, 150, (5, 64, 3), dtype=torch.uint8, generator=g)
    b2, s2 = mxfp4.quantize(mxfp4.dequantize(blocks, scales))
    assert torch.equal(b2, blocks) and torch.equal(s2, scales)


def test_requantize_is_idempotent_on_values() -> None:
    g = torch.Generator().manual_seed(1)
    blocks = torch.randint(0, 256, (4, 32, 2, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(100, 150, (4, 32, 2), dtype=torch.uint8, generator=g)
    w = mxfp4.dequantize(blocks, scales)
    assert torch.equal(mxfp4.dequantize(*mxfp4.quantize(w)), w)


def test_quantize_is_nearest_and_bounded() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(64, 256, generator=g)
    blocks, scales = mxfp4.quantize(w)
    assert blocks.shape == (64, 8, 16) and scales.shape == (64, 8)
    back = mxfp4.dequantize(blocks, scales)
    # error at most half the largest E2M1 gap (1 step) or, for values in [6, 8) steps, the clip (2)
    step = torch.exp2(scales.float() - 127).repeat_interleave(32, -1)
    assert ((back - w).abs() <= 2 * step).all()
    with pytest.raises(ValueError):
        mxfp4.quantize(torch.zeros(3, 33))


def test_bad_inputs() -> None:
    with pytest.raises(TypeError):
        mxfp4.dequantize(torch.zeros(1, 1, 16), torch.zeros(1, 1, dtype=torch.uint8))
    with pytest.raises(ValueError):
        mxfp4.dequantize(
            torch.zeros(1, 2, 16, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.uint8)
        )


def test_swiglu_matches_transformers_experts() -> None:
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts

    config = GptOssConfig(
        hidden_size=32, intermediate_size=32, num_local_experts=2, num_hidden_layers=1
    )
    gate_up = torch.randn(5, 64, generator=torch.Generator().manual_seed(4)) * 6
    expected = GptOssExperts(config)._apply_gate(gate_up)
    assert torch.equal(mxfp4.swiglu(gate_up, config.swiglu_limit, config.swiglu_alpha), expected)
    gate, up = mxfp4.split_gate_up(gate_up)
    assert torch.equal(gate, gate_up[:, 0::2]) and torch.equal(up, gate_up[:, 1::2])
