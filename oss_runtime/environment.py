"""What this machine offers: the only module of oss_runtime that asks hardware questions.

`detect_environment()` returns a frozen `Environment` (CUDA devices and compute capability, the
packages transformers' native MXFP4 path needs, total and available RAM, CPU count). Everything
that decides from it (`oss_runtime.plan`) is pure and takes an `Environment` value, so tests build
one by hand for any machine.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
from typing import Any

__all__ = ["Environment", "detect_environment", "memory_info"]


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

    @property
    def native_mxfp4(self) -> bool:
        """transformers can keep MXFP4 on the GPU: CC >= 7.5, triton >= 3.4 and ``kernels``."""
        return (
            self.cuda_available
            and self.cuda_capability is not None
            and self.cuda_capability >= (7, 5)
            and _at_least(self.triton_version, (3, 4))
            and self.kernels_version is not None
        )

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
            ("kernels", self.kernels_version or "not installed"),
            ("native mxfp4", "yes" if self.native_mxfp4 else "no"),
        ]


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


def detect_environment() -> Environment:
    """Probe this machine (imports torch when installed; never raises for a missing package)."""
    total, available = memory_info()
    return Environment(
        cpu_count=os.cpu_count() or 1,
        total_ram=total,
        available_ram=available,
        torch_version=_version("torch"),
        transformers_version=_version("transformers"),
        triton_version=_version("triton"),
        kernels_version=_version("kernels"),
        **_cuda(),
    )
