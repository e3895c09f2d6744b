"""Memory behaviour: a full-width multi-layer checkpoint does not grow anonymous RSS by its experts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="writing and running checkpoints needs torch")

from oss_runtime.checkpoint import inspect_checkpoint
from oss_runtime.synth import synth_config, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from oss_runtime.bind import load_model

    def rss():
        out = {}
        for line in open("/proc/self/status"):
            if line.startswith(("RssAnon", "RssFile")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
        return out

    load_model(sys.argv[2], dtype="bfloat16")  # warm-up: one-time import and init costs
    before = rss()
    model = load_model(sys.argv[1], dtype="bfloat16")
    loaded = rss()
    with torch.no_grad():
        out = model.generate(torch.arange(3, 9)[None], max_new_tokens=3, min_new_tokens=3, do_sample=False)
    after = rss()
    print(json.dumps({"before": before, "loaded": loaded, "after": after, "tokens": out.shape[1]}))
    """
)


def test_full_width_layers_stay_out_of_anonymous_memory(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    root = write_checkpoint(
        tmp_path / "wide", synth_config("wide", layers=2), sparse=True, shards=2
    )
    ck = inspect_checkpoint(root)
    expert_bytes = ck.expert_bytes()
    assert expert_bytes > 800_000_000
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(tiny_checkpoint)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tokens"] == 9
    grew = report["after"]["RssAnon"] - report["before"]["RssAnon"]
    # non-expert weights are bf16 views of the files too, so even they add no anonymous memory
    non_expert = ck.total_bytes - expert_bytes
    assert grew < expert_bytes / 4, report
    assert grew < non_expert / 4, report


SCRIPT_20B = textwrap.dedent(
    """
    import json, sys, time, torch
    t0 = time.perf_counter()
    from oss_runtime.bind import load_model
    model = load_model(sys.argv[1], dtype="bfloat16")
    with torch.no_grad():
        out = model.generate(torch.tensor([[200006, 17, 3000]]), max_new_tokens=2, min_new_tokens=2,
                             do_sample=False)
    status = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon"):
            status[key] = int(value.split()[0]) * 1024
    print(json.dumps({"tokens": out.shape[1], "seconds": time.perf_counter() - t0, **status}))
    """
)


def test_20b_shape_sparse_checkpoint_decodes_in_little_memory(tmp_path: Path) -> None:
    """The full 20B shape (13.76 GB of tensors, as holes): load and decode in < 6 GB peak RSS."""
    root = write_checkpoint(tmp_path / "20b", synth_config("20b"), sparse=True, shards=3)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT_20B, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tokens"] == 5
    assert report["VmHWM"] < 6e9, report  # peak resident, file-backed pages included
    assert report["RssAnon"] < 1e9, report  # weights are not copied into anonymous memory
