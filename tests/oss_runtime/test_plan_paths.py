"""The plan says which path runs and why, for machines built by hand: the fused CPU kernel or
pure torch, and transformers' native MXFP4 on a GPU as transformers itself decides it (its
version ranges, its hub kernel when offline). A request that cannot be honoured raises."""

from __future__ import annotations

import dataclasses
import re

import pytest

from oss_runtime.environment import NATIVE_KERNEL_REPO, Environment
from oss_runtime.errors import UnsupportedEnvironment
from oss_runtime.plan import LoadOptions, plan_load
from oss_runtime.spec import spec_from_config
from oss_runtime.synth import synth_config

SPEC = spec_from_config(synth_config("20b"))
GiB = 1024**3
CPU = Environment(cpu_count=2, total_ram=16 * GiB, available_ram=14 * GiB)
GPU = Environment(
    cpu_count=16, total_ram=128 * GiB, available_ram=120 * GiB, cuda_available=True,
    cuda_device_name="H100", cuda_capability=(9, 0), cuda_total_memory=80 * GiB,
    cuda_free_memory=78 * GiB, triton_version="3.4.0", kernels_version="0.19.1",
    kernels_accepted=True, kernels_range=">=0.19.1,<0.20.0", triton_minimum="3.4.0",
)


def _env(base: Environment, **changes: object) -> Environment:
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "kernel"), [
    ("ready", "fused"), ("buildable", "fused"), ("unknown", "fused"), ("unavailable", "torch"),
])
def test_the_cpu_plan_says_which_path_computes_the_experts(status: str, kernel: str) -> None:
    env = _env(CPU, kernel_status=status, kernel_detail=f"detail of {status}")
    plan = plan_load(SPEC, env)
    assert plan.kernel == kernel
    assert any(line.startswith("compute ") and plan.compute in line for line in plan.describe())
    if kernel == "torch":
        assert plan.compute == "pure torch" and plan.reasons["kernel"] == f"detail of {status}"
        assert any("pure torch" in w for w in plan.warnings)  # said, not silent
    else:
        assert plan.compute == "fused C++ kernel" and not plan.warnings


def test_asking_for_the_kernel_where_there_is_none_raises() -> None:
    env = _env(CPU, kernel_status="unavailable", kernel_detail="no C++ compiler (c++ not found)")
    with pytest.raises(UnsupportedEnvironment, match=r"kernel=True .* no C\+\+ compiler"):
        plan_load(SPEC, env, LoadOptions(kernel=True))
    off = plan_load(SPEC, env, LoadOptions(kernel=False))
    assert off.kernel == "torch" and "asked for kernel=False" in off.reasons["kernel"]
    assert not off.warnings  # asked for: no warning


def test_kernels_outside_transformers_range_is_not_native_mxfp4() -> None:
    old = _env(GPU, kernels_version="0.18.0", kernels_accepted=False)
    plan = plan_load(SPEC, old)
    assert (plan.backend, plan.quantization) == ("transformers", "dequantized")
    assert "kernels 0.18.0 (transformers accepts >=0.19.1,<0.20.0)" in plan.reasons["quantization"]
    with pytest.raises(UnsupportedEnvironment, match=re.escape("accepts >=0.19.1,<0.20.0")):
        plan_load(SPEC, old, LoadOptions(device="cuda", quantization="mxfp4"))
    cpu = plan_load(SPEC, old, LoadOptions(quantization="mxfp4"))  # auto device: the CPU keeps it
    assert (cpu.device, cpu.backend, cpu.quantization) == ("cpu", "mapped", "mxfp4")
    assert "kernels 0.18.0" in cpu.reasons["device"]


def test_triton_below_transformers_minimum_is_not_native_mxfp4() -> None:
    plan = plan_load(SPEC, _env(GPU, triton_version="3.3.1"))
    assert plan.quantization == "dequantized"
    assert "triton 3.3.1 (transformers needs >= 3.4.0)" in plan.reasons["quantization"]


def test_offline_native_mxfp4_needs_the_hub_kernel_in_the_cache() -> None:
    assert plan_load(SPEC, GPU).quantization == "mxfp4"  # online: transformers fetches it
    for env, opts in ((_env(GPU, hub_offline=True), LoadOptions()),
                      (GPU, LoadOptions(offline=True))):
        plan = plan_load(SPEC, env, opts)
        assert plan.quantization == "dequantized"
        assert NATIVE_KERNEL_REPO in plan.reasons["quantization"]
        assert "not in the Hugging Face cache" in plan.reasons["quantization"]
        with pytest.raises(UnsupportedEnvironment, match="offline"):
            plan_load(SPEC, env, dataclasses.replace(opts, device="cuda", quantization="mxfp4"))
    cached = plan_load(SPEC, _env(GPU, hub_offline=True, native_kernel_cached=True))
    assert (cached.backend, cached.quantization) == ("transformers", "mxfp4")


def test_the_environment_names_what_native_mxfp4_lacks() -> None:
    assert GPU.native_mxfp4 and GPU.native_mxfp4_missing() == []
    bare = _env(GPU, cuda_capability=(7, 0), triton_version=None, kernels_version=None,
                kernels_accepted=False)
    missing = bare.native_mxfp4_missing()
    assert len(missing) == 3 and "compute capability (7, 0)" in missing[0]
    rows = dict(bare.describe())
    assert rows["native mxfp4"].startswith("no: compute capability")
