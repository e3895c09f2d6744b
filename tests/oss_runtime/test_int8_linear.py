"""linear_weights="int8": the kernel, the rounding, the cached copy, the plan and the switches."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from oss_runtime import kernel, load_gpt_oss_20b, q8weights  # noqa: E402
from oss_runtime.checkpoint import read_safetensors_header  # noqa: E402
from oss_runtime.environment import Environment  # noqa: E402
from oss_runtime.errors import UnsupportedEnvironment  # noqa: E402

fused = kernel.load_kernel()
HAS_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None
needs_kernel = pytest.mark.skipif(
    fused is None and not HAS_COMPILER, reason=f"no C++ compiler here: {kernel.status()}"
)
CPU = Environment(cpu_count=2, total_ram=16 * 1024**3, available_ram=14 * 1024**3)


@pytest.fixture
def copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the int8 copies go in this test (the kernel stays in its own cache dir)."""
    folder = tmp_path / "int8-weights"
    monkeypatch.setattr(q8weights, "default_folder", lambda: folder)
    monkeypatch.delenv("OSS_RUNTIME_LINEAR_WEIGHTS", raising=False)
    return folder


def test_rounding_is_within_half_a_step_per_block() -> None:
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(33, 96, generator=g) * torch.logspace(-3, 1, 33)[:, None]).to(torch.bfloat16)
    w[3] = 0  # an all-zero row: scale 0, codes 0
    q, d = q8weights.quantize_rows(w)
    assert q.dtype == torch.int8 and d.dtype == torch.float16 and d.shape == (33, 3)
    assert int(q.abs().max()) == 127 and int(q[3].abs().max()) == 0
    back = q.float().reshape(33, 3, 32) * d.float()[..., None]
    err = (back - w.float().reshape(33, 3, 32)).abs()
    assert bool((err <= d.float()[..., None] * 0.5001 + 1e-12).all())
    with pytest.raises(ValueError, match="not finite"):
        q8weights.quantize_rows(torch.full((1, 32), float("inf")))


@needs_kernel
@pytest.mark.parametrize("isa", [0, 1, 2])
@pytest.mark.parametrize(("tokens", "rows", "cols"),
                         [(1, 203, 2880), (1, 9, 32), (3, 64, 4160), (5, 7, 96), (17, 33, 64)])
def test_int8_linear_matches_its_reference(isa: int, tokens: int, rows: int, cols: int) -> None:
    """4160 columns are 130 blocks: more than one chunk of combined scales, and a ragged end."""
    g = torch.Generator().manual_seed(rows + cols)
    q, d = q8weights.quantize_rows(torch.randn(rows, cols, generator=g) * 0.05)
    x = torch.randn(tokens, cols, generator=g)
    x[0, :32] = 0  # an all-zero input block
    bias = torch.randn(rows, generator=g)
    k = kernel.load_kernel(isa=isa)
    assert k is not None and k.has_int8_linear
    for b in (bias, None):
        ours = k.int8_linear(x, q, d, b)
        ref = kernel.reference_int8_linear(x, q, d, b)
        assert ours.shape == (tokens, rows)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_int8_linear_is_exact_on_integers() -> None:
    """Weights and inputs int8 holds exactly (one value per block at 127): no rounding at all."""
    g = torch.Generator().manual_seed(1)
    w = torch.randint(-126, 127, (16, 128), generator=g).float()
    w[:, ::32] = 127
    x = torch.randint(-126, 127, (2, 128), generator=g).float()
    x[:, ::32] = 127
    q, d = q8weights.quantize_rows(w)
    assert bool((d == 1).all()) and torch.equal(q.float(), w)
    assert fused is not None
    torch.testing.assert_close(fused.int8_linear(x, q, d), x @ w.T, rtol=0, atol=0)


