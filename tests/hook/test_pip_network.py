"""pip's own network options carry the chain: real pip (``PIP_91N_TEST_PIP``) in a venv with
the built wheel. The chain's requests travel over the connection pools of pip's session, so
``--proxy`` applies to every mirror as it does to pip's index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import PackageIndex, Venv
from tests.hook.helpers import chain_env, installed, log_lines, pip_install

pytestmark = pytest.mark.hook


def test_pip_proxy_option_carries_every_chain_request(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, recording_proxy: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, ["refused", None])
    proxy = recording_proxy(None)
    # the sealed environment bypasses its proxies for 127.0.0.1 (NO_PROXY): --proxy wins,
    # as it does for pip's own requests
    env = chain_env(sealed_env, [head, good])
    pip_install(shared_venv, env, tmp_path / "t", "--proxy", proxy.url, "app")
    assert installed(tmp_path / "t")["app"] == "2.0"
    seen = [path for path, _ in proxy.seen]
    assert any(path.startswith(good.simple_url + "app/") for path in seen)
    assert any(path.startswith(good.url) and path.endswith(".whl") for path in seen)
    # every request the healthy mirror answered came through the proxy
    assert good.stats().total_requests == sum(path.startswith(good.url) for path in seen)
    assert log_lines(env)
