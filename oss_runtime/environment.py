"""What this machine offers: the only module of oss_runtime that asks hardware questions.

`detect_environment()` returns a frozen `Environment` (CUDA devices and compute capability, the
packages transformers' native MXFP4 path needs and the version ranges transformers itself
accepts for them, whether its hub kernel is cached, the fused CPU kernel's state, total and
available RAM, CPU count). Everything that decides from it (`oss_runtime.plan`) is pure and
takes an `Environment` value, so tests build one by hand for any machine.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import re
from typing import Any

from oss_runtime.switches import SWITCHES

__all__ = ["NATIVE_KERNEL_REPO", "Environment", "detect_environment", "memory_info"]

#: The hub repo transformers fetches its native MXFP4 (Triton) kernels from, at load time.
NATIVE_KERNEL_REPO = "kernels-community/gpt-oss-triton-kernels"
@dataclasses.dataclass(frozen=True)
class Environment:
    """Facts about the machine a load plan is made for (all plain values)."""

    cpu_count: int = 1
    total_ram: int = 0  # bytes
    available_ram: int = 0  # bytes the OS says a new process can use without swapping
    torch_version: str | None = None
    transformers_version: str | None = None
    cuda_available: bool = False
    cuda_device_name: str | None = None
    cuda_capability: tuple[int, int] | None = None
    cuda_total_memory: int = 0  # bytes on device 0
    cuda_free_memory: int = 0
    triton_version: str | None = None
    kernels_version: str | None = None
    # what transformers itself accepts, read from it at run time (None: not known here)
    kernels_accepted: bool | None = None  # transformers' is_kernels_available()
    kernels_range: str = ""  # e.g. ">=0.19.1,<0.20.0"
    triton_minimum: str = "3.4.0"  # transformers' minimum triton for MXFP4 on CUDA
    hub_offline: bool = False  # HF_HUB_OFFLINE
    native_kernel_cached: bool = False  # NATIVE_KERNEL_REPO is in the Hugging Face cache
    # the fused CPU kernel (oss_runtime.kernel.state): ready | buildable | unavailable | unknown
    kernel_status: str = "unknown"
    kernel_detail: str = ""
    #: the OSS_RUNTIME_* switches set here (name, value), for doctor (`SWITCHES`)
    switches: tuple[tuple[str, str], ...] = ()
    #: the int8 copies of linear weights kept in the cache dir, in words (`oss_runtime.q8weights`)
    int8_copies: str = ""

    def native_mxfp4_missing(self) -> list[str]:
        """What transformers' native MXFP4 path lacks here (empty: it can run), each in the
        words and version ranges transformers itself checks."""
        missing = []
        if not self.cuda_available:
            missing.append("no CUDA device")
        elif self.cuda_capability is None or self.cuda_capability < (7, 5):
            missing.append(f"compute capability {self.cuda_capability} < (7, 5)")
        if not _at_least(self.triton_version, _release(self.triton_minimum)):
            missing.append(f"triton {self.triton_version or 'not installed'} (transformers "
                           f"needs >= {self.triton_minimum})")
        ok = (self.kernels_accepted if self.kernels_accepted is not None
              else self.kernels_version is not None)
        if not ok:
            wanted = f" {self.kernels_range}" if self.kernels_range else ""
            missing.append(f"kernels {self.kernels_version or 'not installed'} (transformers "
                           f"accepts{wanted or ' an installed kernels package'})")
        return missing

    @property
    def native_mxfp4(self) -> bool:
        """transformers can keep MXFP4 on the GPU (see `native_mxfp4_missing`)."""
        return not self.native_mxfp4_missing()

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) rows for ``oss-runtime doctor``."""
        gib = 1024**3
        cuda = "no"
        if self.cuda_available:
            cc = ".".join(map(str, self.cuda_capability or ()))
            cuda = (f"{self.cuda_device_name} (compute capability {cc}, "
                    f"{self.cuda_free_memory / gib:.1f} of {self.cuda_total_memory / gib:.1f} GiB free)")
        return [
            ("cpus", str(self.cpu_count)),
            (
                "ram",
                f"{self.available_ram / gib:.1f} GiB available of {self.total_ram / gib:.1f} GiB",
            ),
            ("torch", self.torch_version or "not installed"),
            ("transformers", self.transformers_version or "not installed"),
            ("cuda", cuda),
            ("triton", self.triton_version or "not installed"),
            ("kernels", (self.kernels_version or "not installed")
             + (f" (transformers accepts {self.kernels_range})" if self.kernels_range else "")),
            ("native mxfp4", "yes" if self.native_mxfp4 else
             "no: " + "; ".join(self.native_mxfp4_missing())),
            ("native kernel", ("cached" if self.native_kernel_cached else "not cached")
             + f" ({NATIVE_KERNEL_REPO}" + (", HF_HUB_OFFLINE set)" if self.hub_offline
                                            else ", fetched on first native load)")),
            ("cpu kernel", f"{self.kernel_status}: {self.kernel_detail}"),
            *([("int8 copies", self.int8_copies)] if self.int8_copies else []),
            ("switches", ", ".join(f"{k}={v}" for k, v in self.switches) or "none set (defaults: "
             + ", ".join(f"{k}={v}" for k, v in SWITCHES.items()) + ")"),
        ]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def _at_least(version: str | None, want: tuple[int, ...]) -> bool:
    if not version:
        return False
    parts: list[int] = []
    for piece in version.split(".")[: len(want)]:
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) >= want


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def memory_info() -> tuple[int, int]:
    """(total, available) RAM in bytes, from /proc/meminfo, psutil or sysconf."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:  # pragma: no cover - depends on the platform
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages, pages


def _cuda() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {}
    import torch

    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info(0)
    return {
        "cuda_available": True,
        "cuda_device_name": torch.cuda.get_device_name(0),
        "cuda_capability": tuple(torch.cuda.get_device_capability(0)),
        "cuda_total_memory": int(total),
        "cuda_free_memory": int(free),
    }


def _transformers_mxfp4() -> dict[str, Any]:
    """The version checks of transformers' MXFP4 quantizer, read from transformers itself
    (the kernels range from its constants, the triton minimum from its CUDA branch)."""
    try:
        import inspect

        from transformers.quantizers import quantizer_mxfp4
        from transformers.utils import import_utils
    except Exception:
        return {}
    out: dict[str, Any] = {}
    low = getattr(import_utils, "KERNELS_MIN_VERSION", None)
    high = getattr(import_utils, "KERNELS_MAX_VERSION", None)
    if low and high:
        out["kernels_range"] = f">={low},<{high}"
    check = getattr(import_utils, "is_kernels_available", None)
    if callable(check):
        out["kernels_accepted"] = bool(check())
    try:
        source = inspect.getsource(quantizer_mxfp4.Mxfp4HfQuantizer.validate_environment)
    except (OSError, TypeError, AttributeError):
        return out
    m = re.search(r"cuda\.is_available\(\):.*?is_triton_available\(\s*[\"']([\d.]+)",
                  source, re.DOTALL)
    if m:
        out["triton_minimum"] = m.group(1)
    return out


def _native_kernel_cached() -> bool:
    from oss_runtime.hubcache import hub_cache_dir

    snapshots = hub_cache_dir() / ("models--" + NATIVE_KERNEL_REPO.replace("/", "--")) / "snapshots"
    try:
        return any(p.is_dir() for p in snapshots.iterdir())
    except OSError:
        return False


def _cpu_kernel() -> dict[str, Any]:
    from oss_runtime.kernel import state

    found = state()
    return {"kernel_status": found.status, "kernel_detail": found.detail}


def detect_environment() -> Environment:
    """Probe this machine (imports torch when installed, transformers too when there is a CUDA
    device; never raises for a missing package; builds nothing)."""
    from oss_runtime.hubcache import offline_requested
    from oss_runtime.q8weights import describe_copies

    total, available = memory_info()
    cuda = _cuda()
    return Environment(
        cpu_count=os.cpu_count() or 1,
        total_ram=total,
        available_ram=available,
        torch_version=_version("torch"),
        transformers_version=_version("transformers"),
        triton_version=_version("triton"),
        kernels_version=_version("kernels"),
        hub_offline=offline_requested(),
        native_kernel_cached=_native_kernel_cached(),
        switches=tuple((k, os.environ[k]) for k in SWITCHES if os.environ.get(k, "").strip()),
        int8_copies=describe_copies(),
        **({**_transformers_mxfp4(), **cuda} if cuda else {}),
        **(_cpu_kernel() if importlib.util.find_spec("torch") is not None else {}),
    )