@needs_kernel
def test_int8_linear_rejects_bad_arguments() -> None:
    assert fused is not None
    q, d = q8weights.quantize_rows(torch.randn(8, 64))
    with pytest.raises(RuntimeError, match="columns"):
        fused.int8_linear(torch.randn(1, 32), q, d)
    with pytest.raises(RuntimeError, match="float32"):
        fused.int8_linear(torch.randn(1, 64, dtype=torch.float64), q, d)
    with pytest.raises(RuntimeError, match="float16"):
        fused.int8_linear(torch.randn(1, 64), q, d.float())
    with pytest.raises(RuntimeError, match="multiple of 32"):
        fused.int8_linear(torch.randn(1, 48), torch.zeros(8, 48, dtype=torch.int8), d)
    with pytest.raises(RuntimeError, match="bias must be float32"):
        fused.int8_linear(torch.randn(1, 64), q, d, torch.zeros(7))


@needs_kernel
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loaded_model_runs_its_linear_layers_on_the_int8_copy(
    tiny_checkpoint: Path, copies: Path, dtype: str, capfd: pytest.CaptureFixture[str]
) -> None:
    exact = load_gpt_oss_20b(tiny_checkpoint, dtype=dtype, progress=False, environment=CPU)
    assert exact.plan.linear_weights == "exact"
    assert any(line.startswith("linear        exact") for line in exact.plan.describe())
    rt = load_gpt_oss_20b(tiny_checkpoint, dtype=dtype, progress=False, environment=CPU,
                          linear_weights="int8")
    assert rt.plan.linear_weights == "int8" and not rt.plan.warnings
    assert "Q8_0" in rt.plan.reasons["linear"]
    [copy] = [p for p in copies.iterdir() if p.suffix == ".safetensors"]
    assert "writing the int8 copy" in capfd.readouterr().err
    model = rt.model
    names = [n for n, m in model.named_modules() if getattr(m, "_oss_int8", False)]
    assert len(names) == 4 * len(model.model.layers) + 1 and "lm_head" in names
    # each layer computes what the reference says for its mapped int8 weights
    layer = model.model.layers[1].self_attn.q_proj
    table = read_safetensors_header(copy)
    q = model._oss_int8_files.view(table["model.layers.1.self_attn.q_proj.q"])
    d = model._oss_int8_files.view(table["model.layers.1.self_attn.q_proj.d"])
    assert torch.equal(q, q8weights.quantize_rows(layer.weight)[0])
    x = torch.randn(3, layer.in_features).to(layer.weight.dtype)
    with torch.inference_mode():
        want = kernel.reference_int8_linear(x.float(), q, d, layer.bias.float()).to(x.dtype)
        torch.testing.assert_close(layer(x), want, rtol=1e-2, atol=1e-3)
        ids = torch.tensor([[1, 5, 9, 200, 300, 17]])
        a, b = exact.model(input_ids=ids).logits.float(), model(input_ids=ids).logits.float()
    diff = (a - b).abs()
    assert 0 < float(diff.mean()) < 0.05 * float(a.std())
    assert q8weights.describe_copies().startswith(f"1 in {copies} (")
    # the copy is reused: nothing is written the second time
    stamp = copy.stat().st_mtime_ns
    again = load_gpt_oss_20b(tiny_checkpoint, dtype=dtype, progress=False, environment=CPU,
                             linear_weights="int8")
    assert copy.stat().st_mtime_ns == stamp and "writing" not in capfd.readouterr().err
    with torch.inference_mode():
        assert torch.equal(again.model(input_ids=ids).logits.float(), b)


@needs_kernel
def test_a_cut_off_copy_is_written_again(tiny_checkpoint: Path, copies: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    rt = load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="int8")
    [copy] = [p for p in copies.iterdir() if p.suffix == ".safetensors"]
    size = copy.stat().st_size
    del rt
    gc.collect()
    with open(copy, "r+b") as f:
        f.truncate(size - 100)
    capfd.readouterr()
    load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="int8")
    err = capfd.readouterr().err
    assert "does not match" in err and "writing the int8 copy" in err
    assert copy.stat().st_size == size
    assert [p.name for p in copies.iterdir() if p.suffix == ".safetensors"] == [copy.name]


