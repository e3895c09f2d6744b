"""The download engine against real loopback mirrors (tests.harness) with injected faults.
Byte counts come from the servers, so "resumed" means "those bytes were not sent twice"."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pip_91n
from pip_91n.downloads import DownloadOptions, fetch
from pip_91n.downloads.partials import Journal, PartialStore
from pip_91n.errors import DownloadFailed
from tests.harness import BlackHole, Corrupt, PackageIndex, ResetAfter, Throttle
from tests.harness.index import DistFile

KB, MB = 1024, 1024 * 1024
ROOT = str(Path(pip_91n.__file__).resolve().parents[1])
_CHILD = """
import sys
from pip_91n.downloads import DownloadOptions, fetch
urls, sha, dest, size, threshold = sys.argv[1].split(","), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
fetch(urls, sha, dest, size=size, options=DownloadOptions.from_env(segment_threshold=threshold, timeout=10.0))
print("fetched", dest)
"""


def _dist(tmp_path: Path, size: int, name: str = "big-1.0.tar.gz") -> tuple[PackageIndex, DistFile]:
    path = tmp_path / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    index = PackageIndex()
    return index, index.add(path, metadata=False)


def _opts(tmp_path: Path, **kw: object) -> DownloadOptions:
    base: dict[str, object] = {"cache_dir": tmp_path / "cache", "timeout": 5.0,
                               "min_split": 256 * KB, "segment_threshold": 64 * MB}
    base.update(kw)
    return DownloadOptions(**base)  # type: ignore[arg-type]


def _served(servers: list, filename: str) -> list[int]:  # type: ignore[type-arg]
    return [s.stats().bytes_by_file.get(filename, 0) for s in servers]


def _child_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PIP_91N_CACHE_DIR"] = str(cache)
    return env


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reset_mid_body_on_each_mirror_in_turn(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    index, dist = _dist(tmp_path, 2 * MB)
    servers = mirrors(index, [ResetAfter(kind="file", nbytes=300 * KB, times=1)] * 3)
    dest = tmp_path / "out" / dist.filename
    fetch([s.file_url(dist.filename) for s in servers], dist.sha256, dest, options=_opts(tmp_path))
    assert _digest(dest) == dist.sha256
    served = _served(servers, dist.filename)
    assert all(b >= 300 * KB for b in served), served  # every mirror broke once, in turn
    # Nothing was fetched twice, except what a RST destroys in the client's receive buffer
    # (the server counts bytes the client kernel acknowledged, not what it delivered).
    assert sum(served) <= dist.size + 3 * 192 * KB, served
    assert [s.stats().count(kind="file") for s in servers] == [2, 1, 1]


def test_stalled_mirror_fails_over(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    index, dist = _dist(tmp_path, 256 * KB)
    servers = mirrors(index, [BlackHole(kind="file", hold=8), None])
    t0 = time.monotonic()
    out = fetch([s.file_url(dist.filename) for s in servers], dist.sha256, tmp_path / "o",
                options=_opts(tmp_path, timeout=0.5))
    assert _digest(out) == dist.sha256
    assert time.monotonic() - t0 < 5


def test_corrupting_mirror_is_detected_and_refetched(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    index, dist = _dist(tmp_path, 1 * MB)
    servers = mirrors(index, [Corrupt(kind="file", count=3), None])
    dest = tmp_path / "out.tar.gz"
    fetch([s.file_url(dist.filename) for s in servers], dist.sha256, dest, options=_opts(tmp_path))
    assert _digest(dest) == dist.sha256
    assert _served(servers, dist.filename) == [dist.size, dist.size]


def test_only_corrupt_mirrors_publish_nothing(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    index, dist = _dist(tmp_path, 512 * KB)
    servers = mirrors(index, [Corrupt(kind="file"), Corrupt(kind="file", offset=7)])
    dest = tmp_path / "out.tar.gz"
    with pytest.raises(DownloadFailed) as err:
        fetch([s.file_url(dist.filename) for s in servers], dist.sha256, dest,
              options=_opts(tmp_path))
    assert str(err.value).count("sha256 mismatch") == 2
    assert not dest.exists()
    assert not list((tmp_path / "cache" / "partials").glob("*.complete"))


def test_killed_process_resumes_next_run(tmp_path: Path, mirror_factory: Callable[..., object]) -> None:
    index, dist = _dist(tmp_path, 3 * MB)
    server = mirror_factory(index, Throttle(kind="file", rate=1.5 * MB))  # type: ignore[operator]
    url = server.file_url(dist.filename)  # type: ignore[attr-defined]
    cache = tmp_path / "cache"
    dest = tmp_path / "out.tar.gz"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, dist.sha256, str(dest), str(dist.size), str(64 * MB)],
        env=_child_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    journal = PartialStore(cache).path(dist.sha256, ".ranges")
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if Journal.replay(journal).total() >= dist.size * 0.4:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=10)
    assert not dest.exists()
    kept = Journal.replay(journal).total()
    assert dist.size * 0.4 <= kept < dist.size
    server.clear_faults()  # type: ignore[attr-defined]
    fetch([url], dist.sha256, dest, options=_opts(tmp_path))
    assert _digest(dest) == dist.sha256
    served = server.stats().bytes_by_file[dist.filename]  # type: ignore[attr-defined]
    assert served <= dist.size * 1.05, (served, kept)
    assert server.stats().count(kind="file") == 2  # type: ignore[attr-defined]


def test_segments_with_throttled_and_failing_mirrors(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    index, dist = _dist(tmp_path, 8 * MB)
    servers = mirrors(index, [
        Throttle(kind="file", rate=400 * KB),  # slow
        ResetAfter(kind="file", nbytes=64 * KB),  # breaks every response
        Throttle(kind="file", rate=8 * MB),  # fast
    ])
    dest = tmp_path / "out.tar.gz"
    t0 = time.monotonic()
    fetch([s.file_url(dist.filename) for s in servers], dist.sha256, dest, size=dist.size,
          options=_opts(tmp_path, segment_threshold=1 * MB, timeout=3.0))
    elapsed = time.monotonic() - t0
    assert _digest(dest) == dist.sha256
    slow, failing, fast = _served(servers, dist.filename)
    assert fast > slow and fast > dist.size // 2, (slow, failing, fast)
    assert slow + failing + fast <= dist.size * 1.1
    # the slow mirror alone would need 20 s; the fast one alone about 1 s
    assert elapsed < 6, elapsed


def test_four_processes_share_one_download(tmp_path: Path, mirror_factory: Callable[..., object]) -> None:
    index, dist = _dist(tmp_path, 4 * MB)
    server = mirror_factory(index, Throttle(kind="file", rate=3 * MB))  # type: ignore[operator]
    url = server.file_url(dist.filename)  # type: ignore[attr-defined]
    cache = tmp_path / "cache"
    dests = [tmp_path / f"d{i}" / dist.filename for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, dist.sha256, str(d), str(dist.size), str(MB)],
            env=_child_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for d in dests
    ]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert all(_digest(d) == dist.sha256 for d in dests)
    served = server.stats().bytes_by_file[dist.filename]  # type: ignore[attr-defined]
    assert served <= dist.size * 1.05, served


def test_stream_over_a_failing_mirror(tmp_path: Path, mirrors: Callable[..., list]) -> None:  # type: ignore[type-arg]
    from pip_91n.downloads import open_stream

    index, dist = _dist(tmp_path, 1 * MB)
    servers = mirrors(index, [ResetAfter(kind="file", nbytes=200 * KB, times=1), None])
    got = bytearray()
    with open_stream([s.file_url(dist.filename) for s in servers], dist.sha256,
                     options=_opts(tmp_path)) as stream:
        assert stream.wait_size(5) == dist.size
        for _ in range(10_000):
            chunk = stream.read(64 * KB)
            if not chunk:
                break
            got += chunk
    assert hashlib.sha256(got).hexdigest() == dist.sha256
    assert sum(_served(servers, dist.filename)) <= dist.size + 192 * KB
