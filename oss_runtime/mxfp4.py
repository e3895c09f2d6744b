"""MXFP4 as gpt-oss stores it: exact dequantization and a reference quantizer (torch).

Format (OCP MX, as in openai/gpt-oss and transformers/integrations/mxfp4.py):

* blocks ``uint8[..., rows, K/32, 16]``: two e2m1 codes per byte, the **low nibble first**
  (element ``2j`` is ``b & 15``, element ``2j+1`` is ``b >> 4``); bit 3 of a code is the sign;
* scales ``uint8[..., rows, K/32]``: e8m0 with bias 127, ``w = E2M1[code] * 2**(scale - 127)``;
* the rows are output features (``F.linear`` orientation); transformers' dense parameters are the
  transpose, ``[E, in, out]``;
* gate and up are interleaved on the output rows of ``gate_up``: ``gate = gu[..., ::2]``,
  ``up = gu[..., 1::2]``.
"""

from __future__ import annotations

import torch

__all__ = [
    "E2M1_VALUES",
    "dequantize",
    "dequantize_into",
    "quantize",
    "split_gate_up",
    "swiglu",
    "to_hf_dense",
]

#: e2m1 code -> value (sign in bit 3)
E2M1_VALUES = (
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    3.0,
    4.0,
    6.0,
    -0.0,
    -0.5,
    -1.0,
    -1.5,
    -2.0,
    -3.0,
    -4.0,
    -6.0,
)

_PAIR_LUT: dict[torch.dtype, torch.Tensor] = {}


def _pair_lut(dtype: torch.dtype) -> torch.Tensor:
    """``[256, 2]``: byte -> (value of its low nibble, value of its high nibble)."""
    lut = _PAIR_LUT.get(dtype)
    if lut is None:
        values = torch.tensor(E2M1_VALUES, dtype=torch.float32)
        byte = torch.arange(256)
        lut = torch.stack((values[byte & 15], values[byte >> 4]), -1).to(dtype)
        _PAIR_LUT[dtype] = lut
    return lut


_SCALE_LUT: list[torch.Tensor] = []


def _scale_lut() -> torch.Tensor:
    """``[256]`` float32: e8m0 byte -> ``2**(byte - 127)``, computed like transformers (ldexp)."""
    if not _SCALE_LUT:
        _SCALE_LUT.append(torch.ldexp(torch.ones(256), torch.arange(256, dtype=torch.int32) - 127))
    return _SCALE_LUT[0]


def _check(blocks: torch.Tensor, scales: torch.Tensor) -> None:
    if blocks.dtype != torch.uint8 or scales.dtype != torch.uint8:
        raise TypeError(f"MXFP4 blocks and scales must be uint8, got {blocks.dtype}/{scales.dtype}")
    if blocks.shape[-1] != 16 or blocks.shape[:-1] != scales.shape:
        raise ValueError(
            f"MXFP4 blocks {tuple(blocks.shape)} and scales {tuple(scales.shape)} do not pair: "
            "expected blocks [..., G, 16] and scales [..., G]"
        )


def dequantize_into(blocks: torch.Tensor, scales: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Dequantize ``blocks [..., G, 16]`` / ``scales [..., G]`` into ``out [..., G*32]`` exactly."""
    _check(blocks, scales)
    lut = _pair_lut(torch.float32)
    values = lut.index_select(0, blocks.reshape(-1).to(torch.int32))  # nibble order kept
    values = values.view(*scales.shape, 32)
    if bool((scales == 255).any()):  # 2**128 overflows float32; ldexp scales in two steps
        torch.ldexp(values, (scales.to(torch.int32) - 127).unsqueeze(-1), out=values)
    else:
        factor = _scale_lut().index_select(0, scales.reshape(-1).to(torch.int32))
        torch.mul(values, factor.view(*scales.shape, 1), out=values)  # exact: powers of two
    out.copy_(values.view(out.shape))
    return out


def dequantize(
    blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Exact dequantization: ``[..., rows, G, 16]`` + ``[..., rows, G]`` -> ``[..., rows, G*32]``.

    Every MXFP4 value is exactly representable in float32 and bfloat16, so the result does not
    depend on ``dtype`` beyond its storage.
    """
    _check(blocks, scales)
    out = torch.empty(*scales.shape[:-1], scales.shape[-1] * 32, dtype=dtype)
    return dequantize_into(blocks, scales, out)


def to_hf_dense(
    blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Expert tensors in transformers' dense layout ``[E, in, out]`` (like ``convert_moe_packed_tensors``)."""
    return dequantize(blocks, scales, dtype).transpose(1, 2).contiguous()


def quantize(w: torch.Tensor, *, chunk_rows: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``w [..., K]`` along its last dim (``K % 32 == 0``) to ``(blocks, scales)``.

    Per 32-value block the scale is ``floor(log2(amax)) - 2`` (E2M1's largest exponent is 2) and
    each value rounds to the nearest E2M1 magnitude (ties to the smaller; above 6 clips to 6).
    Re-quantizing dequantized values reproduces them exactly.
    """
    if w.shape[-1] % 32:
        raise ValueError(f"last dim {w.shape[-1]} is not a multiple of 32")
    lead = w.shape[:-1]
    groups = w.shape[-1] // 32
    x = w.detach().to(torch.float32).reshape(-1, groups, 32)
    blocks = torch.empty(x.shape[0], groups, 16, dtype=torch.uint8)
    scales = torch.empty(x.shape[0], groups, dtype=torch.uint8)
    mags = torch.tensor(E2M1_VALUES[:8], dtype=torch.float32)
    for r0 in range(0, x.shape[0], chunk_rows):
        xs = x[r0 : r0 + chunk_rows]
        amax = xs.abs().amax(-1, keepdim=True).clamp_min(2.0**-126)
        e = (torch.floor(torch.log2(amax)) - 2).clamp(-127, 127)
        y = xs / torch.exp2(e)
        mag = (y.abs().unsqueeze(-1) - mags).abs().argmin(-1)
        code = mag | (torch.signbit(y) & (mag != 0)).long() << 3
        blocks[r0 : r0 + chunk_rows] = (code[..., 0::2] | (code[..., 1::2] << 4)).to(torch.uint8)
        scales[r0 : r0 + chunk_rows] = (e.squeeze(-1) + 127).to(torch.uint8)
    return blocks.reshape(*lead, groups, 16), scales.reshape(*lead, groups)


def split_gate_up(gate_up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gate and up interleaved on the last dim: even columns gate, odd columns up."""
    return gate_up[..., ::2], gate_up[..., 1::2]


def swiglu(
    gate_up: torch.Tensor, limit: float = 7.0, alpha: float = 1.702, out: torch.Tensor | None = None
) -> torch.Tensor:
    """gpt-oss's clamped SwiGLU, written exactly as transformers' ``GptOssExperts._apply_gate``."""
    gate, up = split_gate_up(gate_up)
    gate = gate.clamp(min=None, max=limit)
    up = up.clamp(min=-limit, max=limit)
    glu = gate * torch.sigmoid(gate * alpha)
    result = (up + 1) * glu
    if out is not None:
        out.copy_(result)
        return out
    return result
