"""The load plan as a table: (environment, options) -> device, quantization, backend (no GPU)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from oss_runtime.environment import Environment, detect_environment
from oss_runtime.errors import UnsupportedEnvironment
from oss_runtime.plan import GB, LoadOptions, parse_bytes, plan_load
from oss_runtime.spec import spec_from_config
from oss_runtime.synth import synth_config

SPEC = spec_from_config(synth_config("20b"))
DENSE = spec_from_config(synth_config("tiny", dense_experts=True))
GiB = 1024**3

CPU16 = Environment(cpu_count=2, total_ram=16 * GiB, available_ram=14 * GiB)
CPU8 = Environment(cpu_count=2, total_ram=8 * GiB, available_ram=6 * GiB)
CPU64 = Environment(cpu_count=8, total_ram=64 * GiB, available_ram=60 * GiB)
H100 = Environment(
    cpu_count=16,
    total_ram=128 * GiB,
    available_ram=120 * GiB,
    cuda_available=True,
    cuda_device_name="H100",
    cuda_capability=(9, 0),
    cuda_total_memory=80 * GiB,
    cuda_free_memory=78 * GiB,
    triton_version="3.4.0",
    kernels_version="0.9.0",
)
H100_BARE = Environment(**{**H100.__dict__, "triton_version": None, "kernels_version": None})
T4_SMALL = Environment(
    **{
        **H100_BARE.__dict__,
        "cuda_device_name": "small",
        "cuda_capability": (7, 0),
        "cuda_total_memory": 16 * GiB,
        "cuda_free_memory": 15 * GiB,
    }
)

CASES: list[tuple[str, Environment, dict[str, Any], tuple[str, str, str]]] = [
    ("cpu auto", CPU16, {}, ("cpu", "mxfp4", "mapped")),
    ("cpu mxfp4", CPU16, {"quantization": "mxfp4"}, ("cpu", "mxfp4", "mapped")),
    ("cpu 8 GB", CPU8, {}, ("cpu", "mxfp4", "mapped")),
    (
        "cpu dequantize fits",
        CPU64,
        {"quantization": "dequantize"},
        ("cpu", "dequantized", "transformers"),
    ),
    ("gpu native", H100, {}, ("cuda:0", "mxfp4", "transformers")),
    (
        "gpu native asked",
        H100,
        {"quantization": "mxfp4", "device": "cuda"},
        ("cuda:0", "mxfp4", "transformers"),
    ),
    ("gpu without kernels", H100_BARE, {}, ("cuda:0", "dequantized", "transformers")),
    (
        "gpu without kernels, mxfp4 auto device",
        H100_BARE,
        {"quantization": "mxfp4"},
        ("cpu", "mxfp4", "mapped"),
    ),
    ("small old gpu", T4_SMALL, {}, ("cpu", "mxfp4", "mapped")),
    ("gpu but cpu asked", H100, {"device": "cpu"}, ("cpu", "mxfp4", "mapped")),
    (
        "gpu max_memory",
        H100,
        {"max_memory": {0: "20GiB", "cpu": "64GiB"}},
        ("cuda:0", "mxfp4", "transformers"),
    ),
]


@pytest.mark.parametrize(("env", "opts", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_table(env: Environment, opts: dict[str, Any], want: tuple[str, str, str]) -> None:
    plan = plan_load(SPEC, env, LoadOptions(**opts))
    assert (plan.device, plan.quantization, plan.backend) == want
    assert set(plan.reasons) >= {"device", "quantization", "dtype", "memory"}
    assert all(plan.reasons.values())
    assert plan.dtype == "bfloat16"
    assert plan.estimated_peak_bytes == sum(n for _, n in plan.breakdown)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.device = "x"  # type: ignore[misc]


RAISES: list[tuple[str, Environment, dict[str, Any], str]] = [
    ("cuda asked, none here", CPU16, {"device": "cuda"}, "no CUDA device"),
    (
        "mxfp4 on gpu without kernels",
        H100_BARE,
        {"device": "cuda", "quantization": "mxfp4"},
        "triton",
    ),
    ("mxfp4 on old gpu", T4_SMALL, {"device": "cuda:0", "quantization": "mxfp4"}, "compute"),
    ("dequantize on 16 GB", CPU16, {"quantization": "dequantize"}, "quantization='auto'"),
    (
        "dequantize on small gpu",
        T4_SMALL,
        {"device": "cuda", "quantization": "dequantize"},
        "needs about",
    ),
    ("cpu budget too small", CPU16, {"max_memory": {"cpu": "2GB"}}, "max_memory"),
]


@pytest.mark.parametrize(
    ("env", "opts", "match"), [c[1:] for c in RAISES], ids=[c[0] for c in RAISES]
)
def test_plan_refuses(env: Environment, opts: dict[str, Any], match: str) -> None:
    with pytest.raises(UnsupportedEnvironment, match=match):
        plan_load(SPEC, env, LoadOptions(**opts))


def test_dense_checkpoint() -> None:
    assert plan_load(DENSE, CPU16).quantization == "dense"
    with pytest.raises(UnsupportedEnvironment, match="dense experts"):
        plan_load(DENSE, CPU16, LoadOptions(quantization="mxfp4"))


def test_memory_estimates_20b() -> None:
    plan = plan_load(SPEC, CPU16)
    parts = dict(plan.breakdown)
    assert 3.5 * GB < parts["non-expert weights"] < 3.8 * GB  # ~3.6 GB of bf16 (reference §7.2)
    assert 0.09 * GB < parts["kv cache"] < 0.12 * GB  # 12 full layers x 4k + 12 sliding x 128
    assert 4.5 * GB < plan.estimated_peak_bytes < 6 * GB
    deq = plan_load(SPEC, CPU64, LoadOptions(quantization="dequantize"))
    assert 40 * GB < deq.estimated_peak_bytes < 46 * GB  # the ~42 GB transformers needs
    f32 = plan_load(SPEC, CPU16, LoadOptions(dtype="float32"))
    assert f32.dtype == "float32" and dict(f32.breakdown)["non-expert weights"] > 7 * GB
    native = plan_load(SPEC, H100)
    assert 13 * GB < native.estimated_peak_bytes < 17 * GB
    big_cache = plan_load(SPEC, CPU16, LoadOptions(expert_cache=2 * GB))
    assert big_cache.estimated_peak_bytes - plan.estimated_peak_bytes == 2 * GB


def test_warns_instead_of_guessing() -> None:
    tiny_ram = Environment(cpu_count=2, total_ram=4 * GiB, available_ram=3 * GiB)
    plan = plan_load(SPEC, tiny_ram)
    assert (
        plan.backend == "mapped" and plan.warnings and "exceeds available RAM" in plan.warnings[0]
    )
    assert any("warning" in line for line in plan.describe())


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="quantization"):
        plan_load(SPEC, CPU16, LoadOptions(quantization="int4"))
    with pytest.raises(ValueError, match="dtype"):
        plan_load(SPEC, CPU16, LoadOptions(dtype="int8"))
    with pytest.raises(ValueError, match="device"):
        plan_load(SPEC, CPU16, LoadOptions(device="tpu"))
    with pytest.raises(ValueError, match=r"^max_memory\['cpu'\]: cannot read 'abc' as a size"):
        plan_load(SPEC, CPU16, LoadOptions(device="cpu", max_memory={"cpu": "abc"}))


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("16GiB", 16 * GiB),
        ("8GB", 8 * 10**9),
        ("500MB", 5 * 10**8),
        (123, 123),
        ("1.5GiB", int(1.5 * GiB)),
        ("16G", 16 * GiB),  # one convention in both packages: a bare unit is binary
        ("32M", 32 * 1024**2),
    ],
)
def test_parse_bytes(text: Any, n: int) -> None:
    assert parse_bytes(text) == n
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_detect_environment_here() -> None:
    env = detect_environment()
    assert env.cpu_count >= 1 and env.total_ram > 0 and 0 < env.available_ram <= env.total_ram
    rows = dict(env.describe())
    assert rows["native mxfp4"] == "yes" or rows["native mxfp4"].startswith("no: ")
    plan = plan_load(SPEC, env)
    assert plan.device in ("cpu", "cuda:0")
