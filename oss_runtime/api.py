"""`load_gpt_oss_20b()`: resolve, inspect, plan, load, in one call; `GptOssRuntime` holds the result.

::

    from oss_runtime import load_gpt_oss_20b

    rt = load_gpt_oss_20b()                      # openai/gpt-oss-20b: cache or download
    rt = load_gpt_oss_20b("/models/gpt-oss-20b")  # a local directory: no network at all
    print(rt.plan.describe())
    print(rt.generate("Why is the sky blue?", max_new_tokens=200))

Steps: `resolve.resolve_source` (directory | HF cache | download), `checkpoint.inspect_checkpoint`
(headers only), `plan.plan_load` (pure, with reasons; raises instead of silently falling back),
then the plan's backend, each in a module of its own: ``"mapped"`` (`bind.load_model`, CPU,
MXFP4 experts memory-mapped) or ``"transformers"`` (`native.load_transformers_model`:
``GptOssForCausalLM.from_pretrained`` with native MXFP4 kernels on a GPU, or dequantized weights
when asked and memory allows).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oss_runtime.checkpoint import Checkpoint, inspect_checkpoint
from oss_runtime.environment import Environment, detect_environment
from oss_runtime.errors import MissingDependency
from oss_runtime.plan import LoadOptions, LoadPlan, parse_bytes, plan_load
from oss_runtime.precision import NO_INT8, NO_INT8_LINEAR
from oss_runtime.resolve import Resolved, resolve_source
from oss_runtime.switches import expert_activations as expert_activations_setting
from oss_runtime.switches import linear_weights as linear_weights_setting

__all__ = ["GptOssRuntime", "has_tokenizer", "load_gpt_oss_20b", "load_tokenizer"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclasses.dataclass
class GptOssRuntime:
    """A loaded gpt-oss model: ``model`` (transformers), ``tokenizer`` (or None), ``plan``."""

    model: Any
    tokenizer: Any
    plan: LoadPlan
    source: Resolved
    checkpoint: Checkpoint
    load_seconds: float

    @property
    def path(self) -> Path:
        return self.source.path

    def generate(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], *,
                 max_new_tokens: int = 256, stream: bool = False, reasoning_effort: str = "medium",
                 return_analysis: bool = False, system: str | None = None,
                 temperature: float = 0.0, seed: int | None = 0) -> Any:
        """Chat in the harmony format; see `oss_runtime.chat.generate`."""
        from oss_runtime.chat import generate

        return generate(self.model, self.tokenizer, prompt_or_messages,
                        max_new_tokens=max_new_tokens, stream=stream,
                        reasoning_effort=reasoning_effort, return_analysis=return_analysis,
                        system=system, temperature=temperature, seed=seed)

    def __repr__(self) -> str:
        p = self.plan
        return (f"GptOssRuntime({str(self.path)!r}, device={p.device!r}, quantization="
                f"{p.quantization!r}, dtype={p.dtype!r}, backend={p.backend!r}, "
                f"compute={p.compute!r})")


def has_tokenizer(path: str | os.PathLike[str]) -> bool:
    """Whether the checkpoint directory has tokenizer files (checked without loading)."""
    return any((Path(path) / f).is_file() for f in _TOKENIZER_FILES)


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The directory's tokenizer (with its chat template), or None when it has none."""
    root = Path(path)
    if not has_tokenizer(root):
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(
            "the tokenizer needs transformers: pip install 'pip-91n[runtime]'"
        ) from exc
    return AutoTokenizer.from_pretrained(os.fspath(root))


def _cache_bytes(expert_cache: int | str | None) -> int:
    if expert_cache in (None, 0, "0", "off", False):
        return 0
    return parse_bytes(expert_cache, "expert_cache")


def _actual_kernel(plan: LoadPlan, model: Any) -> LoadPlan:
    """The plan as it ran: a kernel that was to be built but did not is said, not hidden."""
    if plan.kernel != "fused":
        return plan
    experts = getattr(model.model.layers[0].mlp, "experts", None) if model.model.layers else None
    if experts is None or getattr(experts, "kernel", None) is not None:
        return plan
    from oss_runtime.kernel import SLOWER, status

    why = f"{status().removeprefix('pure torch (').removesuffix(')')}; {SLOWER}"
    reasons = {**plan.reasons, "kernel": why}
    if plan.expert_activations == "int8":
        reasons["activations"] = NO_INT8
    if plan.linear_weights == "int8":
        reasons["linear"] = NO_INT8_LINEAR
    return dataclasses.replace(plan, kernel="torch", reasons=reasons, expert_activations="float32",
                               linear_weights="exact",
                               warnings=(*plan.warnings, f"the experts run in pure torch: {why}"))


