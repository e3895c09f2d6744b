"""The fused MXFP4 dequantize-and-multiply kernel: built on first use, cached, optional.

`load_kernel()` compiles ``_kernels/mxfp4_linear.cpp`` (and ``int8_linear.cpp``, the int8 linear
weights' mat-vec, see `oss_runtime.q8weights`) with ``torch.utils.cpp_extension`` into a
cache directory (``$OSS_RUNTIME_CACHE_DIR``, else the user cache dir ``oss-runtime``), keyed by a
hash of the source and the torch version, and returns ``fn(x, blocks, scales, bias) -> y`` (its
``bf16_linear`` is the mat-vec of the bf16 layers, see `oss_runtime.gemv`). When
no compiler works, it returns ``None`` and `status()` says why; callers then use the pure-torch
path, which computes the same values (decode about 4-7x slower). ``OSS_RUNTIME_KERNEL=0``
disables the kernel.

The build (about 40 s on 2 cores, once per torch version) says so on stderr. One process builds
at a time: it holds a lock that the OS drops with its owner, so a build killed half-way never
blocks the next one (torch's own ``lock`` file, which such a build leaves behind, is broken
then), and a waiter gives up after ``BUILD_WAIT`` seconds, saying why. A build that failed is
remembered, per torch version and compiler, so every process does not retry it. `state()`
says where things stand without building anything.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from oss_runtime.errors import UnsupportedEnvironment

__all__ = ["BUILD_FLAGS", "BUILD_WAIT", "ENTRY_POINTS", "FusedKernel", "KernelState", "cache_dir",
           "load_kernel", "quantize_int8", "reference_int8_linear", "reference_linear",
           "reference_linear_int8", "state", "status"]

_SOURCES = tuple(Path(__file__).with_name("_kernels") / n for n in ("mxfp4_linear.cpp",
                                                                      "int8_linear.cpp"))
#: The functions the extension exports, and the compiler flags it is built with.
ENTRY_POINTS = ("mxfp4_linear", "mxfp4_linear_q8", "mxfp4_dequant", "mxfp4_best_isa", "bf16_linear",
                "int8_linear", "mxfp4_experts_one_token")
BUILD_FLAGS = ("-O3", "-fopenmp")
_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # cache dir -> module, or an error string
_ISA_NAMES = {0: "scalar", 1: "avx2", 2: "avx512"}
#: Seconds to wait for another process's build before giving up on the kernel.
BUILD_WAIT = 600.0
#: What a build usually takes, for the message (2 cores; about half that on 8).
_BUILD_TYPICAL = "about 40 s"
SLOWER = "decode is about 4-7x slower than with the kernel"


class KernelState(NamedTuple):
    """Where the kernel stands here, found without building: ``ready`` (built and cached),
    ``buildable`` (the first load builds it), or ``unavailable``; ``detail`` says why."""

    status: str
    detail: str


def _disabled() -> bool:
    from oss_runtime.switches import switch

    return not switch("OSS_RUNTIME_KERNEL", True)


def _name() -> str:
    """The build's name: a hash of the kernel source and the torch version."""
    import torch

    key = hashlib.sha256((_source() + torch.__version__).encode()).hexdigest()[:12]
    return f"oss_mxfp4_{key}"


def _source() -> str:
    """The kernel's one translation unit: the sources in order."""
    return "\n".join(path.read_text() for path in _SOURCES)


def _compiler() -> tuple[str, str | None]:
    """(the C++ compiler torch builds with, its ``--version`` line or None when missing)."""
    cxx = os.environ.get("CXX", "c++")
    return cxx, _compiler_version(cxx)


@functools.lru_cache(maxsize=8)
def _compiler_version(cxx: str) -> str | None:
    found = shutil.which(cxx)
    if found is None:
        return None
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.strip().splitlines() or [found])[0]


def _say(message: str) -> None:
    print(f"oss-runtime: {message}", file=sys.stderr, flush=True)


