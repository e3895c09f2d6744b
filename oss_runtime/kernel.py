"""The fused MXFP4 dequantize-and-multiply kernel: built on first use, cached, optional.

`load_kernel()` compiles ``_kernels/mxfp4_linear.cpp`` with ``torch.utils.cpp_extension`` into a
cache directory (``$OSS_RUNTIME_CACHE_DIR``, else the user cache dir ``oss-runtime``), keyed by a
hash of the source and the torch version, and returns ``fn(x, blocks, scales, bias) -> y``. When
no compiler works, it returns ``None`` and `status()` says why; callers then use the pure-torch
path, which computes the same values. ``OSS_RUNTIME_KERNEL=0`` disables the kernel.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oss_runtime.errors import UnsupportedEnvironment

__all__ = ["FusedKernel", "cache_dir", "load_kernel", "reference_linear", "status"]

_SOURCE = Path(__file__).with_name("_kernels") / "mxfp4_linear.cpp"
_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # cache dir -> module, or an error string
_ISA_NAMES = {0: "scalar", 1: "avx2", 2: "avx512"}


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
        import torch
        from torch.utils import cpp_extension

        source = _SOURCE.read_text()
        key = hashlib.sha256((source + torch.__version__).encode()).hexdigest()[:12]
        name = f"oss_mxfp4_{key}"
        build = directory / name
        build.mkdir(parents=True, exist_ok=True)
        return cpp_extension.load_inline(  # type: ignore[no-untyped-call]
            name=name,
            cpp_sources=[source],
            functions=["mxfp4_linear", "mxfp4_dequant", "mxfp4_best_isa"],
            extra_cflags=["-O3", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            build_directory=str(build),
            verbose=False,
        )


def _module(directory: Path | None = None) -> Any:
    directory = directory or cache_dir()
    key = str(directory)
    with _lock:
        if key not in _loaded:
            if os.environ.get("OSS_RUNTIME_KERNEL", "1").strip().lower() in (
                "0",
                "off",
                "false",
                "no",
            ):
                _loaded[key] = "disabled by OSS_RUNTIME_KERNEL=0"
            else:
                try:
                    _loaded[key] = _build(directory)
                except Exception as exc:  # any build or import failure means: use pure torch
                    first = (
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    )
                    _loaded[key] = f"build failed ({type(exc).__name__}: {first[:300]})"
        return _loaded[key]


class FusedKernel:
    """The built kernel: ``linear(x, blocks, scales, bias)`` and ``dequant(blocks, scales, out)``."""

    def __init__(self, module: Any, isa: int) -> None:
        import torch

        self._mod = module
        self._isa = isa
        self._empty = torch.empty(0)
        best = int(module.mxfp4_best_isa())
        self.isa = _ISA_NAMES.get(best if isa < 0 else min(isa, best), "?")

    def linear(self, x: Any, blocks: Any, scales: Any, bias: Any = None) -> Any:
        """``x [T, K] float32 @ dequant(blocks [R, K/32, 16], scales [R, K/32]).T + bias`` -> ``[T, R]``."""
        return self._mod.mxfp4_linear(
            x, blocks, scales, self._empty if bias is None else bias, self._isa
        )

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
                "clang++) or load with kernel=False to use the pure-torch path."
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
