"""int8 linear weights (llama.cpp's Q8_0), an explicit choice: ``linear_weights="int8"``.

Every linear layer outside the experts (the attention projections and lm_head, 1.2 billion of
gpt-oss-20b's weights, two thirds of the bytes a decoded token reads in bf16) is rounded per row
and 32-value block: ``d = max|w| / 127`` kept as float16, ``q = round(w / d)`` as int8; 1.06
bytes per weight instead of 2. The fused kernel's ``int8_linear`` multiplies them with the input
rounded the same way (`oss_runtime.kernel.reference_int8_linear`).

The copy is written once, into ``int8-weights/`` of the cache dir (`default_folder`),
under a key made of the source shards' paths, sizes and modification times: a changed checkpoint
gets a new copy. One process writes it while the others wait (a lock beside it, which the OS drops
with its owner); it goes to a temporary file, synced and renamed into place, so a copy that was
cut off is never used, and the next writer removes such leftovers. One that fails its header
check is written again. It is memory-mapped like the checkpoint, so its pages are file pages,
not anonymous memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Any

from oss_runtime.checkpoint import Checkpoint, TensorInfo, read_safetensors_header
from oss_runtime.errors import CheckpointError, OssRuntimeError, UnsupportedEnvironment

__all__ = ["FORMAT", "WRITE_WAIT", "cached_copy", "default_folder", "describe_copies",
           "install_int8_linear", "quantize_rows"]

#: the copy's format; a new value makes every cached copy stale
FORMAT = "oss-runtime-int8-linear-1"
#: seconds to wait for another process that writes the same copy
WRITE_WAIT = 600.0
_CHUNK_ROWS = 4096
_MIB = 1 << 20


def _say(message: str) -> None:
    print(f"oss-runtime: {message}", file=sys.stderr, flush=True)


def quantize_rows(w: Any) -> tuple[Any, Any]:
    """``w [R, K]`` (K a multiple of 32) -> ``(q [R, K] int8, d [R, K/32] float16)``:
    ``d = max|block| / 127`` rounded to float16, ``q = round(w / d)`` (half to even, |q| <= 127)."""
    import torch

    rows, k = w.shape
    blocks = w.float().reshape(rows, k // 32, 32)
    d = (blocks.abs().amax(-1) / 127).to(torch.float16)
    if not bool(torch.isfinite(d).all()):
        raise ValueError("values that are not finite, or beyond float16's range times 127")
    scale = d.float()
    inv = torch.where(scale > 0, 1 / scale, torch.zeros_like(scale))
    q = torch.round(blocks * inv[..., None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(rows, k), d


def _layers(model: Any) -> list[tuple[str, Any]]:
    from oss_runtime.gemv import linear_layers

    return [(name, m) for name, m in linear_layers(model) if m.in_features % 32 == 0]


def _key(ck: Checkpoint, names: list[str]) -> str:
    """What the copy depends on: its format, the layers, and the checkpoint's shards."""
    stamp = []
    for path in sorted(ck.files):
        st = os.stat(path)
        stamp.append([os.path.realpath(path), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps([FORMAT, names, stamp]).encode()).hexdigest()[:16]


def _layout(layers: list[tuple[str, Any]]) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The safetensors header of the copy, and each tensor's (start, end) in its data section."""
    header: dict[str, Any] = {"__metadata__": {"format": FORMAT}}
    spans: dict[str, tuple[int, int]] = {}
    at = 0
    for name, module in layers:
        rows, k = module.out_features, module.in_features
        for suffix, dtype, shape, size in ((".q", "I8", [rows, k], rows * k),
                                           (".d", "F16", [rows, k // 32], rows * k // 16)):
            header[name + suffix] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + size]}
            spans[name + suffix] = (at, at + size)
            at += size
    raw = json.dumps(header).encode()
    raw += b" " * (-(8 + len(raw)) % 64)  # the data starts 64-byte aligned
    return raw, spans


def _valid(path: Path, layers: list[tuple[str, Any]]) -> dict[str, TensorInfo] | None:
    try:
        table = read_safetensors_header(path)
    except (CheckpointError, OSError):
        return None
    for name, module in layers:
        q, d = table.get(name + ".q"), table.get(name + ".d")
        if (q is None or d is None or q.shape != (module.out_features, module.in_features)
                or q.dtype != "I8" or d.dtype != "F16"):
            return None
    return table


def _remove_orphans(path: Path) -> None:
    """Delete temporary copies of ``path`` that killed writers left (called holding the lock)."""
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        _say(f"removed {tmp}, left by an interrupted write")


def _write(path: Path, layers: list[tuple[str, Any]]) -> None:
    _remove_orphans(path)
    header, spans = _layout(layers)
    size = 8 + len(header) + max((end for _, end in spans.values()), default=0)
    free = shutil.disk_usage(path.parent).free
    if free < size + 64 * _MIB:
        raise UnsupportedEnvironment(
            f"linear_weights='int8' needs {size / 1e9:.2f} GB free in {path.parent} for its int8 "
            f"copy, and {free / 1e9:.2f} GB are free; free some space, set OSS_RUNTIME_CACHE_DIR "
            "to a disk with room, or use linear_weights='exact'.")
    _say(f"writing the int8 copy of the attention and lm_head weights ({size / 1e9:.2f} GB, "
         f"once per checkpoint) to {path}")
    started = time.monotonic()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    base = 8 + len(header)
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            f.truncate(size)
            for name, module in layers:
                weight = module.weight.detach()
                for r0 in range(0, module.out_features, _CHUNK_ROWS):
                    try:
                        q, d = quantize_rows(weight[r0:r0 + _CHUNK_ROWS])
                    except ValueError as exc:
                        raise CheckpointError(
                            f"{name}.weight cannot be rounded to int8 per 32 values: it has {exc}. "
                            "Load it with linear_weights='exact'.") from None
                    os.pwrite(f.fileno(), q.numpy().tobytes(),
                              base + spans[name + ".q"][0] + r0 * module.in_features)
                    os.pwrite(f.fileno(), d.numpy().tobytes(),
                              base + spans[name + ".d"][0] + r0 * module.in_features // 16)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UnsupportedEnvironment(
                f"cannot write the int8 copy of the linear weights to {path}: {exc}. Set "
                "OSS_RUNTIME_CACHE_DIR to a writable directory with room, or use "
                "linear_weights='exact'.") from exc
        raise
    _say(f"wrote the int8 copy in {time.monotonic() - started:.0f} s")


def default_folder() -> Path:
    """``$OSS_RUNTIME_CACHE_DIR/int8-weights``, else ``int8-weights`` in the user cache dir of
    oss-runtime (beside the built kernels)."""
    from oss_runtime.kernel import cache_dir

    if os.environ.get("OSS_RUNTIME_CACHE_DIR"):
        return cache_dir() / "int8-weights"
    return cache_dir().parent / "int8-weights"


def describe_copies(folder: Path | None = None) -> str:
    """One line for ``oss-runtime doctor``: the int8 copies kept, their size and where."""
    folder = folder or default_folder()
    try:
        sizes = [p.stat().st_size for p in folder.glob("*.safetensors")]
    except OSError:
        sizes = []
    if not sizes:
        return f"none ({folder}; written by the first load with linear_weights='int8')"
    return (f"{len(sizes)} in {folder} ({sum(sizes) / 1e9:.2f} GB; any can be deleted, the next "
            "load with int8 writes it again)")


def cached_copy(model: Any, ck: Checkpoint, directory: Path | None = None
                ) -> tuple[Path, dict[str, TensorInfo], list[tuple[str, Any]]]:
    """The int8 copy of ``model``'s linear layers for checkpoint ``ck``: its path, its tensor
    table and the layers it covers; written first when it is missing or fails its check."""
    layers = _layers(model)
    key = _key(ck, [name for name, _ in layers])
    folder = directory or default_folder()
    path = folder / f"{Path(ck.root).name or 'checkpoint'}-{key}.safetensors"
    table = _valid(path, layers) if path.exists() else None
    if table is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnsupportedEnvironment(
                f"cannot create {folder} for the int8 copy of the linear weights: {exc}. Set "
                "OSS_RUNTIME_CACHE_DIR to a writable directory, or use linear_weights='exact'."
            ) from exc
        from pip_91n.filelock import FileLock

        lock = FileLock(folder / f"{path.name}.lock")  # one writer per copy; the rest wait
        if not lock.try_acquire():
            _say(f"waiting for another process that writes {path}")
            if not lock.acquire(timeout=WRITE_WAIT):
                raise UnsupportedEnvironment(
                    f"another process has been writing {path} for over {WRITE_WAIT / 60:.0f} "
                    "min; try again later, or use linear_weights='exact'.")
        try:
            table = _valid(path, layers) if path.exists() else None  # written while we waited
            if table is None:
                if path.exists():
                    _say(f"{path} does not match this checkpoint's layers: writing it again")
                _write(path, layers)
                table = _valid(path, layers)
        finally:
            lock.release()
        if table is None:  # pragma: no cover - written and renamed above
            raise OssRuntimeError(f"{path}: the int8 copy just written does not read back")
    return path, table, layers


def install_int8_linear(layers: list[tuple[str, Any]], table: dict[str, TensorInfo], files: Any,
                        kernel: Any) -> None:
    """Route ``layers`` (from `cached_copy`) through ``kernel.int8_linear`` on the int8 copy
    mapped by ``files`` (a `oss_runtime.bind.MappedFiles` of it), for every token count."""
    for name, module in layers:
        q, d = files.view(table[name + ".q"]), files.view(table[name + ".d"])
        module.forward = _int8_forward(module, kernel, q, d)
        module._oss_int8 = True


def _int8_forward(module: Any, kernel: Any, q: Any, d: Any) -> Any:
    import torch

    bias32 = None if module.bias is None else module.bias.detach().to(torch.float32)
    out_features, in_features = module.out_features, module.in_features

    def forward(x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = kernel.int8_linear(x.reshape(-1, in_features).to(torch.float32), q, d,
                                             bias32)
        return y.to(x.dtype).reshape(*x.shape[:-1], out_features)

    return forward