def load_gpt_oss_20b(
    source: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    dtype: Any = None,
    quantization: str = "auto",
    max_memory: Mapping[int | str, int | str] | None = None,
    expert_cache: int | str | None = 0,
    offline: bool | None = None,
    revision: str | None = None,
    endpoints: Sequence[str] | str | None = None,
    progress: bool = True,
    kernel: str | bool = "auto",
    prefill_chunk: int | None = 512,
    environment: Environment | None = None,
    expert_activations: str | None = None,
    linear_weights: str | None = None,
) -> GptOssRuntime:
    """Load gpt-oss-20b (or any gpt-oss checkpoint) in one call; see the module docstring.

    ``source``: None (``openai/gpt-oss-20b``), a local directory, or a hub repo id. ``device``:
    ``"auto"``, ``"cpu"``, ``"cuda"``/``"cuda:N"``. ``dtype``: compute dtype of the non-expert path
    (default bfloat16). ``quantization``: ``"auto"``, ``"mxfp4"`` (raise if it cannot be kept) or
    ``"dequantize"``. ``max_memory``: accelerate's per-device budgets (``{0: "20GiB", "cpu":
    "30GiB"}``). ``expert_cache``: bytes (or ``"2GB"``) of dequantized experts kept by the CPU
    path. ``offline``/``revision``/``endpoints``/``progress``: see `oss_runtime.resolve`.
    ``environment``: a hand-made `Environment` instead of probing this machine (tests, planning).
    ``expert_activations``: ``"float32"`` (exact, the default) or ``"int8"``: on the fused CPU
    kernel, each expert's input is rounded to int8 per 32 values, as llama.cpp does (faster
    decode, about 0.5 % relative error per expert output; docs/runtime.md has the measured
    accuracy). None reads ``OSS_RUNTIME_EXPERT_ACTIVATIONS``.
    ``linear_weights``: ``"exact"`` (as stored, the default) or ``"int8"``: on the fused CPU
    kernel, the attention projections and lm_head run on an int8 copy of their weights, per 32
    values, as llama.cpp's Q8_0 layout does (about 1.3 GB written once to the cache dir and
    mapped; fewer bytes per token; docs/runtime.md has the measured accuracy). None reads
    ``OSS_RUNTIME_LINEAR_WEIGHTS``.
    """
    started = time.perf_counter()
    resolved = resolve_source(source, revision=revision, offline=offline, endpoints=endpoints,
                              progress=progress)
    ck = inspect_checkpoint(resolved.path)
    env = environment or detect_environment()
    if dtype is not None and not isinstance(dtype, str):
        dtype = str(dtype).replace("torch.", "")
    options = LoadOptions(device=device, quantization=quantization, dtype=dtype,
                          max_memory=max_memory, expert_cache=_cache_bytes(expert_cache),
                          prefill_chunk=prefill_chunk or 512, kernel=kernel, offline=offline,
                          expert_activations=expert_activations_setting(expert_activations),
                          linear_weights=linear_weights_setting(linear_weights))
    plan = plan_load(ck, env, options)
    if plan.backend == "mapped":
        from oss_runtime.bind import load_model

        model = load_model(resolved.path, dtype=plan.dtype, expert_cache_bytes=options.expert_cache,
                           kernel=kernel, prefill_chunk=prefill_chunk, checkpoint=ck,
                           expert_activations=plan.expert_activations,
                           linear_weights=plan.linear_weights)
        plan = _actual_kernel(plan, model)
    else:
        from oss_runtime.native import load_transformers_model

        model = load_transformers_model(resolved.path, plan, offline=options.offline)
    tokenizer = load_tokenizer(resolved.path)
    return GptOssRuntime(model, tokenizer, plan, resolved, ck, time.perf_counter() - started)
