"""Hash agreement with real pip (``PIP_91N_TEST_PIP``): a mirror that serves another
``lib-c-2.0`` wheel, with a matching sha256 on its own page, cannot slip it in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TAMPERED
from tests.harness import PackageIndex, Venv, tree_index
from tests.hook.helpers import chain_env, installed, pip_install

pytestmark = pytest.mark.hook

NEWEST = {"app": "2.0", "lib-a": "2.0", "lib-b": "2.0", "lib-c": "2.0"}


def _sha(index: PackageIndex) -> str:
    found = index.get(TAMPERED)
    assert found is not None
    return found.sha256


def test_three_mirrors_the_majority_wins_and_the_liar_is_named(
    shared_venv: Venv, tampered_tree: tuple[PackageIndex, PackageIndex], mirror_factory: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    real, evil = tampered_tree
    liar = mirror_factory(evil, name="liar")
    good = [mirror_factory(real, name=f"good{i}") for i in (1, 2)]
    env = chain_env(sealed_env, [liar, *good])
    secret = liar.simple_url.replace("http://", "http://user:CANARY-pw@", 1)
    env["PIP_91N_MIRRORS"] = env["PIP_91N_MIRRORS"].replace(liar.simple_url, secret)
    _, out, err = pip_install(shared_venv, env, tmp_path / "t", "app")
    assert "CANARY-pw" not in out + err
    assert installed(tmp_path / "t") == NEWEST
    assert not (tmp_path / "t" / "lib_c" / "backdoor.py").exists()
    named = [ln for ln in err.splitlines() if ln.startswith("pip-91n:") and TAMPERED in ln]
    assert len(named) == 1, err
    assert liar.simple_url.split("//")[1].split("/")[0] in named[0]
    assert _sha(evil) in named[0] and _sha(real) in named[0]
    assert all(TAMPERED not in path for path in liar.stats().requests)


def test_two_mirrors_that_disagree_stop_that_file_with_both_hashes(
    shared_venv: Venv, tampered_tree: tuple[PackageIndex, PackageIndex], mirror_factory: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    real, evil = tampered_tree
    env = chain_env(sealed_env, [mirror_factory(evil), mirror_factory(real)])
    code, _, err = pip_install(shared_venv, env, tmp_path / "t", "app", check=False)
    assert code != 0
    assert "disagree" in err and _sha(evil) in err and _sha(real) in err, err
    assert not (tmp_path / "t" / "lib_c").exists()
    assert "Traceback" not in err


def test_the_users_hash_pin_settles_a_split_and_wins(
    shared_venv: Venv, tampered_tree: tuple[PackageIndex, PackageIndex], mirror_factory: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    real, evil = tampered_tree
    env = chain_env(sealed_env, [mirror_factory(evil), mirror_factory(real)])
    req = tmp_path / "requirements.txt"
    req.write_text(f"lib-c==2.0 --hash=sha256:{_sha(real)}\n")
    pip_install(shared_venv, env, tmp_path / "t", "--require-hashes", "-r", str(req))
    assert installed(tmp_path / "t") == {"lib-c": "2.0"}
    assert not (tmp_path / "t" / "lib_c" / "backdoor.py").exists()
    body = (tmp_path / "t" / "lib_c-2.0.dist-info" / "RECORD").read_text()
    assert "backdoor" not in body
    # a pin no source lists: pip's own hash check refuses whatever comes (pins win)
    req.write_text(f"lib-c==2.0 --hash=sha256:{hashlib.sha256(b'other').hexdigest()}\n")
    code, _, _ = pip_install(shared_venv, env, tmp_path / "u", "--require-hashes", "-r",
                               str(req), check=False)
    assert code != 0 and not (tmp_path / "u" / "lib_c").exists()


def test_strict_refuses_a_file_no_second_source_lists_and_quorum_warns_once(
    shared_venv: Venv, mirror_factory: Any, sealed_env: dict[str, str], tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fresh = tree_index(tmp_path_factory.mktemp("fresh"))
    lagging = PackageIndex(f.path for f in fresh if f.version != "2.0" or f.project != "lib-c")
    mirrors = [mirror_factory(fresh), mirror_factory(lagging)]
    env = chain_env(sealed_env, mirrors, PIP_91N_VERIFY="strict")
    code, _, err = pip_install(shared_venv, env, tmp_path / "s", "lib-c==2.0", check=False)
    assert code != 0 and "PIP_91N_VERIFY=strict refuses" in err, err
    env = chain_env(sealed_env, mirrors)
    _, _, err = pip_install(shared_venv, env, tmp_path / "q", "app")
    assert installed(tmp_path / "q") == NEWEST
    assert err.count("no second source confirmed") == 1, err
    assert "lists" not in err  # a lagging mirror is nobody's liar


def test_verification_off_is_pip_with_one_index(
    shared_venv: Venv, tampered_tree: tuple[PackageIndex, PackageIndex], mirror_factory: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    real, evil = tampered_tree
    spare = mirror_factory(real)
    env = chain_env(sealed_env, [mirror_factory(evil), spare], PIP_91N_VERIFY="off")
    pip_install(shared_venv, env, tmp_path / "t", "app")
    assert (tmp_path / "t" / "lib_c" / "backdoor.py").exists()  # what the page said
    assert spare.stats().total_requests == 0
