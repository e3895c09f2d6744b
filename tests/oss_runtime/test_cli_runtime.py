"""oss-runtime doctor / plan / chat / bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the runtime commands need torch")

from _oss_tokenizer import write_tokenizer

from oss_runtime.cli import main
from oss_runtime.synth import synth_config, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_checkpoint(tmp_path_factory.mktemp("cli") / "ck", synth_config("tiny"), shards=2)
    return write_tokenizer(root)


def test_doctor(ck: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "native mxfp4" in out and "gpt-oss-20b" in out and "peak memory" in out
    assert "cpu kernel" in out and "compute " in out  # which path runs the experts, and why
    assert "int8 copies" in out  # where the int8 copies of linear weights are kept, and their size
    assert main(["doctor", str(ck), "--dtype", "float32"]) == 0
    assert "float32" in capsys.readouterr().out
    assert main(["doctor", "--quantization", "mxfp4", "--device", "cuda:0"]) == (
        0 if _cuda() else 1
    )


def test_plan_and_doctor_never_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://u:CANARYpw91n@127.0.0.1:9")
    for command in ("plan", "doctor"):
        assert main([command, "acme/not-cached"]) == 1
        err = capsys.readouterr().err
        assert "acme/not-cached is not (completely) in the Hugging Face cache" in err
        assert "never download" in err
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "http://u:***@127.0.0.1:9 -> " in out and "CANARYpw91n" not in out


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_plan_from_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "big"), "--shape", "20b-sparse"]) == 0
    capsys.readouterr()
    assert main(["plan", str(tmp_path / "big"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "459 tensors, 13.76 GB" in out and "| 8 GB | mapped, mxfp4 |" in out
    assert "| 16 GB |" in out and "| 32 GB |" in out and "refused" in out
    assert main(["plan", str(tmp_path / "big"), "--max-memory", "cpu=1GB"]) == 1
    assert "max_memory" in capsys.readouterr().err
    assert main(["plan", str(tmp_path / "nothing-here")]) == 1


def test_bench_json(ck: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", str(ck), "--prompt-tokens", "8", "--new-tokens", "3", "--json", "--quiet"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "mapped" and result["decode_tokens"] == 3
    assert result["compute"] in ("fused C++ kernel", "pure torch") and result["compute_reason"]
    assert (
        result["decode_tok_s"] > 0
        and result["peak_rss"] > 0
        and result["first_token_s"] >= result["load_s"]
    )
    assert main(["bench", str(ck), "--prompt-tokens", "4", "--new-tokens", "1", "--quiet"]) == 0
    assert "call to first token" in capsys.readouterr().out


def test_chat_with_piped_stdin(ck: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               HF_HUB_OFFLINE="1")
    args = [
        sys.executable,
        "-m",
        "oss_runtime",
        "chat",
        str(ck),
        "--quiet",
        "--max-new-tokens",
        "5",
    ]
    proc = subprocess.run(args, input="hello\n\n/reset\nhello\n/exit\nnever\n", env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from oss_runtime import load_gpt_oss_20b

    reply = load_gpt_oss_20b(ck, progress=False).generate("hello", max_new_tokens=5)
    # two replies (after /reset the same question gets the same greedy answer); /exit stops
    assert proc.stdout == f"{reply}\n{reply}\n"


def test_chat_checks_stdin_and_the_tokenizer_before_loading(tmp_path: Path) -> None:
    no_tokenizer = write_checkpoint(tmp_path / "bare", synth_config("tiny"), shards=1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               HF_HUB_OFFLINE="1", OSS_RUNTIME_CACHE_DIR=str(tmp_path / "kernels"))
    chat = [sys.executable, "-m", "oss_runtime", "chat", "--quiet"]
    empty = subprocess.run([*chat, str(no_tokenizer)], input="", env=env, capture_output=True,
                           text=True, timeout=60)
    assert empty.returncode == 2 and "read nothing from stdin" in empty.stderr
    bare = subprocess.run([*chat, str(no_tokenizer)], input="hello\n", env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "has no tokenizer" in bare.stderr, bare.stderr
    assert not (tmp_path / "kernels").exists()  # nothing was loaded (no kernel build either)


@pytest.mark.parametrize(("flag", "variable", "exact", "line"), [
    ("--expert-activations", "OSS_RUNTIME_EXPERT_ACTIVATIONS", "float32", "expert inputs "),
    ("--linear-weights", "OSS_RUNTIME_LINEAR_WEIGHTS", "exact", "linear        "),
])
def test_int8_options_and_switches(ck: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], flag: str, variable: str,
                                   exact: str, line: str) -> None:
    for name in (variable, "OSS_RUNTIME_PREFAULT", "OSS_RUNTIME_KERNEL", "OSS_RUNTIME_BF16_GEMV"):
        monkeypatch.delenv(name, raising=False)
    option = flag.removeprefix("--").replace("-", "_")
    assert main(["plan", str(ck)]) == 0
    assert f"{line}{exact}  (" in capsys.readouterr().out
    monkeypatch.setenv("OSS_RUNTIME_KERNEL", "0")  # no kernel: int8 cannot be honoured, said so
    assert main(["plan", str(ck), flag, "int8"]) == 0
    out = capsys.readouterr().out
    assert f"{line}{exact}" in out and f"warning: {option}='int8' was asked" in out
    with pytest.raises(SystemExit):
        main(["plan", str(ck), flag, "q8"])
    assert "invalid choice: 'q8'" in capsys.readouterr().err
    monkeypatch.setenv(variable, "int4")
    assert main(["doctor"]) == 1
    out, err = capsys.readouterr()
    assert f"switches      OSS_RUNTIME_KERNEL=0, {variable}=int4" in out
    assert err.count("\n") == 1 and f"{variable} must be '{exact}'" in err
    assert main(["plan", str(ck)]) == 1
    assert f"{variable} must be '{exact}'" in capsys.readouterr().err
