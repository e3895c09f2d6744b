"""Hash agreement (``PIP_91N_VERIFY``) through ``pip-91n serve``: every file passes
``FileServer.release_file``, so a mirror that lists another ``lib-c 2.0`` wheel (with a
matching sha256 on its own page) cannot hand it to any client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import TAMPERED
from tests.harness import MirrorFactory, PackageIndex
from tests.serve.conftest import UV, ServeFactory, uv_install


@pytest.mark.skipif(not UV.exists(), reason="the uv binary is not installed")
def test_the_majority_wins_for_uv(serve: ServeFactory, mirror_factory: MirrorFactory,
                                  tampered_tree: tuple[PackageIndex, PackageIndex], tmp_path: Path,
                                  sealed_env: dict[str, str]) -> None:
    real, evil = tampered_tree
    liar = mirror_factory(evil, name="liar")
    served = serve([liar, mirror_factory(real, name="good1"), mirror_factory(real, name="good2")])
    proc = uv_install(tmp_path, sealed_env, served.url, "app")
    assert proc.returncode == 0, proc.stderr
    site = next((tmp_path / "uv-venv").glob("lib/python*/site-packages"))
    assert (site / "lib_c").is_dir() and not (site / "lib_c" / "backdoor.py").exists()
    assert all(TAMPERED not in path for path in liar.stats().requests)


def test_a_split_is_refused_with_both_hashes(serve: ServeFactory,
                                             mirror_factory: MirrorFactory,
                                             tampered_tree: tuple[PackageIndex, PackageIndex]
                                             ) -> None:
    real, evil = tampered_tree
    served = serve([mirror_factory(evil, name="liar"), mirror_factory(real, name="good")])
    page = httpx.get(served.url + "lib-c/", headers={"Accept": "application/vnd.pypi.simple."
                                                                 "v1+json"}).json()
    entry = next(f for f in page["files"] if f["filename"] == TAMPERED)
    r = httpx.get(httpx.URL(served.url + "lib-c/").join(entry["url"]))
    assert r.status_code == 502
    for index in tampered_tree:
        found = index.get(TAMPERED)
        assert found is not None and found.sha256 in r.text
    assert "hash not confirmed" in served.wait_log("hash not confirmed")
