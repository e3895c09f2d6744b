"""Fixtures shared by the harness's own tests; each test module defines its ``index``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import DistFile, MirrorServer, PackageIndex


@pytest.fixture(scope="module")
def blob(index: PackageIndex) -> DistFile:
    dist = index.get("blob-1.0-py3-none-any.whl")
    assert dist is not None
    return dist


@pytest.fixture
def mirror(mirror_factory: Callable[..., MirrorServer], index: PackageIndex) -> MirrorServer:
    return mirror_factory(index)
