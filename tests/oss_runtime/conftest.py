"""Fixtures for oss_runtime tests: synthetic checkpoints written into tmp dirs (no network)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# helper modules (_oss_*.py) beside this file import under any pytest import mode
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``make_checkpoint(name="ck", shape="tiny", shards=2, index=True, **config_overrides)``."""
    from oss_runtime.synth import synth_config, write_checkpoint

    def make(name: str = "ck", shape: str = "tiny", *, shards: int = 2, index: bool = True,
             sparse: bool = False, seed: int = 0, **kw: Any) -> Path:
        return write_checkpoint(
            tmp_path / name,
            synth_config(shape, **kw),
            shards=shards,
            index=index,
            sparse=sparse,
            seed=seed,
        )

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oss_runtime.synth import synth_config, write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", synth_config("tiny"), shards=3)
