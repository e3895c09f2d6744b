"""Benchmark: pip_91n.downloads.api against loopback mirrors (tests.harness), side by side in one run.

1. Throughput: one file (default 200 MB) from ONE mirror vs from THREE mirrors, every mirror
   throttled to the same rate (``--rate``, bytes/s). Goal: three mirrors >= 2.5x one.
2. Kill and resume: a child process fetching the file is SIGKILLed at ~50 %, then the same
   command runs again. Bytes the mirrors served in total, as a multiple of the file size.
   Goal <= 1.05x. Baseline in the same run: the rerun without the partial (what a downloader
   that keeps nothing between runs pays, e.g. pip, whose resume works only within one run).

Usage: ``python bench/download_throughput.py [--size 200M] [--rate 8M]``; prints a Markdown
table (for docs/benchmarks.md) and writes bench/results/download_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pip_91n.downloads import DownloadOptions, fetch  # noqa: E402
from pip_91n.downloads.partials import Journal, PartialStore  # noqa: E402
from tests.harness import MirrorServer, PackageIndex, Throttle  # noqa: E402

MB = 1024 * 1024
_CHILD = """
import sys
from pip_91n.downloads import DownloadOptions, fetch
urls, sha, dest = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
fetch(urls, sha, dest, options=DownloadOptions.from_env())
"""


def _size(text: str) -> int:
    units = {"K": 1024, "M": MB, "G": 1024 * MB}
    text = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _make_file(workdir: Path, size: int) -> Path:
    path = workdir / "files" / "big-1.0.tar.gz"
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 * MB)
            f.write(os.urandom(n))
            left -= n
    return path


def _served(servers: list[MirrorServer], filename: str) -> int:
    return sum(s.stats(wait=5).bytes_by_file.get(filename, 0) for s in servers)


def _reset(servers: list[MirrorServer]) -> None:
    for s in servers:
        s.reset_stats()


def _timed_fetch(urls: list[str], sha: str, work: Path, tag: str) -> float:
    cache, dest = work / f"cache-{tag}", work / f"out-{tag}" / "big-1.0.tar.gz"
    t0 = time.monotonic()
    fetch(urls, sha, dest, options=DownloadOptions(cache_dir=cache, timeout=30.0))
    elapsed = time.monotonic() - t0
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(dest.parent, ignore_errors=True)
    return elapsed


def _kill_at(urls: list[str], sha: str, size: int, cache: Path, dest: Path, frac: float) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PIP_91N_CACHE_DIR"] = str(cache)
    env["PIP_91N_TIMEOUT"] = "30"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, ",".join(urls), sha, str(dest)],
                             env=env)
    journal = PartialStore(cache).path(sha, ".ranges")
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if Journal.replay(journal).total() >= size * frac:
                break
            time.sleep(0.01)
        if child.poll() is not None:
            raise SystemExit("the child finished before it could be killed; use a lower --rate")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    return Journal.replay(journal).total()


def _kill_and_resume(servers: list[MirrorServer], urls: list[str], sha: str, size: int,
                     work: Path, tag: str, keep_partial: bool) -> tuple[float, float, float]:
    """(fraction on disk at the kill, bytes served / size, seconds of the second run)."""
    _reset(servers)
    cache, dest = work / f"cache-{tag}", work / f"out-{tag}" / "big-1.0.tar.gz"
    kept = _kill_at(urls, sha, size, cache, dest, 0.5)
    if not keep_partial:
        shutil.rmtree(cache)
    t0 = time.monotonic()
    fetch(urls, sha, dest, options=DownloadOptions(cache_dir=cache, timeout=30.0))
    rerun = time.monotonic() - t0
    served = _served(servers, "big-1.0.tar.gz")
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(dest.parent, ignore_errors=True)
    return kept / size, served / size, rerun


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="200M", help="file size (default 200M)")
    ap.add_argument("--rate", default="8M", help="per-mirror throttle, bytes/s (default 8M)")
    args = ap.parse_args(argv)
    size, rate = _size(args.size), _size(args.rate)
    work = Path(tempfile.mkdtemp(prefix="pip91n-bench-"))
    servers: list[MirrorServer] = []
    try:
        path = _make_file(work, size)
        index = PackageIndex()
        dist = index.add(path, metadata=False)
        servers = [MirrorServer(index, faults=[Throttle(kind="file", rate=rate)],
                                name=f"m{i}", io_timeout=60).start() for i in range(3)]
        urls = [s.file_url(dist.filename) for s in servers]
        one = _timed_fetch(urls[:1], dist.sha256, work, "one")
        three = _timed_fetch(urls, dist.sha256, work, "three")
        k1 = _kill_and_resume(servers, urls[:1], dist.sha256, size, work, "k1", True)
        k3 = _kill_and_resume(servers, urls, dist.sha256, size, work, "k3", True)
        k0 = _kill_and_resume(servers, urls[:1], dist.sha256, size, work, "k0", False)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    mb = size / MB
    rows = [
        ("1 mirror", f"{one:.1f} s", f"{mb / one:.1f} MiB/s", "1.00x"),
        ("3 mirrors, segments + work stealing", f"{three:.1f} s", f"{mb / three:.1f} MiB/s",
         f"**{one / three:.2f}x** (goal >= 2.5x)"),
    ]
    kills = [
        ("1 mirror, partial kept (pip_91n)", k1),
        ("3 mirrors, partial kept (pip_91n)", k3),
        ("baseline: 1 mirror, partial dropped (no resume across runs)", k0),
    ]
    print(f"\nFile {mb:.0f} MiB, every loopback mirror throttled to {rate / MB:.1f} MiB/s; "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores.\n")
    print("| download | time | throughput | vs 1 mirror |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n| killed at ~50 %, then run again | on disk at kill | bytes served / size | rerun |")
    print("|---|---|---|---|")
    for name, (kept, served, rerun) in kills:
        goal = " (goal <= 1.05x)" if "pip_91n" in name else ""
        print(f"| {name} | {kept:.0%} | **{served:.3f}x**{goal} | {rerun:.1f} s |")
    results = Path(ROOT, "bench", "results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "download_throughput.json").write_text(json.dumps({
        "size": size, "rate": rate, "one_s": one, "three_s": three, "speedup": one / three,
        "kill_one": k1, "kill_three": k3, "kill_baseline": k0,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
