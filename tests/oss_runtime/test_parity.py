"""Logits parity with transformers' GptOssForCausalLM holding the dequantized weights (float32)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from _oss_oracle import reference_model  # noqa: E402

from oss_runtime.bind import load_model  # noqa: E402
from oss_runtime.experts import MappedExperts, RoutedMoE  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    # 2 layers (sliding + full), 4 experts top-2, 3 shards with index
    "tiny-3shards": {"shards": 3},
    # 4 layers in a custom sliding/full order, 8 experts top-3, window 4, one file without index
    "8x3-noindex": {
        "shards": 1, "index": False, "layers": 4, "experts": 8, "top_k": 3, "sliding_window": 4,
        "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
    },
    # wider hidden, one KV head, 3 experts top-1, 2 shards
    "3x1-mqa": {
        "shards": 2, "experts": 3, "top_k": 1, "hidden_size": 96, "intermediate_size": 32,
        "num_attention_heads": 6, "num_key_value_heads": 1, "head_dim": 8, "layers": 3,
    },
    # dense bf16 experts (no quantization_config)
    "dense-experts": {"shards": 2, "dense_experts": True, "experts": 5, "top_k": 2},
}


def _ids(batch: int, seq: int, vocab: int = 512, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from oss_runtime.synth import synth_config, write_checkpoint

    out = {}
    for name, kw in CONFIGS.items():
        kw = dict(kw)
        shards, index = kw.pop("shards"), kw.pop("index", True)
        root = tmp_path_factory.mktemp(name) / "ck"
        out[name] = write_checkpoint(
            root, synth_config("tiny", **kw), shards=shards, index=index, seed=7
        )
    return out


@pytest.fixture(scope="module")
def references(checkpoints: dict[str, Path]) -> dict[str, Any]:
    return {name: reference_model(path) for name, path in checkpoints.items()}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("kernel", ["off", "auto", "kernel-only"])
def test_logits_parity_float32(checkpoints, references, name: str, kernel: str) -> None:
    options: dict[str, Any] = {"kernel": False} if kernel == "off" else {"kernel": "auto"}
    if kernel == "kernel-only":
        options["kernel_max_tokens"] = 10**6  # every expert call through the fused kernel
    model = load_model(checkpoints[name], dtype="float32", **options)
    ids = _ids(2, 21)
    with torch.no_grad():
        ours = model(input_ids=ids).logits
        ref = references[name](input_ids=ids).logits
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    assert ref.abs().max() > 1.0  # the test is not comparing near-zero outputs
    assert (ours - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["tiny-3shards", "8x3-noindex", "dense-experts"])
def test_32_greedy_tokens_identical(checkpoints, references, name: str) -> None:
    model = load_model(checkpoints[name], dtype="float32")
    prompt = _ids(1, 6, seed=5)
    ours = model.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False)
    ref = references[name].generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False)
    assert ours.shape[1] == 6 + 32
    assert torch.equal(ours, ref)
    assert len(set(ours[0, 6:].tolist())) > 3  # not a degenerate repetition


def test_experts_replaced_and_no_dense_float_experts(checkpoints) -> None:
    model = load_model(checkpoints["tiny-3shards"], dtype="float32")
    for layer in model.model.layers:
        assert isinstance(layer.mlp, RoutedMoE) and isinstance(layer.mlp.experts, MappedExperts)
        assert layer.mlp.experts.w.gate_up[0].dtype == torch.uint8
    assert not [n for n, p in model.named_parameters() if "experts" in n]
    assert not any(t.is_meta for t in model.parameters())


def test_expert_cache_parity_and_hits(checkpoints, references) -> None:
    model = load_model(
        checkpoints["tiny-3shards"], dtype="float32", kernel=False, expert_cache_bytes=1 << 20
    )
    ids = _ids(1, 12)
    with torch.no_grad():
        first = model(input_ids=ids).logits
        second = model(input_ids=ids).logits
        ref = references["tiny-3shards"](input_ids=ids).logits
    cache = model._oss_expert_cache
    assert cache.hits > 0 and 0 < cache.bytes <= cache.max_bytes
    assert torch.equal(first, second)
    assert (first - ref).abs().max().item() <= 1e-4


def test_expert_cache_evicts_within_budget(checkpoints) -> None:
    model = load_model(
        checkpoints["8x3-noindex"], dtype="float32", kernel=False, expert_cache_bytes=40_000
    )
    with torch.no_grad():
        model(input_ids=_ids(1, 30))
    cache = model._oss_expert_cache
    assert cache.bytes <= 40_000 and cache.misses > 0


def _mapping_of(model: Any) -> list[tuple[int, int]]:
    spans = []
    for mm in model._oss_files._maps.values():
        base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
        spans.append((base, base + len(mm)))
    return spans


def test_bfloat16_binds_zero_copy(checkpoints, references) -> None:
    model = load_model(checkpoints["tiny-3shards"], dtype="bfloat16")
    spans = _mapping_of(model)

    def mapped(t: torch.Tensor) -> bool:
        return any(lo <= t.data_ptr() < hi for lo, hi in spans)

    params = dict(model.named_parameters())
    assert mapped(params["lm_head.weight"]) and mapped(params["model.embed_tokens.weight"])
    assert mapped(params["model.layers.1.self_attn.q_proj.weight"])
    assert params["model.norm.weight"].dtype == torch.float32  # kept in fp32 like transformers
    assert mapped(model.model.layers[0].mlp.experts.w.gate_up[0])
    ids = _ids(1, 10)
    with torch.no_grad():
        ours = model(input_ids=ids).logits.float()
        ref = references["tiny-3shards"](input_ids=ids).logits
    assert (ours - ref).abs().max().item() < 0.25 * ref.abs().max().item()
    assert (ours.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.8


@pytest.mark.parametrize("name", ["tiny-3shards", "8x3-noindex"])
@pytest.mark.parametrize("chunk", [1, 5])
def test_chunked_prefill_parity(checkpoints, references, name: str, chunk: int) -> None:
    model = load_model(checkpoints[name], dtype="float32", prefill_chunk=chunk)
    ids = _ids(2, 21, seed=9)
    with torch.no_grad():
        for use_cache in (True, False):
            ours = model(input_ids=ids, use_cache=use_cache).logits
            ref = references[name](input_ids=ids).logits
            assert (ours - ref).abs().max().item() <= 1e-4
    # a left-padded batch: the attention mask is sliced per chunk
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :4] = 0
    prompt = _ids(2, 12, seed=11)
    kwargs = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    ours = model.generate(prompt, attention_mask=mask, **kwargs)
    ref = references[name].generate(prompt, attention_mask=mask, **kwargs)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("int8", [False, True])
def test_one_token_experts_in_one_kernel_call_match_the_python_loop(checkpoints, dtype: str,
                                                                    int8: bool) -> None:
    model = load_model(checkpoints["8x3-noindex"], dtype=dtype, kernel="auto",
                       expert_activations="int8" if int8 else "float32")
    experts = [layer.mlp.experts for layer in model.model.layers]
    if not experts[0]._one_call:
        pytest.skip("the fused kernel is not built here")
    gen = torch.Generator().manual_seed(3)
    compared = 0
    for ex in experts:
        k, hidden = 3, ex.w.down_bias.shape[1]
        for _ in range(4):
            x = (torch.randn(1, hidden, generator=gen) * 2).to(ex.dtype)
            ids = torch.randperm(ex.num_experts, generator=gen)[:k].reshape(1, k)
            w = torch.softmax(torch.randn(1, k, generator=gen), -1).to(ex.dtype)
            fused = ex(x, ids, w)
            ex._one_call = False
            try:
                loop = ex(x, ids, w)
            finally:
                ex._one_call = True
            assert fused.dtype == loop.dtype == x.dtype and fused.abs().max() > 0.1
            # the same sums in the same order; only the sigmoid's last bit may differ (in
            # bfloat16 that can move a rounding by one unit)
            tol = 1e-5 if dtype == "float32" else 8e-3
            torch.testing.assert_close(fused, loop, rtol=tol, atol=tol)
            compared += 1
    assert compared == 16
