"""The bf16 mat-vec kernel (decode-time attention and lm_head) against torch, and its wiring."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from oss_runtime import kernel  # noqa: E402
from oss_runtime.gemv import install_bf16_gemv  # noqa: E402

fused = kernel.load_kernel()
HAS_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None
needs_kernel = pytest.mark.skipif(
    fused is None and not HAS_COMPILER, reason=f"no C++ compiler here: {kernel.status()}"
)


@needs_kernel
@pytest.mark.parametrize("isa", [0, 1, 2])
@pytest.mark.parametrize(("tokens", "rows", "cols"), [(1, 203, 2880), (3, 64, 100), (4, 9, 17)])
def test_bf16_linear_matches_float32_matmul(isa: int, tokens: int, rows: int, cols: int) -> None:
    g = torch.Generator().manual_seed(rows)
    w = torch.randn(rows, cols, generator=g).to(torch.bfloat16)
    x = torch.randn(tokens, cols, generator=g)
    bias = torch.randn(rows, generator=g)
    k = kernel.load_kernel(isa=isa)
    assert k is not None and k.has_bf16_linear
    for b in (bias, None):
        ours = k.bf16_linear(x, w, b)
        ref = x @ w.float().t() + (0 if b is None else b)
        assert ours.shape == (tokens, rows)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_installed_linears_match_torch_at_one_token_and_defer_longer_inputs(
        tiny_checkpoint: Path) -> None:
    from oss_runtime.bind import load_model

    model = load_model(tiny_checkpoint, dtype="bfloat16", kernel=True, kernel_max_tokens=4)
    q = model.model.layers[0].self_attn.q_proj
    assert "forward" in vars(q) and "forward" in vars(model.lm_head)  # wrapped
    assert "forward" not in vars(model.model.layers[0].mlp.router)
    for tokens in (1, 4, 9):  # 9 > kernel_max_tokens: torch's own path
        x = torch.randn(1, tokens, q.in_features).to(torch.bfloat16)
        ours = q(x)
        ref = torch.nn.functional.linear(x, q.weight, q.bias)
        assert ours.dtype == torch.bfloat16 and ours.shape == ref.shape
        torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=2e-2)
    # float32 models keep torch's linear (exact parity path)
    model32 = load_model(tiny_checkpoint, dtype="float32", kernel=True)
    assert "forward" not in vars(model32.model.layers[0].self_attn.q_proj)


def test_install_skips_float_weights_and_experts() -> None:
    class Fake:
        has_bf16_linear = True

        def bf16_linear(self, x, w, b):  # type: ignore[no-untyped-def]
            return x @ w.float().t() + (0 if b is None else b)

    net = torch.nn.Sequential(torch.nn.Linear(8, 4).to(torch.bfloat16), torch.nn.Linear(4, 2))
    assert install_bf16_gemv(net, Fake()) == 1
    x = torch.randn(1, 8).to(torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(net[0](x).float(), torch.nn.functional.linear(
            x, net[0].weight, net[0].bias).float(), rtol=2e-2, atol=2e-2)


def test_default_kernel_tokens_follow_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from oss_runtime import bind

    assert bind._default_kernel_tokens(torch.float32) == 4
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert bind._default_kernel_tokens(torch.bfloat16) == 4
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert bind._default_kernel_tokens(torch.bfloat16) == 256
