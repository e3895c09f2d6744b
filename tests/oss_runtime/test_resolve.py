"""Resolution: local dir, HF cache, download through a fake hub on 127.0.0.1 (failover, resume)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from _fake_hub import COMMIT, FakeHub, dead_endpoint, no_internet_endpoint

from oss_runtime.errors import DownloadError, SourceNotFound
from oss_runtime.hubcache import cached_snapshot, hub_cache_dir, is_needed
from oss_runtime.resolve import DEFAULT_ENDPOINT, endpoint_chain, resolve_source

REPO = "acme/gpt-oss-tiny"


@pytest.fixture
def repo_files(make_checkpoint: Callable[..., Path]) -> dict[str, bytes]:
    root = make_checkpoint("hubsrc", shards=2)
    files = {p.name: p.read_bytes() for p in sorted(root.iterdir())}
    files["generation_config.json"] = b'{"eos_token_id": [2]}'
    files["original/model.safetensors"] = b"x" * 5000  # must never be fetched
    files["metal/model.bin"] = b"y" * 5000
    files["README.md"] = b"# tiny"
    return files


@pytest.fixture(autouse=True)
def _caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_91N_CACHE_DIR", str(tmp_path / "pip91n"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    no_internet_endpoint(monkeypatch)  # tests never reach huggingface.co


def test_needed_files_filter() -> None:
    assert is_needed("config.json") and is_needed("model-00000-of-00002.safetensors")
    assert is_needed("chat_template.jinja") and is_needed("tokenizer.json")
    assert not is_needed("original/model.safetensors") and not is_needed("metal/model.bin")
    assert not is_needed("README.md") and not is_needed(".gitattributes")


def test_endpoint_chain() -> None:
    import oss_runtime.resolve as r

    last = r.DEFAULT_ENDPOINT  # patched to a dead local port in these tests
    env = {
        "HF_ENDPOINT": "https://hf.example/",
        "OSS_RUNTIME_HF_ENDPOINTS": "https://m1, https://m2",
    }
    assert endpoint_chain(None, env) == ["https://hf.example", "https://m1", "https://m2", last]
    assert endpoint_chain(["https://m3"], {}) == ["https://m3", last]
    assert endpoint_chain([last + "/"], {}) == [last]
    assert DEFAULT_ENDPOINT == "https://huggingface.co"


def test_local_directory_touches_nothing(make_checkpoint: Callable[..., Path]) -> None:
    root = make_checkpoint()
    got = resolve_source(root, endpoints=[dead_endpoint()], offline=False)
    assert (got.kind, got.path) == ("local", root)
    assert resolve_source(str(root)).kind == "local"
    with pytest.raises(SourceNotFound, match="neither"):
        resolve_source("no such thing here")


def test_download_failover_filter_and_cache(tmp_path: Path, repo_files: dict[str, bytes]) -> None:
    dead = dead_endpoint()
    with FakeHub({REPO: repo_files}) as hub:
        got = resolve_source(REPO, endpoints=[dead, hub.url], progress=False)
        assert got.kind == "download" and got.endpoint == hub.url and got.commit == COMMIT
        for name, data in repo_files.items():
            if "/" in name or name == "README.md":
                assert not (got.path / name).exists()
            else:
                assert (got.path / name).read_bytes() == data
        fetched = {p.rsplit("/", 1)[-1] for p in hub.paths() if "/resolve/" in p}
        assert fetched == {n for n in repo_files if is_needed(n)}
        assert not any("original" in p or "metal" in p for p in hub.paths())
        # the HF cache layout: blobs named by sha256 (LFS) and relative symlinks in the snapshot
        shard = next(n for n in repo_files if n.endswith(".safetensors") and "/" not in n)
        link = got.path / shard
        assert (
            link.is_symlink()
            and link.resolve().name == hashlib.sha256(repo_files[shard]).hexdigest()
        )
        # each shard is on disk once, in the HF cache: pip-91n's cache keeps no copy or link
        files = [p.name for p in (tmp_path / "pip91n").rglob("*") if p.is_file()]
        assert any(n.endswith(".lock") for n in files)  # the engine did work there
        assert [n for n in files if not n.endswith(".lock")] == [], files
        assert link.resolve().stat().st_nlink == 1
        assert (
            hub_cache_dir() / "models--acme--gpt-oss-tiny" / "refs" / "main"
        ).read_text() == COMMIT
        before = len(hub.log)
        again = resolve_source(REPO, endpoints=[hub.url], progress=False)
        assert again.kind == "cache" and again.path == got.path and len(hub.log) == before
    assert cached_snapshot(hub_cache_dir(), REPO, COMMIT) == got.path
    hf = pytest.importorskip("huggingface_hub")  # huggingface_hub reads what we wrote, offline
    found = hf.snapshot_download(REPO, cache_dir=hub_cache_dir(), local_files_only=True)
    assert Path(found) == got.path


def test_hf_endpoint_comes_first(
    repo_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub({REPO: repo_files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        got = resolve_source(REPO, endpoints=[dead_endpoint()], progress=False)
        assert got.endpoint == hub.url


def test_resume_after_cut_connection(
    repo_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    shard = max(
        (n for n in repo_files if n.endswith(".safetensors") and "/" not in n),
        key=lambda n: len(repo_files[n]),
    )
    with FakeHub({REPO: repo_files}, truncate={shard: 70_000}) as hub:
        got = resolve_source(REPO, endpoints=[hub.url], progress=True)
        assert (got.path / shard).read_bytes() == repo_files[shard]
        ranges = [r for m, p, r in hub.log if p.endswith(shard) and r]
        assert ranges and int(ranges[-1][6:].split("-")[0]) >= 65_536  # resumed, not restarted
    assert "gpt-oss" in capsys.readouterr().err  # the progress bar


def test_offline_and_failures(
    repo_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub({REPO: repo_files}) as hub:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(SourceNotFound, match="HF_HUB_OFFLINE"):
            resolve_source(REPO, endpoints=[hub.url], progress=False)
        assert hub.log == []
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(SourceNotFound, match="offline"):
            resolve_source(REPO, endpoints=[hub.url], offline=True, progress=False)
        with pytest.raises(DownloadError, match="404"):
            resolve_source("acme/missing", endpoints=[hub.url], progress=False)
    with pytest.raises(DownloadError, match="could not list"):
        resolve_source(REPO, endpoints=[dead_endpoint()], progress=False)


def test_token_goes_only_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import oss_runtime.resolve as r

    monkeypatch.setattr(r, "DEFAULT_ENDPOINT", "https://huggingface.co")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.corp.example")
    assert r._headers("https://huggingface.co/api/models/a/b") == {
        "Authorization": "Bearer hf_secret"
    }
    assert r._headers("https://hub.corp.example/a/b/resolve/main/config.json")
    assert r._headers("https://hf-mirror.com/api/models/a/b") == {}
    assert r._headers("https://huggingface.co.evil.example/x") == {}


def test_partial_survives_to_the_next_run(repo_files: dict[str, bytes]) -> None:
    shard = max(
        (n for n in repo_files if n.endswith(".safetensors") and "/" not in n),
        key=lambda n: len(repo_files[n]),
    )
    with (
        FakeHub({REPO: repo_files}, broken={shard: 70_000}) as bad,
        pytest.raises(DownloadError, match="503"),
    ):
        resolve_source(REPO, endpoints=[bad.url], progress=False)
    assert cached_snapshot(hub_cache_dir(), REPO, "main") is None  # nothing unverified published
    with FakeHub({REPO: repo_files}) as good:  # another run, another endpoint: resumes the partial
        got = resolve_source(REPO, endpoints=[good.url], progress=False)
        ranges = [r for _, p, r in good.log if p.endswith(shard)]
        assert ranges and ranges[0] and int(ranges[0][6:].split("-")[0]) >= 65_536
    assert (got.path / shard).read_bytes() == repo_files[shard]


def test_listing_without_lfs_details_uses_etags(repo_files: dict[str, bytes]) -> None:
    with FakeHub({REPO: repo_files}, lfs_in_listing=False) as hub:
        got = resolve_source(REPO, endpoints=[hub.url], progress=False)
        assert any(p.endswith(".safetensors") for p in hub.paths("HEAD"))
    for name, data in repo_files.items():
        if name.endswith(".safetensors") and "/" not in name:
            assert (got.path / name).resolve().name == hashlib.sha256(data).hexdigest()


def test_anything_that_looks_like_a_path_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    import shutil

    shutil.copytree(tiny_checkpoint, tmp_path / "models" / "tiny")
    assert resolve_source("~/models/tiny").path == tmp_path / "models" / "tiny"  # ~ expanded first
    assert resolve_source("models/tiny").kind == "local"
    messages = set()
    for typo in ("models/tiny-typo", "./tiny", Path("models/tiny-typo"), "~/nope", "a/b/c"):
        with pytest.raises(SourceNotFound, match="no such directory") as err:
            resolve_source(typo, endpoints=[dead_endpoint()])  # never asks the hub
        messages.add(str(err.value).split(": ", 1)[1])
    assert len(messages) == 1  # the same wording for str and Path
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SourceNotFound, match="a file, not a checkpoint directory"):
        resolve_source("./afile")


def test_a_stalled_endpoint_costs_the_head_start_not_the_timeout(
    repo_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hub endpoint that accepts and never answers is raced after PIP_91N_HEDGE_DELAY, as a
    mirror of the chain is; the listing does not wait for its timeout."""
    import socket
    import time

    monkeypatch.setenv("PIP_91N_TIMEOUT", "60")
    monkeypatch.setenv("PIP_91N_HEDGE_DELAY", "0.2")
    with socket.socket() as hole, FakeHub({REPO: repo_files}) as hub:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)  # connections complete in the kernel; no request is ever read
        stalled = f"http://127.0.0.1:{hole.getsockname()[1]}"
        t0 = time.monotonic()
        got = resolve_source(REPO, endpoints=[stalled, hub.url], progress=False)
        took = time.monotonic() - t0
    assert got.kind == "download" and got.endpoint == hub.url
    assert took < 30  # far below the 60 s timeout the stalled endpoint would have cost


def test_passwords_in_endpoints_never_reach_a_message(
    repo_files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "CANARYpw91n"
    with pytest.raises(DownloadError) as listing:
        resolve_source(REPO, endpoints=[dead_endpoint().replace("//", f"//u:{canary}@")],
                       progress=False)
    assert "u:***@127.0.0.1" in str(listing.value) and canary not in str(listing.value)
    small = "generation_config.json"
    shard = next(n for n in repo_files if n.endswith(".safetensors") and "/" not in n)
    for broken in (small, shard):
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / f"hf-{broken}"))
        with (
            FakeHub({REPO: repo_files}, broken={broken: 1}) as hub,
            pytest.raises(DownloadError) as files,
        ):
            resolve_source(REPO, endpoints=[hub.url.replace("//", f"//u:{canary}@")],
                           progress=False)
        assert "u:***@127.0.0.1" in str(files.value) and canary not in str(files.value)
