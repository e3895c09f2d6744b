"""Benchmark: ``pip-91n serve`` against loopback mirrors (tests.harness), side by side in one run.

1. uv installing 20 small packages through serve (healthy chain, server cache empty) vs uv
   straight to the healthy mirror. Goal: <= 1.2x.
2. The same with a black-holed head in the chain: goal within 2 s of (1); beside it, uv
   straight to that chain's URLs (uv cannot fail over: what it does is reported).
3. Four concurrent clients of one 50 MB file through serve: bytes the mirrors sent, as a
   multiple of the file. Goal <= 1.05x.
4. One 200 MB file through serve from three throttled mirrors vs from one. Goal >= 2.5x.

Every mirror answers after a delay (``--latency``, a long-distance link) and sends files at
``--rate`` bytes/s. Each uv run has an empty uv cache and each serve run a fresh server with an
empty cache dir (cold: the server's cache is the point only from the second client on).

Usage: ``python bench/serve.py [--rounds 3] [--rate 16M] [--big 200M] [--write-docs]``;
prints a Markdown table and writes bench/results/serve.json (and, with ``--write-docs``, the
"## pip_91n: serve" section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._docs import write_section  # noqa: E402
from tests.harness import (  # noqa: E402
    BlackHole,
    MirrorServer,
    PackageIndex,
    SlowFirstByte,
    Throttle,
    WheelSpec,
    build_index,
    sealed_env,
)

MB = 1024 * 1024
UV = Path(sys.executable).with_name("uv")
SECTION = "## pip_91n: serve"


def _size(text: str) -> int:
    units = {"K": 1024, "M": MB, "G": 1024 * MB}
    text = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


class Server:
    """``python -m pip_91n serve --port 0`` over ``urls`` with an empty cache dir."""

    def __init__(self, work: Path, env: dict[str, str], urls: Sequence[str]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        full = {**env, "PYTHONPATH": str(ROOT), "PIP_91N_MIRRORS": ",".join(urls),
                "PIP_91N_LOG": str(work / "serve.log"),
                "PIP_91N_CACHE_DIR": str(work / "pip-91n-cache")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pip_91n", "serve", "--port", "0", "--cache-dir",
             str(work / "cache")], env=full, stdout=subprocess.PIPE,
            stderr=open(work / "stderr.log", "w"), text=True)  # noqa: SIM115
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError((work / "stderr.log").read_text())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        if self.proc.stdout:
            self.proc.stdout.close()


def uv_install(work: Path, env: dict[str, str], index: str, reqs: Sequence[str], *,
               extra: Sequence[str] = (), timeout: float = 300) -> tuple[float, int, str]:
    """Seconds, exit code and the last stderr line of ``uv pip install`` into a new venv."""
    venv = work / "venv"
    uv_env = {**env, "UV_CACHE_DIR": str(work / "uv-cache"), "UV_NO_CONFIG": "1",
              "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)],
                   env=uv_env, check=True, capture_output=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(UV), "pip", "install", "--python", str(venv / "bin/python"),
                               "--index-url", index, *extra, *reqs], env=uv_env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, -1, f"killed after {timeout:.0f} s"
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return time.perf_counter() - t0, proc.returncode, (lines[-1] if lines else "")


def bench_uv(work: Path, env: dict[str, str], index: PackageIndex, rounds: int,
             latency: float, rate: float) -> dict[str, Any]:
    faults = [SlowFirstByte(delay=latency), Throttle(rate=rate, kind="file")]
    healthy = MirrorServer(index, faults=faults, name="healthy").start()
    hole = MirrorServer(index, faults=[BlackHole(hold=600)], name="hole").start()
    reqs = sorted(index.projects())
    out: dict[str, list[float]] = {"direct": [], "serve": [], "serve_bh": [], "serve_warm": []}
    direct_bh: tuple[float, int, str] | None = None
    try:
        for r in range(rounds):
            for key, urls in (("serve", [healthy.simple_url]),
                              ("serve_bh", [hole.simple_url, healthy.simple_url])):
                server = Server(work / f"{key}-{r}", env, urls)
                try:
                    secs, code, last = uv_install(work / f"{key}-{r}-uv", env, server.url, reqs)
                    assert code == 0, last
                    out[key].append(secs)
                    if key == "serve":  # a second client: the server's cache is warm now
                        secs, code, last = uv_install(work / f"{key}-{r}-uv2", env,
                                                      server.url, reqs)
                        assert code == 0, last
                        out["serve_warm"].append(secs)
                finally:
                    server.stop()
            secs, code, last = uv_install(work / f"direct-{r}", env, healthy.simple_url, reqs)
            assert code == 0, last
            out["direct"].append(secs)
        # uv asks --extra-index-url before --index-url: the black hole first, as in the chain
        direct_bh = uv_install(work / "direct-bh", env, healthy.simple_url, reqs,
                               extra=["--extra-index-url", hole.simple_url], timeout=180)
    finally:
        healthy.stop()
        hole.stop()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {"rounds": out, "median": med, "direct_black_hole": direct_bh}


def _fetch_all(url: str, n: int) -> tuple[float, list[str]]:
    import httpx

    digests: list[str] = []
    barrier = threading.Barrier(n)

    def one() -> None:
        barrier.wait()
        h = hashlib.sha256()
        with httpx.stream("GET", url, timeout=600) as resp:
            for chunk in resp.iter_bytes():
                h.update(chunk)
        digests.append(h.hexdigest())

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, digests


def _file_url(server: Server, project: str) -> str:
    import httpx

    page = httpx.get(server.url + f"{project}/",
                     headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    return str(httpx.URL(server.url + f"{project}/").join(page["files"][0]["url"]))


def bench_files(work: Path, env: dict[str, str], rate: float, big: int) -> dict[str, Any]:
    idx = build_index(work / "fat", [WheelSpec("fat", "1.0", payload_size=50_000_000),
                                     WheelSpec("huge", "1.0", payload_size=big)])
    fat, huge = idx.files("fat")[0], idx.files("huge")[0]
    mirrors = [MirrorServer(idx, faults=[Throttle(rate=rate, kind="file")], name=f"m{i}").start()
               for i in range(3)]
    result: dict[str, Any] = {}
    try:
        server = Server(work / "four", env, [m.simple_url for m in mirrors[:2]])
        try:
            secs, digests = _fetch_all(_file_url(server, "fat"), 4)
        finally:
            server.stop()
        assert digests == [fat.sha256] * 4
        sent = sum(m.stats().bytes_by_file.get(fat.filename, 0) for m in mirrors)
        result["four"] = {"seconds": secs, "upstream": sent, "size": fat.size,
                          "ratio": sent / fat.size}
        for key, chain in (("one", mirrors[:1]), ("three", mirrors)):
            server = Server(work / f"big-{key}", env, [m.simple_url for m in chain])
            try:
                secs, digests = _fetch_all(_file_url(server, "huge"), 1)
            finally:
                server.stop()
            assert digests == [huge.sha256]
            result[key] = secs
        result["speedup"] = result["one"] / result["three"]
        result["big"] = huge.size
    finally:
        for m in mirrors:
            m.stop()
    return result


def table(uv: dict[str, Any], files: dict[str, Any], args: argparse.Namespace) -> str:
    m = uv["median"]
    code, last = uv["direct_black_hole"][1], uv["direct_black_hole"][2]
    direct_bh = (f"{uv['direct_black_hole'][0]:.1f} s, "
                 + ("succeeded" if code == 0 else f"failed (exit {code}): {last[:90]}"))
    f4 = files["four"]
    rows = [
        "| scenario | through `pip-91n serve` | baseline | result | goal |",
        "|---|---|---|---|---|",
        f"| uv, 20 small packages, healthy chain (server cache empty) | {m['serve']:.2f} s | "
        f"uv straight to the mirror: {m['direct']:.2f} s | {m['serve'] / m['direct']:.2f}x "
        "| <= 1.2x |",
        f"| the same, a second client (server cache warm) | {m['serve_warm']:.2f} s | "
        f"{m['direct']:.2f} s | {m['serve_warm'] / m['direct']:.2f}x | |",
        f"| uv, 20 packages, black-holed head, then the healthy mirror | {m['serve_bh']:.2f} s "
        f"| healthy chain through serve: {m['serve']:.2f} s | "
        f"+{m['serve_bh'] - m['serve']:.2f} s | within 2 s |",
        f"| uv straight to that chain (`--extra-index-url HOLE --index-url HEALTHY`) | | "
        f"{direct_bh} | uv cannot fail over | |",
        f"| 4 clients of one 50 MB file at once | {f4['seconds']:.2f} s | upstream bytes "
        f"{f4['upstream'] / MB:.1f} MiB for a {f4['size'] / MB:.1f} MiB file | "
        f"{f4['ratio']:.3f}x one copy | <= 1.05x |",
        f"| one {files['big'] / 1e6:.0f} MB file, 3 throttled mirrors vs 1 | "
        f"{files['three']:.2f} s | 1 mirror: {files['one']:.2f} s | "
        f"{files['speedup']:.2f}x faster | >= 2.5x |",
    ]
    notes = [
        "",
        f"Loopback mirrors (tests.harness) answering after {args.latency * 1000:.0f} ms and "
        f"sending files at {args.rate / MB:.0f} MiB/s per connection; medians of "
        f"{args.rounds} rounds, each with an empty uv cache and a fresh server with an empty "
        f"cache dir. Python {platform.python_version()}, uv "
        f"{subprocess.run([str(UV), '--version'], capture_output=True, text=True).stdout.split()[1]}"
        f", {os.cpu_count()} cores shared with other work. `python bench/serve.py "
        f"--rounds {args.rounds}`.",
    ]
    return "\n".join(rows + notes)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=_size, default=_size("8M"),
                   help="bytes/s per connection (8M, as bench/download_throughput.py)")
    p.add_argument("--latency", type=float, default=0.05, help="mirror first-byte delay (s)")
    p.add_argument("--big", type=_size, default=200_000_000)
    p.add_argument("--packages", type=int, default=20)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        env = sealed_env(work / "sealed")
        index = build_index(work / "wheels", [WheelSpec(f"pkg{i:02d}", v, payload_size=200_000)
                                              for i in range(args.packages)
                                              for v in ("1.0", "2.0")])
        uv = bench_uv(work, env, index, args.rounds, args.latency, args.rate)
        files = bench_files(work, env, args.rate, args.big)
    text = table(uv, files, args)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps({"uv": uv, "files": files}, indent=1,
                                               default=str))
    if args.write_docs:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
