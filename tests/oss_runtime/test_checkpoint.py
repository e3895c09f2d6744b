"""Header-only checkpoint inspection: good checkpoints pass, each hostile file gets its error."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from _oss_helpers import read_header, write_header

from oss_runtime.checkpoint import INDEX_NAME, inspect_checkpoint, read_safetensors_header
from oss_runtime.errors import CheckpointError, OssRuntimeError

L0 = "model.layers.0."


def shard_of(root: Path, tensor: str) -> Path:
    index = json.loads((root / INDEX_NAME).read_text())
    return root / index["weight_map"][tensor]


def test_good_checkpoint_table(tiny_checkpoint: Path) -> None:
    ck = inspect_checkpoint(tiny_checkpoint)
    assert ck.spec.num_local_experts == 4 and ck.spec.quant_method == "mxfp4"
    assert len(ck.files) == 3
    info = ck.tensors[L0 + "mlp.experts.gate_up_proj_blocks"]
    assert info.dtype == "U8" and info.shape == (4, 128, 2, 16)
    assert info.nbytes == 4 * 128 * 2 * 16
    with open(info.file, "rb") as f:  # absolute offsets point at the data
        (n,) = struct.unpack("<Q", f.read(8))
        assert info.offset >= 8 + n
    with pytest.raises(TypeError):
        ck.tensors["x"] = info  # type: ignore[index]


def test_without_index(make_checkpoint) -> None:
    root = make_checkpoint(shards=1, index=False)
    assert not (root / INDEX_NAME).exists() and (root / "model.safetensors").exists()
    assert len(inspect_checkpoint(root).tensors) == 1 + 2 * 19 + 2


def test_20b_sparse_inventory(make_checkpoint) -> None:
    root = make_checkpoint(shape="20b", sparse=True, shards=3)
    ck = inspect_checkpoint(root)
    assert len(ck.tensors) == 459
    assert ck.total_bytes == 13_761_264_768
    assert ck.spec.expert_bytes == 13_236_480
    used = sum(os.stat(f).st_blocks * 512 for f in ck.files)
    assert used < 50_000_000  # holes cost no disk


def test_missing_shard(tiny_checkpoint: Path, tmp_path: Path) -> None:
    root = tmp_path / "ck"
    root.mkdir()
    for f in tiny_checkpoint.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    victim = shard_of(root, L0 + "self_attn.sinks")
    victim.unlink()
    with pytest.raises(CheckpointError, match=victim.name) as err:
        inspect_checkpoint(root)
    assert "missing" in str(err.value)


def test_truncated_shard(make_checkpoint) -> None:
    root = make_checkpoint()
    victim = shard_of(root, L0 + "mlp.experts.down_proj_blocks")
    size = victim.stat().st_size
    os.truncate(victim, size - 100)
    with pytest.raises(CheckpointError, match="truncated") as err:
        inspect_checkpoint(root)
    assert victim.name in str(err.value)


@pytest.mark.parametrize("cut", [0, 5, 30])
def test_header_cut_short(make_checkpoint, cut: int) -> None:
    root = make_checkpoint()
    victim = shard_of(root, L0 + "self_attn.sinks")
    os.truncate(victim, cut)
    with pytest.raises(CheckpointError, match=victim.name):
        inspect_checkpoint(root)


def test_header_lies_about_size(make_checkpoint) -> None:
    root = make_checkpoint()
    name = L0 + "mlp.router.weight"
    victim = shard_of(root, name)
    header, data = read_header(victim)
    header[name]["shape"] = [4, 128]  # 2x the bytes its offsets span
    write_header(victim, header, data)
    with pytest.raises(CheckpointError, match="lies about its size") as err:
        inspect_checkpoint(root)
    assert name in str(err.value) and victim.name in str(err.value)


def test_huge_claim_fails_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "evil.safetensors"
    n = 10**12
    write_header(path, {"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}, b"")
    with pytest.raises(CheckpointError, match="truncated"):
        read_safetensors_header(path)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"dtype": "Q9"}, "unknown dtype"),
        ({"shape": [-1]}, "non-negative"),
        ({"data_offsets": [5]}, "malformed"),
    ],
)
def test_malformed_entries(tmp_path: Path, patch: dict, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **patch}
    write_header(path, {"t": entry}, b"\0" * 8)
    with pytest.raises(CheckpointError, match=message):
        read_safetensors_header(path)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_safetensors_header(path)


def test_overlapping_tensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    write_header(path, header, b"\0" * 12)
    with pytest.raises(CheckpointError, match="overlap"):
        read_safetensors_header(path)


def test_wrong_shape(make_checkpoint) -> None:
    root = make_checkpoint()
    name = L0 + "self_attn.sinks"
    victim = shard_of(root, name)
    header, data = read_header(victim)
    header[name]["shape"] = [2, 2]  # same bytes, wrong shape
    write_header(victim, header, data)
    with pytest.raises(CheckpointError, match=r"expected BF16/F16/F32\[4\]") as err:
        inspect_checkpoint(root)
    assert name in str(err.value) and victim.name in str(err.value)


def test_wrong_dtype(make_checkpoint) -> None:
    root = make_checkpoint()
    name = L0 + "mlp.experts.gate_up_proj_scales"
    victim = shard_of(root, name)
    header, data = read_header(victim)
    header[name]["dtype"] = "I8"
    write_header(victim, header, data)
    with pytest.raises(CheckpointError, match=r"is I8\[4, 128, 2\], expected U8") as err:
        inspect_checkpoint(root)
    assert victim.name in str(err.value)


def test_blocks_without_scales(make_checkpoint) -> None:
    root = make_checkpoint(shards=1, index=False)
    victim = root / "model.safetensors"
    header, data = read_header(victim)
    del header[L0 + "mlp.experts.down_proj_scales"]
    write_header(victim, header, data)
    with pytest.raises(CheckpointError, match="has no MXFP4 scales") as err:
        inspect_checkpoint(root)
    assert "down_proj_blocks" in str(err.value) and victim.name in str(err.value)


def test_missing_tensors_listed_sorted(make_checkpoint) -> None:
    root = make_checkpoint(shards=1, index=False)
    victim = root / "model.safetensors"
    header, data = read_header(victim)
    del header["lm_head.weight"], header[L0 + "self_attn.sinks"]
    write_header(victim, header, data)
    with pytest.raises(
        CheckpointError, match=r"2 tensor\(s\) missing.*lm_head.weight, model.layers.0"
    ):
        inspect_checkpoint(root)


def test_index_lists_absent_tensor(make_checkpoint) -> None:
    root = make_checkpoint()
    index = json.loads((root / INDEX_NAME).read_text())
    index["weight_map"]["model.layers.0.mlp.router.weight"] = index["weight_map"]["lm_head.weight"]
    (root / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="absent from this shard"):
        inspect_checkpoint(root)


def test_unknown_quant_method(make_checkpoint) -> None:
    root = make_checkpoint()
    config = json.loads((root / "config.json").read_text())
    config["quantization_config"]["quant_method"] = "gptq"
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown quant method 'gptq'") as err:
        inspect_checkpoint(root)
    assert "config.json" in str(err.value)


def test_dense_config_with_mxfp4_tensors(make_checkpoint) -> None:
    root = make_checkpoint()
    config = json.loads((root / "config.json").read_text())
    del config["quantization_config"]
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing from every shard"):
        inspect_checkpoint(root)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"model_type": "llama"}, "not 'gpt_oss'"),
        ({"hidden_size": None}, "hidden_size"),
        ({"num_experts_per_tok": 9}, "exceeds"),
        ({"layer_types": ["full_attention"]}, "layer_types"),
    ],
)
def test_bad_config(make_checkpoint, edit: dict, message: str) -> None:
    root = make_checkpoint()
    config = json.loads((root / "config.json").read_text())
    config.update(edit)
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        inspect_checkpoint(root)


def test_missing_config_and_not_a_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        inspect_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a directory"):
        inspect_checkpoint(tmp_path / "nope")


def test_error_tree() -> None:
    assert issubclass(CheckpointError, OssRuntimeError) and issubclass(CheckpointError, ValueError)


def test_a_wrong_hidden_size_is_summarized(make_checkpoint) -> None:
    """Every tensor differs then: the error names a few and counts the rest."""
    root = make_checkpoint()
    config = json.loads((root / "config.json").read_text())
    config["hidden_size"] *= 2
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        inspect_checkpoint(root)
    text = str(err.value)
    assert "differ from what config.json describes" in text and "more tensors" in text
    assert text.count("tensor '") == 3 and len(text) < 1200 and "hidden_size" in text
