"""Fixtures for the pip-integration tests (helpers: ``tests.hook.helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.hook.helpers import RecordingProxy


@pytest.fixture
def recording_proxy() -> Iterator[Callable[[str | None], RecordingProxy]]:
    made: list[RecordingProxy] = []

    def make(upstream: str | None) -> RecordingProxy:
        proxy = RecordingProxy(upstream)
        made.append(proxy)
        return proxy

    yield make
    for p in made:
        p.close()
