"""Real pip (``PIP_91N_TEST_PIP``) in a venv with the built wheel, against loopback mirrors.

pip runs with its default index (pypi.org, unreachable in the sealed environment): the shim
maps it to the chain, so pip sees one logical index. ``pip install --target`` keeps the
shared venv unchanged, so one venv serves every test here.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    BlackHole,
    Corrupt,
    PackageIndex,
    ResetAfter,
    ServerError,
    Stale,
    Venv,
    make_wheel,
    tree_index,
)
from tests.hook.helpers import (
    BACKEND,
    chain_env,
    installed,
    log_lines,
    make_sdist_needing_backend,
    pip_install,
)

pytestmark = pytest.mark.hook

NEWEST = {"app": "2.0", "lib-a": "2.0", "lib-b": "2.0", "lib-c": "2.0"}


@pytest.fixture(scope="module")
def big_index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    """The dependency tree plus a 3 MiB wheel ``big`` (for resets mid-file)."""
    index = tree_index(tmp_path_factory.mktemp("big-index"))
    d = tmp_path_factory.mktemp("big-wheel")
    index.add(make_wheel(d, "big", "1.0", payload_size=3 * 2**20))
    return index


HEAD_FAULTS: dict[str, Any] = {
    "refused": "refused",
    "black-holed": BlackHole(hold=30.0),
    "503": ServerError(status=503),
    "corrupt": Corrupt(kind="file"),
    "reset-mid-file": ResetAfter(nbytes=200_000, kind="file"),
}


@pytest.mark.parametrize("fault", list(HEAD_FAULTS))
def test_tree_installs_when_the_head_mirror_fails(
    fault: str, shared_venv: Venv, big_index: PackageIndex, mirrors: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    head, good = mirrors(big_index, [HEAD_FAULTS[fault], None])
    env = chain_env(sealed_env, [head, good])
    _, out, err = pip_install(shared_venv, env, tmp_path / "t", "app", "big")
    assert installed(tmp_path / "t") == {**NEWEST, "big": "1.0"}
    assert "Unexpected import" not in err  # pip 26.1+ audits imports once installing
    assert "pip-91n" not in out
    lines = log_lines(env)
    assert lines and all(line.startswith("pip-91n ") for line in lines)
    if fault in ("corrupt", "reset-mid-file"):
        # the head served the pages; the files' bytes were verified before pip saw them
        assert head.stats().by_kind["file"] >= 1
        assert any("failover" in line or " m1 " in line or str(good.port) in line
                   for line in lines)


def test_a_healthy_head_serves_everything_and_the_next_mirror_only_confirms_pages(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, spare = mirrors(dep_tree, [None, None])
    # a hedge far off: only a failure may send a file request to the spare; it is the
    # second source of each project page (PIP_91N_VERIFY), once per project
    env = chain_env(sealed_env, [head, spare], PIP_91N_HEDGE_DELAY="30")
    pip_install(shared_venv, env, tmp_path / "t", "app")
    assert installed(tmp_path / "t") == NEWEST
    assert head.stats().by_kind["file"] == 4
    assert spare.stats().by_kind == {"page": 4}


def test_lagging_head_mirror_exact_pin_found_on_the_next(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, [Stale(match="app"), None])
    env = chain_env(sealed_env, [head, good], PIP_91N_HEDGE_DELAY="0")
    pip_install(shared_venv, env, tmp_path / "t", "app==2.0")
    assert installed(tmp_path / "t")["app"] == "2.0"
    assert head.stats().requests.get("/simple/app/", 0) >= 1  # asked first, then skipped


def test_index_url_pointing_at_the_head_mirror_is_the_chain(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, ["refused", None])
    env = chain_env(sealed_env, [head, good])
    pip_install(shared_venv, env, tmp_path / "t", "--index-url", head.simple_url, "app")
    assert installed(tmp_path / "t") == NEWEST
    assert good.stats().by_kind["file"] == 4


def test_private_index_is_untouched_and_its_credentials_stay_home(
    shared_venv: Venv, dep_tree: PackageIndex, mirror_factory: Any, recording_proxy: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    chain_server = mirror_factory(dep_tree, name="chain")
    chain = recording_proxy(chain_server.url)
    private_index = PackageIndex()
    private_index.add(make_wheel(tmp_path / "private", "secret-tool", "1.0"))
    private = recording_proxy(mirror_factory(private_index, name="private").url)
    env = chain_env(sealed_env, [chain])
    user, password = "alice", "s3cr3t-token"
    private_url = private.simple_url.replace("http://", f"http://{user}:{password}@")
    pip_install(shared_venv, env, tmp_path / "t", "--extra-index-url", private_url,
                "app", "secret-tool")
    assert installed(tmp_path / "t") == {**NEWEST, "secret-tool": "1.0"}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    # the private index got its credentials, from pip itself
    assert any(h.get("authorization") == f"Basic {token}" for _, h in private.seen)
    assert any("secret-tool" in path for path, _ in private.seen)
    # the chain never saw them, and no log line carries the password
    assert chain.seen
    assert not any("authorization" in h for _, h in chain.seen)
    assert not any(password in line for line in log_lines(env))
    assert not any(str(private.url) in line for line in log_lines(env))


def test_disable_restores_stock_pip(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    (chain,) = mirrors(dep_tree, 1)
    env = chain_env(sealed_env, [chain], PIP_91N_DISABLE="1")
    # pypi.org is unreachable here: stock pip fails, and the chain is never asked
    rc, out, err = pip_install(shared_venv, env, tmp_path / "t", "--retries", "0", "app",
                               check=False)
    assert rc != 0 and "No matching distribution" in err
    assert chain.stats().total_requests == 0
    assert "pip-91n" not in out + err
    assert log_lines(env) == []


@pytest.mark.parametrize("layout", ["pypi", "flat"])
def test_pip_shows_the_real_url_of_each_file(
    layout: str, shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any,
    sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    """Relative links on a mirror's page resolve against that mirror, not pypi.org: pip
    names (and asks for) URLs that exist."""
    (mirror,) = mirrors(dep_tree, 1, layout=layout)
    env = chain_env(sealed_env, [mirror])
    _rc, out, err = pip_install(shared_venv, env, tmp_path / "t", "-v", "lib-c")
    where = "packages/" if layout == "pypi" else "files/"
    assert f"{mirror.url}/{where}" in out + err, out  # pip -v names each link it found
    assert "pypi.org/packages" not in out + err and "pypi.org/files" not in out + err, out


def test_when_every_mirror_fails_pip_says_why_at_default_verbosity(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    refused, failing = mirrors(dep_tree, ["refused", ServerError(status=503)])
    env = chain_env(sealed_env, [refused, failing])
    del env["PIP_91N_LOG"]  # what a user sees, with no request log
    rc, out, err = pip_install(shared_venv, env, tmp_path / "t", "app==1.0", check=False)
    assert rc != 0
    blocks = [line for line in err.splitlines() if line.startswith("pip-91n: all ")]
    assert blocks == ["pip-91n: all 2 mirrors failed for https://pypi.org/simple/app/:"], err
    assert f"- 127.0.0.1:{refused.port}/simple: connect failed" in err, err
    assert f"- 127.0.0.1:{failing.port}/simple: HTTP 503" in err, err
    assert err.count("fix: check the network") == 1  # once per failed project
    assert "pip-91n" not in out


def test_broken_config_leaves_pip_working_unpatched_with_one_line(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    chain, own = mirrors(dep_tree, 2)
    env = chain_env(sealed_env, [chain])
    Path(env["PIP_91N_CONFIG"]).write_text("mirrors = [\n", encoding="utf-8")
    del env["PIP_91N_MIRRORS"]  # the file decides the chain, and the file is broken
    _rc, out, err = pip_install(shared_venv, env, tmp_path / "t", "--index-url", own.simple_url,
                               "app")
    assert installed(tmp_path / "t") == NEWEST
    ours = [line for line in err.splitlines() if "pip-91n" in line]
    assert len(ours) == 1 and "invalid TOML" in ours[0], err
    assert "pip-91n" not in out
    assert chain.stats().total_requests == 0
    # python itself stays silent with the broken file
    proc = shared_venv.py("-c", "pass", env=env)
    assert (proc.stdout, proc.stderr) == ("", "")


def test_python_startup_prints_nothing(shared_venv: Venv, sealed_env: dict[str, str],
                                       dep_tree: PackageIndex, mirrors: Any) -> None:
    (chain,) = mirrors(dep_tree, 1)
    for env in (shared_venv.env, chain_env(sealed_env, [chain]),
                {**shared_venv.env, "PIP_91N_DISABLE": "1"}):
        proc = shared_venv.py("-c", "pass", env=env)
        assert (proc.stdout, proc.stderr) == ("", "")
    code = ("import sys; import pip_91n._startup as h; "
            "print(h.pending('pip._internal.network.session'), 'pip' in sys.modules)")
    assert shared_venv.py("-c", code).stdout.split() == ["1", "False"]


def test_stdout_has_no_chain_noise_and_pip_download_index_and_wheel_work(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(dep_tree, ["refused", None])
    env = chain_env(sealed_env, [head, good], PIP_91N_LOG="-")
    proc = shared_venv.pip("download", "--no-cache-dir", "-d", str(tmp_path / "d"), "app",
                           env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "d").glob("*.whl"))) == 4
    assert "pip-91n " not in proc.stdout and "HTTP Request" not in proc.stdout
    assert "pip-91n " in proc.stderr  # PIP_91N_LOG=- : one line per request on stderr
    proc = shared_venv.pip("index", "versions", "app", env=env, check=False)
    assert proc.returncode == 0 and "2.0, 1.0" in proc.stdout, proc.stderr
    # the `pip` console script (not `python -m pip`), and `pip wheel`
    proc = shared_venv.run(shared_venv.script("pip"), "wheel", "--no-cache-dir", "-w",
                           str(tmp_path / "w"), "app", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "w").glob("*.whl"))) == 4


def test_unknown_pip_structure_leaves_pip_alone(
    venv_factory: Any, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    venv = venv_factory("changed-pip")
    session_py = next(venv.path.glob("lib/python*/site-packages/pip/_internal/network/session.py"))
    with session_py.open("a", encoding="utf-8") as f:  # a future pip with another __init__
        f.write("\n_orig_init = PipSession.__init__\n"
                "def _changed_init(self, *args, **kwargs):\n"
                "    _orig_init(self, *args, **kwargs)\n"
                "PipSession.__init__ = _changed_init\n")
    chain, own = mirrors(dep_tree, 2)
    env = chain_env(sealed_env, [chain])
    proc = venv.pip("install", "--no-cache-dir", "--index-url", own.simple_url, "app", env=env,
                    check=False)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if "pip-91n" in line]
    assert len(ours) == 1 and "unknown structure" in ours[0], proc.stderr
    assert chain.stats().total_requests == 0
    assert own.stats().by_kind["file"] == 4


def _needs_build_index(tmp_path: Path) -> PackageIndex:
    """An sdist ``needs-build`` whose build backend is the wheel ``mini-backend``."""
    index = PackageIndex()
    index.add(make_wheel(tmp_path / "w", "mini-backend", "1.0", files={"backend.py": BACKEND}))
    index.add(make_sdist_needing_backend(tmp_path / "s"), metadata=False)
    return index


def test_build_isolation_subprocess_uses_the_chain(
    shared_venv: Venv, mirrors: Any, sealed_env: dict[str, str], tmp_path: Path,
) -> None:
    head, good = mirrors(_needs_build_index(tmp_path), ["refused", None])
    env = chain_env(sealed_env, [head, good])
    # pip's build subprocess gets -i https://pypi.org/simple (unreachable here): only the
    # chain, set up again from the inherited environment, can serve mini-backend to it
    pip_install(shared_venv, env, tmp_path / "t", "needs-build")
    assert installed(tmp_path / "t") == {"needs-build": "1.0"}
    assert good.stats().bytes_by_file.get("mini_backend-1.0-py3-none-any.whl", 0) > 0
    assert any("mini_backend-1.0-py3-none-any.whl" in line for line in log_lines(env))


def _has_feature(venv: Venv, feature: str) -> bool:
    code = ("from pip._internal.cli import cmdoptions as c; "
            f"print({feature!r} in c.use_new_feature().choices)")
    return venv.py("-c", code).stdout.strip() == "True"


@pytest.mark.parametrize("features", [["inprocess-build-deps"],
                                      ["inprocess-build-deps", "venv-isolation"]],
                         ids=["inprocess", "inprocess+venv-isolation"])
def test_in_process_build_deps_use_the_chain(
    features: list[str], shared_venv: Venv, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """pip 26's in-process build-dependency install goes through the patched session; with
    venv-isolation (whose build venv has no pip-91n) it is how the chain keeps serving."""
    missing = [f for f in features if not _has_feature(shared_venv, f)]
    if missing:
        pytest.skip(f"pip {shared_venv.pip_version} has no --use-feature={missing[0]}")
    head, good = mirrors(_needs_build_index(tmp_path), ["refused", None])
    env = chain_env(sealed_env, [head, good])
    options = [f"--use-feature={f}" for f in features]
    pip_install(shared_venv, env, tmp_path / "t", *options, "needs-build")
    assert installed(tmp_path / "t") == {"needs-build": "1.0"}
    assert good.stats().bytes_by_file.get("mini_backend-1.0-py3-none-any.whl", 0) > 0


@pytest.fixture(scope="module")
def huge_index(tmp_path_factory: pytest.TempPathFactory) -> PackageIndex:
    """One 20 MiB wheel: above the 16 MiB buffer, so pip gets it streamed."""
    index = PackageIndex()
    index.add(make_wheel(tmp_path_factory.mktemp("huge"), "huge", "1.0",
                         payload_size=20 * 2**20))
    return index


def test_large_file_streams_and_resumes_on_the_next_mirror(
    shared_venv: Venv, huge_index: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    head, good = mirrors(huge_index, [ResetAfter(nbytes=6 * 2**20, kind="file"), None])
    env = chain_env(sealed_env, [head, good])
    pip_install(shared_venv, env, tmp_path / "t", "huge")
    assert installed(tmp_path / "t") == {"huge": "1.0"}
    size = huge_index.get("huge-1.0-py3-none-any.whl").size
    sent = (head.stats().bytes_by_file["huge-1.0-py3-none-any.whl"]
            + good.stats().bytes_by_file.get("huge-1.0-py3-none-any.whl", 0))
    assert sent < size + 2 * 2**20  # resumed, not downloaded twice


def test_large_file_from_a_corrupt_head_installs_verified(
    shared_venv: Venv, huge_index: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # pip < 25.2 gets the file whole once verified; pip >= 25.2 gets it streamed, and when
    # the corrupt bytes it already had are replaced, its own resume logic asks again
    head, good = mirrors(huge_index, [Corrupt(kind="file"), None])
    env = chain_env(sealed_env, [head, good])
    _, _, err = pip_install(shared_venv, env, tmp_path / "t", "huge")
    assert installed(tmp_path / "t") == {"huge": "1.0"}
    assert "sha256 mismatch" in err and "Traceback" not in err