def state(directory: Path | None = None) -> KernelState:
    """Where the kernel stands, without building it (for plans, ``doctor`` and reprs)."""
    if _disabled():
        return KernelState("unavailable", f"disabled by OSS_RUNTIME_KERNEL=0; {SLOWER}")
    directory = directory or cache_dir()
    loaded = _loaded.get(str(directory))
    if isinstance(loaded, str):
        return KernelState("unavailable", f"{loaded}; {SLOWER}")
    if loaded is not None:
        return KernelState("ready", f"built, cached in {directory}")
    try:
        build = directory / _name()
    except ImportError:
        return KernelState("unavailable", "torch is not installed")
    if any(build.glob("*.so")) or any(build.glob("*.pyd")):
        return KernelState("ready", f"built, cached in {build}")
    failed = _failure(build)
    if failed is not None:
        return KernelState("unavailable", f"{failed}; {SLOWER}")
    cxx, version = _compiler()
    if version is None:
        return KernelState("unavailable", f"no C++ compiler ({cxx} not found); {SLOWER}")
    return KernelState("buildable", f"not built yet: the first load builds it ({_BUILD_TYPICAL}, "
                       f"once, with {version})")


def _interrupted(exc: BaseException) -> bool:
    """Whether a build was stopped by a signal (Ctrl-C, SIGTERM, a timeout) rather than
    failed: ninja says so, or a step died of the signal."""
    cause = exc.__cause__ or exc.__context__
    code = getattr(cause, "returncode", 0)
    return "interrupted by user" in str(exc) or (isinstance(code, int) and code < 0)


