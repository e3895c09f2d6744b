"""`oss_runtime.benchmark.run_benchmark`: steady-state decode and extra prefills are timed apart."""

from __future__ import annotations

import os
import time
from pathlib import Path

from oss_runtime.benchmark import process_age, run_benchmark


def test_steady_and_extra_prefills(tiny_checkpoint: Path) -> None:
    r = run_benchmark(tiny_checkpoint, prompt_tokens=4, new_tokens=2, steady_tokens=3,
                      extra_prefills=(8, 5), load_kwargs={"progress": False})
    assert r["steady_tokens"] == 3 and r["steady_tok_s"] > 0
    assert set(r["extra_prefill_tok_s"]) == {"8", "5"}
    assert all(v > 0 for v in r["extra_prefill_tok_s"].values())
    assert r["first_token_since_start_s"] >= r["first_token_s"]


def test_without_steady_tokens(tiny_checkpoint: Path) -> None:
    r = run_benchmark(tiny_checkpoint, prompt_tokens=4, new_tokens=1,
                      load_kwargs={"progress": False})
    assert r["steady_tok_s"] is None and r["extra_prefill_tok_s"] == {}


def test_process_age_counts_from_process_start() -> None:
    age = process_age()
    assert age is not None and 0 < age < time.time()
    if os.path.exists("/proc/self/stat"):  # pytest has run for a while already
        assert age >= 0.1
