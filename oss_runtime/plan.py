"""The load plan: a pure function of (checkpoint, environment, options) -> `LoadPlan`.

`plan_load` decides the device, whether the experts stay MXFP4 or are dequantized, the compute
dtype and the backend, estimates peak memory from the tensor table, and records a reason for each
choice. It never falls back silently: an explicit request it cannot honour (``device="cuda"``
without CUDA, ``quantization="mxfp4"`` where nothing can run MXFP4, a dequantized model larger than
the memory budget) raises `UnsupportedEnvironment`. No I/O happens here; `environment.py` asks the
hardware questions.

Backends: ``"mapped"`` is `oss_runtime.bind.load_model` (CPU, experts memory-mapped and routed);
``"transformers"`` is ``GptOssForCausalLM.from_pretrained`` (native MXFP4 kernels on a GPU, or
dequantized weights).
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union

from oss_runtime.checkpoint import Checkpoint
from oss_runtime.environment import NATIVE_KERNEL_REPO, Environment
from oss_runtime.errors import UnsupportedEnvironment
from oss_runtime.kernel import SLOWER
from oss_runtime.layout import DTYPE_SIZES, expected_tensors
from oss_runtime.precision import choose
from oss_runtime.spec import ModelSpec

__all__ = ["LoadOptions", "LoadPlan", "parse_bytes", "plan_load"]

GB = 10**9
RUNTIME_OVERHEAD = 700 * 10**6  # Python, torch, transformers and allocator arenas (CPU)
CUDA_OVERHEAD = 1 * GB  # CUDA context and kernels' workspaces (device)
_QUANT_ALIASES = {"auto": "auto", "mxfp4": "mxfp4", "dequantize": "dequantized",
                  "dequantized": "dequantized", "bf16": "dequantized", "bfloat16": "dequantized",
                  "none": "dequantized", "fp16": "dequantized"}
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}
_SIZES = {"float32": 4, "bfloat16": 2, "float16": 2}
_NORMS = ("layernorm.weight", "model.norm.weight")

MaxMemory = Mapping[Union[int, str], Union[int, str]]


def parse_bytes(value: int | str, what: str = "size") -> int:
    """``12884901888``, ``"12GiB"``, ``"16GB"``, ``"500MB"`` -> bytes: accelerate's spelling,
    read by the one size parser of both packages (``pip_91n.downloads.parse_size``: ``K``..
    ``T`` and ``KiB``..``TiB`` are powers of 1024, ``KB``..``TB`` powers of 1000).
    ``ValueError`` names ``what`` (the option) and the spelling."""
    from pip_91n.downloads import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """What the caller asked for (the keyword arguments of `load_gpt_oss_20b`)."""

    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    quantization: str = "auto"  # "auto" | "mxfp4" | "dequantize"
    dtype: str | None = None  # compute dtype of the non-expert path; None = bfloat16
    max_memory: MaxMemory | None = None  # accelerate's meaning: {0: "20GiB", "cpu": "30GiB"}
    expert_cache: int = 0  # bytes of dequantized experts kept (mapped backend)
    context: int = 4096  # tokens the KV cache estimate is made for
    prefill_chunk: int = 512
    kernel: str | bool = "auto"  # the fused CPU kernel: "auto", True (required), False (off)
    offline: bool | None = None  # no downloads (None: HF_HUB_OFFLINE decides)
    expert_activations: str = "float32"  # "float32" (exact) | "int8" (fused CPU kernel only)
    linear_weights: str = "exact"  # attention and lm_head: "exact" | "int8" (fused CPU kernel)


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """The plan actually used to load a checkpoint, with the reason for each choice."""

    device: str  # "cpu" or "cuda:N"
    backend: str  # "mapped" or "transformers"
    quantization: str  # "mxfp4" (kept), "dequantized", or "dense" (checkpoint has no MXFP4)
    dtype: str  # "bfloat16" | "float32" | "float16"
    estimated_peak_bytes: int  # host RAM (cpu) or device memory (cuda) at peak
    budget_bytes: int | None  # what that peak is compared with
    breakdown: tuple[tuple[str, int], ...]
    reasons: Mapping[str, str]  # "device", "quantization", "dtype", "memory" -> why
    warnings: tuple[str, ...] = ()
    max_memory: Mapping[Any, int] | None = None
    #: the experts' compute on the mapped backend: "fused" (C++ kernel), "torch" (pure
    #: torch, 4-7x slower) or "n/a" (the transformers backend)
    kernel: str = "n/a"
    expert_activations: str = "float32"  # the experts' inputs: "float32" (exact) or "int8"
    linear_weights: str = "exact"  # attention and lm_head weights: "exact" or "int8"

    @property
    def compute(self) -> str:
        """Which path runs the experts, in words."""
        if self.kernel == "fused":
            return "fused C++ kernel"
        if self.kernel == "torch":
            return "pure torch"
        return "transformers"

    def describe(self) -> list[str]:
        lines = [
            f"device        {self.device}  ({self.reasons['device']})",
            f"quantization  {self.quantization}  ({self.reasons['quantization']})",
            f"dtype         {self.dtype}  ({self.reasons['dtype']})",
            f"backend       {self.backend}",
            f"compute       {self.compute}  ({self.reasons.get('kernel', 'transformers decides')})",
            f"expert inputs {self.expert_activations}  ({self.reasons.get('activations', 'exact')})",
            f"linear        {self.linear_weights}  ({self.reasons.get('linear', 'as stored')})",
            f"peak memory   {self.estimated_peak_bytes / GB:.2f} GB estimated  "
            f"({self.reasons['memory']})",
        ]
        lines += [f"  {name:<26}{n / GB:8.2f} GB" for name, n in self.breakdown if n]
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


def _table(
    source: Checkpoint | ModelSpec,
) -> tuple[ModelSpec, list[tuple[str, str, tuple[int, ...]]]]:
    if isinstance(source, Checkpoint):
        return source.spec, [(t.name, t.dtype, t.shape) for t in source.tensors.values()]
    return source, [(t.name, t.dtype, t.shape) for t in expected_tensors(source).values()]


@dataclasses.dataclass(frozen=True)
class _Sizes:
    nonexpert_stored: int
    nonexpert_compute: int
    experts_stored: int
    experts_dequantized: int
    kv_cache: int
    scores: int
    tiles: int


def _sizes(spec: ModelSpec, table: Iterable[tuple[str, str, tuple[int, ...]]], dtype: str,
           opts: LoadOptions) -> _Sizes:
    size = _SIZES[dtype]
    ne_stored = ne_compute = ex_stored = ex_deq = 0
    for name, dt, shape in table:
        n = math.prod(shape)
        stored = n * DTYPE_SIZES[dt]
        if ".mlp.experts." in name:
            ex_stored += stored
            if name.endswith("_blocks"):
                ex_deq += 2 * n * size  # two e2m1 values per byte
            elif not name.endswith("_scales"):
                ex_deq += n * size
        else:
            ne_stored += stored
            ne_compute += n * (4 if name.endswith(_NORMS) else size)
    ctx = opts.context
    window = int(spec.extra.get("sliding_window") or ctx)
    per_token_layer = 2 * spec.num_key_value_heads * spec.head_dim * size
    kv = sum(per_token_layer * (min(window, ctx) if t == "sliding_attention" else ctx)
             for t in spec.layer_types)
    chunk = min(opts.prefill_chunk, ctx)
    scores = spec.num_attention_heads * chunk * ctx * 4
    tiles = 2 * 512 * max(spec.hidden_size, 2 * spec.intermediate_size) * 4
    return _Sizes(ne_stored, ne_compute, ex_stored, ex_deq, kv, scores, tiles)


def _budget(opts: LoadOptions, env: Environment, device: str) -> tuple[int, str]:
    mm = opts.max_memory or {}
    if device == "cpu":
        if "cpu" in mm:
            return parse_bytes(mm["cpu"], "max_memory['cpu']"), "max_memory['cpu']"
        return env.available_ram, "available RAM"
    index = int(device.partition(":")[2] or 0)
    for key in (index, f"cuda:{index}", "cuda"):
        if key in mm:
            what = f"max_memory[{key!r}]"
            return parse_bytes(mm[key], what), what
    return env.cuda_free_memory, "free GPU memory"


def _device(opts: LoadOptions, env: Environment) -> tuple[str, str]:
    want = opts.device.lower()
    if want == "cpu":
        return "cpu", "asked for device='cpu'"
    if want.startswith("cuda"):
        if not env.cuda_available:
            raise UnsupportedEnvironment(
                f"device={opts.device!r} was asked for but no CUDA device is available here "
                f"(torch {env.torch_version or 'not installed'}); use device='auto' or 'cpu'."
            )
        return (want if ":" in want else "cuda:0"), f"asked for device={opts.device!r}"
    if want != "auto":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {opts.device!r}")
    if env.cuda_available:
        return "cuda:0", f"auto: CUDA device {env.cuda_device_name} is available"
    return "cpu", "auto: no CUDA device"


def plan_load(
    checkpoint: Checkpoint | ModelSpec,
    environment: Environment,
    options: LoadOptions | None = None,
) -> LoadPlan:
    """Decide how to load ``checkpoint`` on ``environment`` (pure; raises, never falls back)."""
    opts = options or LoadOptions()
    env = environment
    spec, table = _table(checkpoint)
    quant = _QUANT_ALIASES.get(str(opts.quantization).lower())
    if quant is None:
        raise ValueError(
            f"quantization must be 'auto', 'mxfp4' or 'dequantize', got {opts.quantization!r}"
        )
    dtype = (
        _DTYPES.get(str(opts.dtype).replace("torch.", "")) if opts.dtype is not None else "bfloat16"
    )
    if dtype is None:
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {opts.dtype!r}")
    reasons: dict[str, str] = {
        "dtype": "asked for" if opts.dtype is not None
        else "default: bfloat16, the checkpoint's own dtype (non-expert weights bind zero-copy)"
    }
    if not spec.quantized and quant == "mxfp4":
        raise UnsupportedEnvironment(
            "quantization='mxfp4' was asked for but this checkpoint has dense experts (no "
            "quantization_config in config.json); use quantization='auto'."
        )
    device, reasons["device"] = _device(opts, env)
    warnings: list[str] = []
    breakdown: tuple[tuple[str, int], ...]
    sizes = _sizes(spec, table, dtype, opts)
    native_missing = _native_missing(env, opts)
    if (
        device.startswith("cuda")
        and opts.device == "auto"
        and quant == "mxfp4"
        and spec.quantized
        and native_missing
    ):
        device = "cpu"
        reasons["device"] = (
            "auto: MXFP4 was asked for and transformers' native MXFP4 cannot run here ("
            + "; ".join(native_missing) + "); the CPU path keeps MXFP4"
        )
    if device.startswith("cuda"):
        if not spec.quantized:
            backend, kept, reasons["quantization"] = (
                "transformers",
                "dense",
                "checkpoint has dense experts",
            )
        elif quant in ("auto", "mxfp4") and not native_missing:
            backend, kept = "transformers", "mxfp4"
            reasons["quantization"] = (f"native MXFP4 through transformers: compute capability "
                                       f"{env.cuda_capability}, triton {env.triton_version}, kernels "
                                       f"{env.kernels_version}")
        elif quant == "mxfp4":
            raise UnsupportedEnvironment(
                "quantization='mxfp4' cannot be honoured on "
                f"{env.cuda_device_name or 'this GPU'}: transformers' native MXFP4 cannot run "
                f"({'; '.join(native_missing)}); fix that, or use device='cpu' for the "
                "memory-mapped MXFP4 path, or quantization='dequantize'."
            )
        else:
            backend, kept = "transformers", "dequantized"
            reasons["quantization"] = ("asked for" if quant == "dequantized" else
                                       "auto: transformers' native MXFP4 cannot run here ("
                                       + "; ".join(native_missing)
                                       + "), so the experts are dequantized")
        experts = sizes.experts_stored if kept == "mxfp4" else sizes.experts_dequantized
        if kept == "dense":
            experts = sizes.experts_dequantized
        breakdown = (("non-expert weights", sizes.nonexpert_compute), ("experts", experts),
                     ("kv cache", sizes.kv_cache), ("attention scores", sizes.scores),
                     ("cuda overhead", CUDA_OVERHEAD))
        budget, what = _budget(opts, env, device)
        peak = sum(n for _, n in breakdown)
        if (
            budget
            and peak > budget
            and quant == "auto"
            and opts.device == "auto"
            and spec.quantized
        ):
            # auto never means "fail": the mapped CPU path is the one that always fits
            reasons["device"] = (f"auto: the GPU plan needs {peak / GB:.1f} GB but {what} is "
                                 f"{budget / GB:.1f} GB, so the memory-mapped CPU path is used")
            device = "cpu"
        elif budget and peak > budget:
            raise UnsupportedEnvironment(
                f"loading with quantization={kept!r} on {device} needs about {peak / GB:.1f} GB "
                f"but {what} is {budget / GB:.1f} GB; use quantization='auto' or 'mxfp4', or "
                "device='cpu'."
            )
        else:
            reasons["memory"] = f"{what}: {budget / GB:.1f} GB" if budget else "no budget known"
            activations = choose("activations", opts.expert_activations, "n/a", reasons, warnings)
            linear = choose("linear", opts.linear_weights, "n/a", reasons, warnings)
            return LoadPlan(device, backend, kept, dtype, peak, budget or None, breakdown,
                            types.MappingProxyType(reasons), tuple(warnings),
                            _max_memory(opts), "n/a", activations, linear)
    # CPU
    budget, what = _budget(opts, env, "cpu")
    if quant == "dequantized" and spec.quantized:
        backend, kept = "transformers", "dequantized"
        reasons["quantization"] = "asked for: experts dequantized in RAM by transformers"
        breakdown = (("non-expert weights", sizes.nonexpert_compute),
                     ("experts (dequantized)", sizes.experts_dequantized),
                     ("kv cache", sizes.kv_cache), ("attention scores", sizes.scores),
                     ("runtime", RUNTIME_OVERHEAD))
        peak = sum(n for _, n in breakdown)
        if budget and peak > budget:
            raise UnsupportedEnvironment(
                f"quantization='dequantize' on the CPU needs about {peak / GB:.1f} GB but {what} "
                f"is {budget / GB:.1f} GB; use quantization='auto' (experts stay MXFP4, memory-mapped)."
            )
    else:
        backend = "mapped"
        kept = "mxfp4" if spec.quantized else "dense"
        kernel, reasons["kernel"] = _kernel(opts, env, spec.quantized)
        if kernel == "torch" and opts.kernel not in (False, "off"):
            warnings.append(f"the experts run in pure torch: {reasons['kernel']}")
        reasons["quantization"] = (
            ("asked for; " if quant == "mxfp4" else "auto: ")
            + "experts stay MXFP4 in the memory-mapped files, only routed experts are read"
            if spec.quantized else "checkpoint has dense experts; they stay memory-mapped"
        )
        breakdown = (("non-expert weights", sizes.nonexpert_compute),
                     ("expert cache", opts.expert_cache), ("expert tiles", sizes.tiles),
                     ("kv cache", sizes.kv_cache), ("attention scores", sizes.scores),
                     ("runtime", RUNTIME_OVERHEAD))
        peak = sum(n for _, n in breakdown)
        if budget and peak > budget:
            message = (f"the estimated peak ({peak / GB:.1f} GB) exceeds {what} "
                       f"({budget / GB:.1f} GB)")
            if opts.max_memory and "cpu" in opts.max_memory:
                raise UnsupportedEnvironment(
                    message + "; raise max_memory['cpu'] or lower expert_cache."
                )
            warnings.append(
                message + "; weights are file-backed pages, so it may still run, slowly"
            )
    reasons["memory"] = f"{what}: {budget / GB:.1f} GB" if budget else "no budget known"
    kernel = kernel if backend == "mapped" else "n/a"
    activations = choose("activations", opts.expert_activations, kernel, reasons, warnings)
    linear = choose("linear", opts.linear_weights, kernel, reasons, warnings)
    return LoadPlan("cpu", backend, kept, dtype, peak, budget or None, breakdown,
                    types.MappingProxyType(reasons), tuple(warnings), _max_memory(opts),
                    kernel, activations, linear)


def _native_missing(env: Environment, opts: LoadOptions) -> list[str]:
    """What keeps transformers' native MXFP4 from running (empty: nothing): the versions
    transformers itself checks, and, offline, its hub kernel when it is not cached."""
    missing = env.native_mxfp4_missing()
    offline = env.hub_offline if opts.offline is None else opts.offline
    if not missing and offline and not env.native_kernel_cached:
        missing.append(f"offline, and transformers' MXFP4 kernel ({NATIVE_KERNEL_REPO}) is not "
                       "in the Hugging Face cache")
    return missing


def _kernel(opts: LoadOptions, env: Environment, quantized: bool) -> tuple[str, str]:
    """("fused" or "torch", why): the compute of the mapped backend's MXFP4 experts."""
    if not quantized:
        return "torch", "dense experts: torch's matmul"
    if opts.kernel is False or opts.kernel == "off":
        return "torch", f"asked for kernel=False; {SLOWER}"
    if env.kernel_status == "unavailable":
        if opts.kernel is True or opts.kernel == "on":
            raise UnsupportedEnvironment(
                f"kernel=True was asked for but the fused MXFP4 kernel is unavailable: "
                f"{env.kernel_detail}. Install a C++ compiler (g++ or clang++), or use "
                "kernel='auto' or False (pure torch)."
            )
        return "torch", env.kernel_detail
    if env.kernel_status == "ready":
        return "fused", env.kernel_detail
    if env.kernel_status == "buildable":
        return "fused", env.kernel_detail
    return "fused", "when it builds here (else pure torch, which says so)"


def _max_memory(opts: LoadOptions) -> Mapping[Any, int] | None:
    if not opts.max_memory:
        return None
    return types.MappingProxyType({k: parse_bytes(v, f"max_memory[{k!r}]") for k, v in opts.max_memory.items()})