def _failure(build: Path) -> str | None:
    """Why the last build here failed, if it did with this torch and compiler."""
    try:
        data = json.loads((build / "failed.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("compiler") != _compiler()[1]:
        return None  # another compiler now: worth a new try
    return (f"the build failed earlier ({data.get('error', '?')}); delete "
            f"{build / 'failed.json'} to try again")


def cache_dir() -> Path:
    """Where built kernels live: ``$OSS_RUNTIME_CACHE_DIR`` or the platform's user cache dir."""
    env = os.environ.get("OSS_RUNTIME_CACHE_DIR")
    if env:
        return Path(env)
    try:
        import platformdirs

        return Path(platformdirs.user_cache_path("oss-runtime")) / "kernels"
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        return Path.home() / ".cache" / "oss-runtime" / "kernels"


@contextlib.contextmanager
def _setuptools_distutils_after_pip() -> Iterator[None]:
    """Let setuptools (which the build imports) load in a process that has imported pip.

    Before Python 3.12, setuptools' distutils shim turns itself off for good once pip is
    imported, and setuptools then fails on an assertion; asking it for the standard library's
    distutils for the duration of the build avoids that.
    """
    if (
        sys.version_info >= (3, 12)
        or "pip" not in sys.modules
        or "setuptools" in sys.modules
        or "SETUPTOOLS_USE_DISTUTILS" in os.environ
    ):
        yield
        return
    os.environ["SETUPTOOLS_USE_DISTUTILS"] = "stdlib"
    try:
        yield
    finally:
        os.environ.pop("SETUPTOOLS_USE_DISTUTILS", None)


def _build(directory: Path) -> Any:
    # The build tools warn about their own internals (distutils' deprecation, for one), on
    # import and while building; under a caller's "error" warning filter that would turn a
    # working build into the slow path.
    with warnings.catch_warnings(), _setuptools_distutils_after_pip():
        warnings.simplefilter("ignore")
        from torch.utils import cpp_extension

        name = _name()
        build = directory / name
        build.mkdir(parents=True, exist_ok=True)
        failed = _failure(build)
        if failed is not None:
            raise RuntimeError(failed)
        cxx, version = _compiler()
        if version is None:
            raise RuntimeError(f"no C++ compiler ({cxx} not found)")
        from pip_91n.filelock import FileLock

        lock = FileLock(build / "oss-runtime-build.lock")
        if not lock.try_acquire():
            _say(f"waiting for another process that builds the MXFP4 kernel in {build} "
                 f"(at most {BUILD_WAIT / 60:.0f} min)")
            if not lock.acquire(timeout=BUILD_WAIT):
                raise RuntimeError(f"another process has been building the kernel in {build} "
                                   f"for over {BUILD_WAIT / 60:.0f} min")
        try:
            stale = build / "lock"  # torch's, left by a build that was killed: nobody holds it
            if stale.exists():
                stale.unlink(missing_ok=True)
                _say(f"removed {stale}, left by an interrupted build")
            built = any(build.glob("*.so")) or any(build.glob("*.pyd"))
            if not built:
                _say(f"building the MXFP4 kernel for this machine ({_BUILD_TYPICAL}, once per "
                     f"torch version; cached in {build})")
            t0 = time.monotonic()
            try:
                module = cpp_extension.load_inline(  # type: ignore[no-untyped-call]
                    name=name,
                    cpp_sources=[_source()],
                    functions=list(ENTRY_POINTS),
                    extra_cflags=list(BUILD_FLAGS),
                    extra_ldflags=["-fopenmp"],
                    build_directory=str(build),
                    verbose=False,
                )
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"{type(exc).__name__}: {first[:300]}"
                if not _interrupted(exc):  # a stopped build says nothing about the compiler
                    with contextlib.suppress(OSError):
                        (build / "failed.json").write_text(json.dumps(
                            {"error": reason, "compiler": _compiler()[1], "at": time.time()}))
                raise RuntimeError(reason) from exc
            if not built:
                _say(f"built the MXFP4 kernel in {time.monotonic() - t0:.0f} s")
            return module
        finally:
            lock.release()


def _module(directory: Path | None = None) -> Any:
    directory = directory or cache_dir()
    key = str(directory)
    with _lock:
        if key not in _loaded:
            if _disabled():
                _loaded[key] = "disabled by OSS_RUNTIME_KERNEL=0"
            else:
                try:
                    _loaded[key] = _build(directory)
                except Exception as exc:  # any build or import failure means: use pure torch
                    text = str(exc).strip()
                    _loaded[key] = (text if text.startswith(("the build failed earlier",
                                                             "another process", "no C++"))
                                    else f"build failed ({text or type(exc).__name__})")
        return _loaded[key]


class FusedKernel:
    """The built kernel: ``linear(x, blocks, scales, bias)`` and ``dequant(blocks, scales, out)``."""

    def __init__(self, module: Any, isa: int) -> None:
        import torch

        self._mod = module
        self._isa = isa
        self._empty = torch.empty(0)
        #: whether this build has the bf16 mat-vec (`oss_runtime.gemv`)
        self.has_bf16_linear = hasattr(module, "bf16_linear")
        #: whether it has the int8 linear weights' mat-vec (`oss_runtime.q8weights`)
        self.has_int8_linear = hasattr(module, "int8_linear")
        #: whether it runs one token's routed experts in one call (`experts_one_token`)
        self.has_experts_one_token = hasattr(module, "mxfp4_experts_one_token")
        best = int(module.mxfp4_best_isa())
        self.isa = _ISA_NAMES.get(best if isa < 0 else min(isa, best), "?")

    def linear(self, x: Any, blocks: Any, scales: Any, bias: Any = None, *,
               int8: bool = False) -> Any:
        """``x [T, K] float32 @ dequant(blocks [R, K/32, 16], scales [R, K/32]).T + bias`` -> ``[T, R]``.

        ``int8=True`` quantizes ``x`` to int8 per 32-value block first (llama.cpp's MXFP4 x Q8_0
        trade, see `reference_linear_int8`); the weights stay exact either way."""
        fn = self._mod.mxfp4_linear_q8 if int8 else self._mod.mxfp4_linear
        return fn(x, blocks, scales, self._empty if bias is None else bias, self._isa)

    def bf16_linear(self, x: Any, weight: Any, bias: Any = None) -> Any:
        """``x [T, K] float32 @ weight [R, K] bfloat16 .T + bias`` (float32 or None) -> ``[T, R]``."""
        return self._mod.bf16_linear(x, weight, self._empty if bias is None else bias, self._isa)

    def int8_linear(self, x: Any, q: Any, d: Any, bias: Any = None) -> Any:
        """``x [T, K] float32 @ (q [R, K] int8 * d [R, K/32] float16).T + bias`` -> ``[T, R]``,
        ``x`` rounded to int8 per 32-value block first (see `reference_int8_linear`)."""
        return self._mod.int8_linear(x, q, d, self._empty if bias is None else bias, self._isa)

    def experts_one_token(self, x: Any, indices: Any, weights: Any, gate_up: tuple[Any, ...],
                          gate_up_bias: Any, down: tuple[Any, ...], down_bias: Any, out: Any, *,
                          limit: float, alpha: float, int8: bool = False) -> Any:
        """One token ``x [1, H]`` through the experts ``indices [1, k]`` (MXFP4 ``(blocks,
        scales)`` of all the layer's experts, float32 biases ``[E, ...]``), each output times its
        routing weight added to ``out [1, H]`` in place, in ascending expert order."""
        return self._mod.mxfp4_experts_one_token(
            x, indices, weights, gate_up[0], gate_up[1], gate_up_bias, down[0], down[1], down_bias,
            out, limit, alpha, int8, self._isa)

    def dequant(self, blocks: Any, scales: Any, out: Any) -> Any:
        """Exact dequantization into a contiguous float32/bfloat16 ``out [R, K]``."""
        return self._mod.mxfp4_dequant(blocks, scales, out)

    __call__ = linear


def load_kernel(
    *, required: bool = False, directory: Path | None = None, isa: int = -1
) -> FusedKernel | None:
    """The fused kernel, or ``None`` if it cannot be built here (then use pure torch).

    ``isa`` caps the instruction set (-1 best, 0 scalar, 1 AVX2, 2 AVX-512); ``required=True``
    raises `UnsupportedEnvironment` instead of returning ``None``.
    """
    mod = _module(directory)
    if isinstance(mod, str):
        if required:
            raise UnsupportedEnvironment(
                f"the fused MXFP4 kernel is unavailable: {mod}. Install a C++ compiler (g++ or "
                "clang++) or load with kernel=False to use the pure-torch path "
                f"({SLOWER})."
            )
        return None
    return FusedKernel(mod, isa)


def status(directory: Path | None = None) -> str:
    """One line: whether the kernel is in use here and with which instruction set, or why not."""
    mod = _module(directory)
    if isinstance(mod, str):
        return f"pure torch ({mod})"
    return f"fused C++ kernel ({_ISA_NAMES.get(mod.mxfp4_best_isa(), '?')}, cached in {directory or cache_dir()})"


def reference_linear(x: Any, blocks: Any, scales: Any, bias: Any = None) -> Any:
    """The pure-torch equivalent of the kernel: ``x @ dequantize(blocks, scales).T + bias``."""
    from torch.nn import functional as F

    from oss_runtime import mxfp4

    return F.linear(x, mxfp4.dequantize(blocks, scales), bias)


def quantize_int8(x: Any) -> tuple[Any, Any]:
    """``x [T, K]`` float32 -> ``(q [T, K/32, 32] int8, d [T, K/32] float32)`` as the kernel's
    ``int8=True`` path rounds it: ``d = max|block| / 127``, ``q = round(x / d)`` (half to even)."""
    import torch

    blocks = x.reshape(x.shape[0], -1, 32)
    d = blocks.abs().amax(-1) / 127
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.round(blocks * inv[..., None]).clamp(-127, 127)
    return q.to(torch.int8), d


def reference_linear_int8(x: Any, blocks: Any, scales: Any, bias: Any = None) -> Any:
    """The pure-torch equivalent of ``linear(..., int8=True)``: x rounded to int8 per block, in
    float64, so only the kernel's order of float32 additions differs."""
    from torch.nn import functional as F

    from oss_runtime import mxfp4

    q, d = quantize_int8(x)
    xr = (q.double() * d.double()[..., None]).reshape(x.shape)
    w = mxfp4.dequantize(blocks, scales).double()
    y = F.linear(xr, w, None if bias is None else bias.double())
    return y.to(x.dtype)


def reference_int8_linear(x: Any, q: Any, d: Any, bias: Any = None) -> Any:
    """The pure-torch equivalent of ``int8_linear``: x rounded to int8 per block as there, then
    multiplied with the int8 weights times their scales in float64."""
    from torch.nn import functional as F

    xq, xd = quantize_int8(x)
    xr = (xq.double() * xd.double()[..., None]).reshape(x.shape)
    w = (q.double().reshape(q.shape[0], -1, 32) * d.double()[..., None]).reshape(q.shape)
    return F.linear(xr, w, None if bias is None else bias.double()).to(x.dtype)
