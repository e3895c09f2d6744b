"""Synthetic checkpoints (real names and layout) and the oss-runtime CLI; the package imports light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="writing and running checkpoints needs torch")

from oss_runtime.checkpoint import inspect_checkpoint
from oss_runtime.cli import main
from oss_runtime.synth import synth_config, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_configs() -> None:
    c = synth_config("20b")
    assert (c["num_hidden_layers"], c["hidden_size"], c["num_local_experts"], c["vocab_size"]) == (
        24,
        2880,
        32,
        201088,
    )
    assert c["layer_types"][:2] == ["sliding_attention", "full_attention"]
    assert c["quantization_config"]["quant_method"] == "mxfp4"
    w = synth_config("wide")
    assert w["num_hidden_layers"] == 4 and w["hidden_size"] == 2880
    assert "quantization_config" not in synth_config("tiny", dense_experts=True)
    with pytest.raises(ValueError, match="unknown shape"):
        synth_config("huge")


def test_deterministic_and_loadable_by_safetensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    a = write_checkpoint(tmp_path / "a", synth_config("tiny"), shards=2, seed=3)
    b = write_checkpoint(tmp_path / "b", synth_config("tiny"), shards=2, seed=3)
    for fa, fb in zip(sorted(a.glob("*.safetensors")), sorted(b.glob("*.safetensors"))):
        assert fa.read_bytes() == fb.read_bytes()
    ck = inspect_checkpoint(a)
    for file in ck.files:  # the real safetensors library reads our files
        with safe_open(file, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118
                t = f.get_tensor(name)
                assert tuple(t.shape) == ck.tensors[name].shape
    index = json.loads((a / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] > ck.total_bytes


def test_wide_sparse_full_width(tmp_path: Path) -> None:
    root = write_checkpoint(tmp_path / "w", synth_config("wide", layers=2), sparse=True, shards=2)
    ck = inspect_checkpoint(root)
    assert ck.tensors["model.layers.1.mlp.experts.gate_up_proj_blocks"].shape == (32, 5760, 90, 16)
    assert ck.expert_bytes() == 2 * 32 * 13_236_480


def test_cli_synth_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "s"), "--shape", "20b-sparse"]) == 0
    out = capsys.readouterr().out
    assert "459 tensors in 3 shard(s), 13.76 GB" in out and "sparse" in out
    used = sum(os.stat(f).st_blocks * 512 for f in (tmp_path / "s").iterdir())
    assert used < 50_000_000
    assert main(["synth", str(tmp_path / "t"), "--shape", "tiny", "--layers", "3", "--experts", "6",
                 "--top-k", "2", "--shards", "1", "--no-index"]) == 0
    assert (tmp_path / "t" / "model.safetensors").exists()
    assert main(["inspect", str(tmp_path / "t")]) == 0
    assert "6 per layer, top-2, mxfp4" in capsys.readouterr().out


def test_synth_never_overwrites_a_checkpoint_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    real = tmp_path / "real"
    assert main(["synth", str(real), "--shape", "tiny", "--seed", "1"]) == 0
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    capsys.readouterr()
    assert main(["synth", str(real), "--shape", "tiny", "--seed", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oss-runtime: error: ") and "is not empty" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before  # untouched
    mapped = (real / sorted(n for n in before if n.endswith(".safetensors"))[0]).open("rb")
    import mmap

    view = mmap.mmap(mapped.fileno(), 0, access=mmap.ACCESS_READ)
    assert main(["synth", str(real), "--shape", "tiny", "--seed", "2", "--overwrite"]) == 0
    assert view[-64:] == before[Path(mapped.name).name][-64:]  # the old mapping still reads
    view.close()
    mapped.close()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    capsys.readouterr()
    assert main(["synth", str(a_file)]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err


def test_cli_reports_checkpoint_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oss-runtime: error:") and "has no config.json" in err


def test_python_dash_m(tmp_path: Path) -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "oss_runtime", "synth", str(tmp_path / "m"), "--shape", "tiny"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout


def test_import_is_light() -> None:
    script = (
        "import sys, oss_runtime\n"
        "from oss_runtime import checkpoint, spec, layout, errors, cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'httpx', 'numpy', 'safetensors') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(oss_runtime.inspect_checkpoint)\n"
        "assert 'torch' not in sys.modules\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_lazy_names() -> None:
    import oss_runtime

    assert set(oss_runtime.__all__) <= set(dir(oss_runtime))
    with pytest.raises(AttributeError):
        oss_runtime.nope  # noqa: B018
