"""load_gpt_oss_20b(): local dir, fake hub download, plans, backends, and the light import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="loading a model needs torch")

from _fake_hub import FakeHub, dead_endpoint, no_internet_endpoint  # noqa: E402
from _oss_tokenizer import write_tokenizer  # noqa: E402

from oss_runtime import GptOssRuntime, LoadPlan, load_gpt_oss_20b  # noqa: E402
from oss_runtime.environment import Environment  # noqa: E402
from oss_runtime.errors import CheckpointError, SourceNotFound, UnsupportedEnvironment  # noqa: E402
from oss_runtime.synth import synth_config, write_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CPU = Environment(cpu_count=2, total_ram=16 * 1024**3, available_ram=14 * 1024**3)


@pytest.fixture(scope="module")
def chat_ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_checkpoint(tmp_path_factory.mktemp("api") / "ck", synth_config("tiny"), shards=2)
    return write_tokenizer(root)


@pytest.fixture(autouse=True)
def _no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_CACHE_DIR", str(tmp_path / "pip91n"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    no_internet_endpoint(monkeypatch)


def test_local_directory(chat_ck: Path) -> None:
    from transformers import GptOssForCausalLM

    from oss_runtime.experts import RoutedMoE

    rt = load_gpt_oss_20b(chat_ck, endpoints=[dead_endpoint()], progress=False)
    assert isinstance(rt, GptOssRuntime) and isinstance(rt.plan, LoadPlan)
    assert isinstance(rt.model, GptOssForCausalLM)
    assert all(isinstance(layer.mlp, RoutedMoE) for layer in rt.model.model.layers)
    assert (rt.plan.device, rt.plan.quantization, rt.plan.backend, rt.plan.dtype) == (
        "cpu", "mxfp4", "mapped", "bfloat16")
    assert rt.source.kind == "local" and rt.tokenizer is not None and rt.load_seconds > 0
    logits = rt.model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 512)
    assert "mapped" in repr(rt) and f"compute={rt.plan.compute!r}" in repr(rt)
    # the plan says which path computes the experts, as it ran
    kernel = rt.model.model.layers[0].mlp.experts.kernel
    assert rt.plan.compute == ("fused C++ kernel" if kernel is not None else "pure torch")
    slow = load_gpt_oss_20b(chat_ck, progress=False, kernel=False)
    assert "compute='pure torch'" in repr(slow) and "asked for" in slow.plan.reasons["kernel"]


def test_dequantize_backend_matches_mapped(chat_ck: Path) -> None:
    mapped = load_gpt_oss_20b(chat_ck, dtype="float32", progress=False, environment=CPU)
    dense = load_gpt_oss_20b(chat_ck, dtype=torch.float32, quantization="dequantize",
                             progress=False, environment=CPU)
    assert (dense.plan.backend, dense.plan.quantization) == ("transformers", "dequantized")
    ids = torch.tensor([[1, 5, 9, 200, 300, 17]])
    with torch.inference_mode():
        diff = (mapped.model(input_ids=ids).logits - dense.model(input_ids=ids).logits).abs().max()
    assert float(diff) < 1e-4


def test_refusals_and_missing(chat_ck: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedEnvironment, match="no CUDA"):
        load_gpt_oss_20b(chat_ck, device="cuda", environment=CPU, progress=False)
    small = Environment(cpu_count=2, total_ram=10**8, available_ram=10**8)
    with pytest.raises(UnsupportedEnvironment, match="quantization='auto'"):
        load_gpt_oss_20b(chat_ck, quantization="dequantize", environment=small, progress=False)
    with pytest.raises(SourceNotFound):
        load_gpt_oss_20b("acme/not-cached", offline=True, progress=False)
    with pytest.raises(CheckpointError, match=r"config\.json"):
        load_gpt_oss_20b(tmp_path, progress=False)


def test_no_tokenizer(make_checkpoint) -> None:  # type: ignore[no-untyped-def]
    rt = load_gpt_oss_20b(make_checkpoint("bare"), progress=False, environment=CPU)
    assert rt.tokenizer is None
    with pytest.raises(CheckpointError, match="no tokenizer"):
        rt.generate("hi", max_new_tokens=2)


def test_repo_id_through_fake_hub(chat_ck: Path) -> None:
    files = {p.name: p.read_bytes() for p in chat_ck.iterdir()}
    files["original/model.safetensors"] = b"\0" * 4096
    with FakeHub({"acme/gpt-oss-chat": files}) as hub:
        rt = load_gpt_oss_20b("acme/gpt-oss-chat", endpoints=[dead_endpoint(), hub.url],
                              progress=False, environment=CPU)
        assert rt.source.kind == "download" and rt.tokenizer is not None
        assert not any("original" in p for p in hub.paths())
        first = rt.generate("hello", max_new_tokens=6)
    # the hub is gone: the cache serves, offline too
    again = load_gpt_oss_20b("acme/gpt-oss-chat", offline=True, progress=False, environment=CPU)
    assert again.source.kind == "cache" and again.generate("hello", max_new_tokens=6) == first


def test_import_stays_light() -> None:
    script = (
        "import sys, oss_runtime\n"
        "from oss_runtime import load_gpt_oss_20b, GptOssRuntime, LoadPlan, plan_load\n"
        "from oss_runtime import resolve, plan, environment, chat, api, hubcache\n"
        "heavy = [m for m in ('torch', 'transformers', 'httpx', 'numpy', 'huggingface_hub') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.gpu
def test_cuda_native_or_dequantized(chat_ck: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    rt = load_gpt_oss_20b(chat_ck, device="cuda", progress=False)
    assert rt.plan.device.startswith("cuda") and rt.plan.backend == "transformers"
    from oss_runtime.environment import detect_environment

    env = detect_environment()  # the plan's native-MXFP4 call is transformers' own
    assert (rt.plan.quantization == "mxfp4") == env.native_mxfp4
    assert next(rt.model.parameters()).device.type == "cuda"
    assert isinstance(rt.generate("hello", max_new_tokens=4), str)


def test_int8_expert_inputs_are_an_explicit_choice(
    chat_ck: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oss_runtime.kernel import load_kernel

    monkeypatch.delenv("OSS_RUNTIME_EXPERT_ACTIVATIONS", raising=False)
    exact = load_gpt_oss_20b(chat_ck, dtype="float32", progress=False, environment=CPU)
    assert exact.plan.expert_activations == "float32"
    assert any(line.startswith("expert inputs float32") for line in exact.plan.describe())
    ids = torch.tensor([[1, 5, 9, 200, 300, 17]])
    with torch.inference_mode():
        want = exact.model(input_ids=ids).logits
    monkeypatch.setenv("OSS_RUNTIME_EXPERT_ACTIVATIONS", "int8")
    fast = load_gpt_oss_20b(chat_ck, dtype="float32", progress=False, environment=CPU,
                            kernel=load_kernel() is not None)
    if fast.plan.kernel == "fused":
        assert fast.plan.expert_activations == "int8" and not fast.plan.warnings
        assert "llama.cpp" in fast.plan.reasons["activations"]
        assert all(layer.mlp.experts.int8 for layer in fast.model.model.layers)
        with torch.inference_mode():
            got = fast.model(input_ids=ids).logits
        diff = float((got - want).abs().max())
        assert 0 < diff < 0.05 * float(want.abs().max())
    # the pure-torch path cannot honour it: said, not hidden
    slow = load_gpt_oss_20b(chat_ck, dtype="float32", progress=False, environment=CPU,
                            kernel=False, expert_activations="int8")
    assert slow.plan.expert_activations == "float32"
    assert any("int8" in w and "fused CPU kernel" in w for w in slow.plan.warnings)
    monkeypatch.setenv("OSS_RUNTIME_EXPERT_ACTIVATIONS", "int4")
    with pytest.raises(ValueError, match=r"OSS_RUNTIME_EXPERT_ACTIVATIONS must be 'float32'.*'int4'"):
        load_gpt_oss_20b(chat_ck, progress=False, environment=CPU)
    with pytest.raises(ValueError, match="expert_activations must be"):
        load_gpt_oss_20b(chat_ck, progress=False, environment=CPU, expert_activations="fp8")