@needs_kernel
def test_a_changed_checkpoint_gets_a_new_copy(make_checkpoint: Callable[..., Path],
                                              copies: Path) -> None:
    ck = make_checkpoint("changing", shards=1)
    load_gpt_oss_20b(ck, progress=False, environment=CPU, linear_weights="int8")
    shard = next(ck.glob("*.safetensors"))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    load_gpt_oss_20b(ck, progress=False, environment=CPU, linear_weights="int8")
    assert len([p for p in copies.iterdir() if p.suffix == ".safetensors"]) == 2


@needs_kernel
def test_an_unwritable_cache_dir_is_a_clear_error(tiny_checkpoint: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(q8weights, "default_folder", lambda: blocker / "int8-weights")
    with pytest.raises(UnsupportedEnvironment, match=r"OSS_RUNTIME_CACHE_DIR.*linear_weights='exact'"):
        load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="int8")
    assert blocker.read_text() == "not a directory"


@needs_kernel
def test_layers_whose_width_is_not_a_multiple_of_32_stay_exact(
    make_checkpoint: Callable[..., Path], copies: Path
) -> None:
    ck = make_checkpoint("narrow", head_dim=12)  # o_proj takes 4 x 12 = 48 inputs
    rt = load_gpt_oss_20b(ck, progress=False, environment=CPU, linear_weights="int8")
    attn = rt.model.model.layers[0].self_attn
    assert attn.q_proj._oss_int8 and not getattr(attn.o_proj, "_oss_int8", False)
    with torch.inference_mode():
        assert torch.isfinite(rt.model(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_the_default_folder_follows_the_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("OSS_RUNTIME_CACHE_DIR", str(tmp_path))
    assert q8weights.default_folder() == tmp_path / "int8-weights"
    monkeypatch.delenv("OSS_RUNTIME_CACHE_DIR")
    assert q8weights.default_folder().name == "int8-weights"
    assert q8weights.default_folder().parent == kernel.cache_dir().parent


def test_without_the_kernel_int8_is_refused_aloud(tiny_checkpoint: Path, copies: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_RUNTIME_LINEAR_WEIGHTS", "int8")
    rt = load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, kernel=False)
    assert rt.plan.linear_weights == "exact"
    assert any("linear_weights='int8'" in w and "fused CPU kernel" in w for w in rt.plan.warnings)
    assert not copies.exists() and q8weights.describe_copies().startswith("none (")
    monkeypatch.setenv("OSS_RUNTIME_LINEAR_WEIGHTS", "q4")
    with pytest.raises(ValueError, match=r"OSS_RUNTIME_LINEAR_WEIGHTS must be 'exact'.*'q4'"):
        load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU)
    with pytest.raises(ValueError, match="linear_weights must be"):
        load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="fp8")


@needs_kernel
def test_what_a_killed_writer_left_is_removed(tiny_checkpoint: Path, copies: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="int8")
    [copy] = [p for p in copies.iterdir() if p.suffix == ".safetensors"]
    orphan = copy.with_name(f"{copy.name}.999999.tmp")
    orphan.write_bytes(b"half a copy")
    copy.unlink()
    load_gpt_oss_20b(tiny_checkpoint, progress=False, environment=CPU, linear_weights="int8")
    assert "left by an interrupted write" in capfd.readouterr().err
    assert not orphan.exists() and copy.exists()


@needs_kernel
def test_one_process_writes_a_copy_while_another_waits(tiny_checkpoint: Path, copies: Path) -> None:
    """Two fresh processes at once: one writes, the other waits for it and writes nothing."""
    import subprocess
    import sys

    script = (f"import pathlib, sys; from oss_runtime import q8weights, load_gpt_oss_20b; "
              f"q8weights.default_folder = lambda: pathlib.Path({str(copies)!r}); "
              f"load_gpt_oss_20b({str(tiny_checkpoint)!r}, progress=False, "
              "linear_weights='int8')")
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert sum("writing the int8 copy" in e for e in errs) == 1, errs
    assert len([p for p in copies.iterdir() if p.suffix == ".safetensors"]) == 1
