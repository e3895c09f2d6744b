"""Header-only inspection of a gpt-oss checkpoint directory (stdlib only; no tensor data is read).

`inspect_checkpoint(path)` reads config.json, model.safetensors.index.json when present, and the
header of every safetensors shard (8-byte little-endian length, then JSON). It returns a frozen
`Checkpoint` whose `tensors` table maps each name to its file, absolute byte offset, dtype and
shape. Every defect (missing or truncated shard, a header that lies about sizes, a wrong shape or
dtype, MXFP4 blocks without scales, an unknown quant method) raises one `CheckpointError` naming the
file and the tensor before anything large is allocated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from oss_runtime.errors import CheckpointError
from oss_runtime.layout import DTYPE_SIZES, TensorSpec, expected_tensors
from oss_runtime.spec import ModelSpec, spec_from_config

__all__ = [
    "INDEX_NAME",
    "Checkpoint",
    "TensorInfo",
    "inspect_checkpoint",
    "read_safetensors_header",
]

INDEX_NAME = "model.safetensors.index.json"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, absolute byte offset of its data, dtype name and shape."""

    name: str
    file: str
    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint: its directory, parsed config and spec, and the tensor table."""

    root: str
    config: Mapping[str, Any]
    spec: ModelSpec
    tensors: Mapping[str, TensorInfo]
    files: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def expert_bytes(self) -> int:
        return sum(t.nbytes for n, t in self.tensors.items() if ".mlp.experts." in n)


def _fail(path: PathLike, what: str, fix: str = "") -> CheckpointError:
    message = f"{os.fspath(path)}: {what}"
    if fix:
        message += f" {fix}"
    return CheckpointError(message)


def read_safetensors_header(path: PathLike) -> dict[str, TensorInfo]:
    """Read and check one safetensors header; return its tensors with absolute offsets."""
    redownload = "Re-download or re-create this file."
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _fail(
                    path, f"file is {size} bytes, too short for a safetensors header.", redownload
                )
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise _fail(
                    path,
                    f"header length field says {n} bytes but the file has {size} bytes; the file is "
                    "truncated or not safetensors.",
                    redownload,
                )
            raw = f.read(n)
    except FileNotFoundError:
        raise _fail(path, "shard file is missing.", "Download it again or fix the index.") from None
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc}.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"header is not valid JSON ({exc}).", redownload) from exc
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object.", redownload)
    data_start = 8 + n
    data_len = size - data_start
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name!r}"
        if not isinstance(entry, dict):
            raise _fail(path, f"{where}: header entry is not an object.", redownload)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_SIZES:
            raise _fail(path, f"{where}: unknown dtype {dtype!r}.", redownload)
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _fail(path, f"{where}: shape {shape!r} is not a list of non-negative integers.")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _fail(path, f"{where}: data_offsets {offsets!r} are malformed.", redownload)
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise _fail(
                path,
                f"{where}: header lies about its size: shape {shape} of {dtype} needs {nbytes} bytes "
                f"but data_offsets {offsets} span {offsets[1] - offsets[0]}.",
                redownload,
            )
        if offsets[1] > data_len:
            raise _fail(
                path,
                f"{where}: data ends at byte {data_start + offsets[1]} but the file has only {size} "
                "bytes; the shard is truncated (an interrupted download?).",
                redownload,
            )
        out[name] = TensorInfo(
            name, os.fspath(path), data_start + offsets[0], nbytes, dtype, tuple(shape)
        )
    spans = sorted((t.offset, t.offset + t.nbytes, t.name) for t in out.values() if t.nbytes)
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise _fail(path, f"tensors {a!r} and {b!r} overlap in the data section.", redownload)
    return out


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{what} is not readable JSON ({exc}).") from exc


def _shard_files(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Shard paths and, with an index, its weight_map (name -> file name)."""
    index_path = root / INDEX_NAME
    if index_path.exists():
        index = _load_json(index_path, "the safetensors index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise _fail(index_path, "has no 'weight_map' object of tensor name -> shard file.")
        for name, fname in weight_map.items():
            if os.path.basename(fname) != fname or not (root / fname).is_file():
                raise _fail(
                    root / fname,
                    f"shard file is missing (the index maps tensor {name!r} to it).",
                    "Download the missing shard, or fix model.safetensors.index.json.",
                )
        return [root / f for f in sorted(set(weight_map.values()))], dict(weight_map)
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise _fail(root, "no *.safetensors files and no model.safetensors.index.json found.",
                    "Point to a Hugging Face-layout gpt-oss checkpoint directory.")
    return files, {}


#: How many tensors an error names before it counts the rest.
_SHOW = 3


def _check_against_layout(spec: ModelSpec, tensors: Mapping[str, TensorInfo], root: Path) -> None:
    expected = expected_tensors(spec)
    problems: list[str] = []
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            continue
        if got.dtype not in want.dtypes or got.shape != want.shape:
            problems.append(_mismatch(got, want))
    if problems:
        shown = "; ".join(problems[:_SHOW])
        more = f"; and {len(problems) - _SHOW} more tensors" if len(problems) > _SHOW else ""
        raise CheckpointError(
            f"{len(problems)} tensor(s) differ from what config.json describes: {shown}{more}. "
            "The checkpoint does not match its config.json (check hidden_size, the numbers of "
            "layers, heads and experts)."
        )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        for name in missing:  # the most specific message first: blocks without scales
            if name.endswith("_scales") and name.replace("_scales", "_blocks") in tensors:
                blocks = tensors[name.replace("_scales", "_blocks")]
                raise _fail(
                    blocks.file,
                    f"tensor {blocks.name!r} has no MXFP4 scales: {name!r} is in no shard.",
                    "Both *_blocks and *_scales are needed; re-download the checkpoint.",
                )
        raise _fail(
            root,
            f"{len(missing)} tensor(s) missing from every shard: {', '.join(missing[:_SHOW])}"
            + (f" and {len(missing) - _SHOW} more" if len(missing) > _SHOW else "")
            + ".",
            "The checkpoint is incomplete or its config.json does not describe it.",
        )
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        quant = "dense" if not spec.quantized else spec.quant_method
        raise _fail(
            tensors[unexpected[0]].file,
            f"{len(unexpected)} unexpected tensor(s) for a {quant} gpt-oss config: "
            f"{', '.join(unexpected[:_SHOW])}"
            + (f" and {len(unexpected) - _SHOW} more" if len(unexpected) > _SHOW else "") + ".",
            "Check quantization_config in config.json (MXFP4 checkpoints store *_blocks/*_scales).",
        )


def _mismatch(got: TensorInfo, want: TensorSpec) -> str:
    return (
        f"{got.file}: tensor {got.name!r} is {got.dtype}{list(got.shape)}, expected "
        f"{'/'.join(want.dtypes)}{list(want.shape)}"
    )


def inspect_checkpoint(path: PathLike) -> Checkpoint:
    """Validate a checkpoint directory from its headers only and return its tensor table."""
    root = Path(path)
    if not root.is_dir():
        raise _fail(root, "is not a directory.", "Pass a checkpoint directory with config.json.")
    if not (root / "config.json").is_file():
        raise _fail(root, "has no config.json, so it is not a model checkpoint.",
                    "Pass the directory that holds config.json and the *.safetensors shards, or "
                    "a hub repo id like 'openai/gpt-oss-20b'.")
    config = _load_json(root / "config.json", "config.json")
    spec = spec_from_config(config, os.fspath(root / "config.json"))
    files, weight_map = _shard_files(root)
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        for name, info in read_safetensors_header(file).items():
            if weight_map and name in weight_map and weight_map[name] != file.name:
                continue  # the index is authoritative about which copy counts
            if name in tensors:
                raise _fail(file, f"tensor {name!r} is also stored in {tensors[name].file}.")
            tensors[name] = info
    for name, fname in weight_map.items():
        if name not in tensors:
            raise _fail(
                root / fname,
                f"tensor {name!r} is listed in the index but absent from this shard's header.",
                "The index and the shards disagree; re-download both.",
            )
    _check_against_layout(spec, tensors, root)
    return Checkpoint(
        root=os.fspath(root),
        config=types.MappingProxyType(dict(config)),
        spec=spec,
        tensors=types.MappingProxyType(tensors),
        files=tuple(os.fspath(f) for f in files),
    )
