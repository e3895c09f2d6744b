"""Benchmark: oss_runtime against llama.cpp on the same random full-shape gpt-oss-20b weights.

One command, each step cached and skipped when its output exists:

1. build llama.cpp (``llama-bench``, ``llama-completion``) from the ``llama-cpp-python`` sdist
   (``pip download --no-binary :all:``; ``vendor/llama.cpp``) into ``--cache-dir``, with
   ``-march=native`` minus AMX (``-mno-amx-*``: with AMX, llama.cpp's repacked Q8_0 path crashes
   here, see ../shared/reference/llamacpp.md);
2. write the random 24-layer checkpoint (``oss_runtime.synth`` shape ``20b``: random FP4 codes,
   E8M0 scales 2^-8..2^-6, bf16 weights ~N(0, 1/sqrt(fan_in)) ~ N(0, 0.019); 13.76 GB of disk);
3. convert it to GGUF (bf16 non-experts, MXFP4 experts; with ``--q8`` also Q8_0 non-experts,
   the official layout) with ``convert_hf_to_gguf.py``, its
   ``GptOssModel.set_vocab`` replaced by a dummy byte-level vocabulary (the real o200k_harmony
   tokenizer cannot be fetched offline);
4. run, back to back at ``--threads`` with a warm page cache: llama.cpp default (repack on) and
   ``--repack 0`` (``llama-bench`` pp32, pp128, tg32; first token = wall time of
   ``llama-completion -n 1`` on a 32-token prompt), then oss_runtime in fresh processes
   (`oss_runtime.benchmark.run_benchmark`: prefill 32, decode of the first 32 tokens of the fresh
   process, 32 more at steady state, prefill 128). Memory is sampled from /proc/PID/status.

Heavy steps hold ``flock(--lock)`` so that other benchmarks on the machine never overlap them.
Not part of CI. ``--write`` puts the table into docs/benchmarks.md ("## oss_runtime vs llama.cpp").

    python bench/vs_llamacpp.py --work-dir /var/tmp/oss18 --write
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SDIST = "llama-cpp-python==0.3.36"
TARGETS = ("llama-bench", "llama-completion")
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CHECKPOINT_BYTES = 13_761_264_768
SECTION = "## oss_runtime vs llama.cpp"
PROMPT32 = "abcdefghijklmnopqrstuvwxyzabcdef"  # 32 byte tokens with the dummy vocabulary


class BenchError(SystemExit):
    """A step that cannot run here; the message says why and what to do."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path: str | None, what: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (shared with other benchmarks) for one step."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        log(f"waiting for {path} ({what})")
        fcntl.flock(f, fcntl.LOCK_EX)
        started = time.perf_counter()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            log(f"{what}: {time.perf_counter() - started:.0f} s")


def need_free(path: Path, nbytes: int, what: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < nbytes * 1.05:
        raise BenchError(f"{what} needs {nbytes / 1e9:.1f} GB in {path}, only {free / 1e9:.1f} GB "
                         "free: give another --work-dir")


# -- 1. llama.cpp ------------------------------------------------------------------------------
def llama_source(cache: Path) -> Path:
    name = SDIST.replace("-", "_").replace("==", "-")
    src = cache / name / "vendor" / "llama.cpp"
    if src.is_dir():
        return src
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{name}.tar.gz"
    if not tarball.exists():
        log(f"pip download {SDIST} (sdist)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               SDIST, "-d", str(cache)]
        if subprocess.run(cmd).returncode or not tarball.exists():
            raise BenchError(f"could not download the {SDIST} sdist with pip into {cache}")
    with tarfile.open(tarball) as tar:
        tar.extractall(cache, filter="data")
    return src


def build_llamacpp(cache: Path, lock: str | None) -> Path:
    """``cache/build/bin`` with the tools, built once."""
    bindir = cache / "build" / "bin"
    if all((bindir / t).exists() for t in TARGETS):
        return bindir
    missing = [tool for tool in ("cmake", "ninja", "c++") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"building llama.cpp needs {', '.join(missing)} on PATH "
                         "(apt-get install cmake ninja-build g++)")
    src = llama_source(cache)
    configure = ["cmake", "-S", str(src), "-B", str(cache / "build"), "-G", "Ninja",
                 "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_BLAS=OFF",
                 "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                 f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    build = ["cmake", "--build", str(cache / "build"), "-j", str(os.cpu_count() or 2),
             "--target", *TARGETS]
    with locked(lock, "llama.cpp build (about 8.5 min on 2 cores)"):
        for cmd in (configure, build):
            if subprocess.run(cmd).returncode:
                raise BenchError(f"llama.cpp build failed: {' '.join(cmd)}")
    return bindir


# -- 2. checkpoint, 3. GGUF --------------------------------------------------------------------
def write_random_checkpoint(path: Path, lock: str | None) -> Path:
    if (path / "config.json").exists():
        return path
    from oss_runtime.synth import synth_config, write_checkpoint

    need_free(path.parent, CHECKPOINT_BYTES, "the random 20b checkpoint")
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with locked(lock, "writing the random 20b checkpoint (13.8 GB)"):
        write_checkpoint(tmp, synth_config("20b"), shards=3, seed=0, overwrite=True)
    tmp.rename(path)
    return path


_CONVERT = r"""
import runpy, sys
src, argv = sys.argv[1], sys.argv[2:]
sys.path[:0] = [src, src + "/gguf-py"]
import gguf
from conversion import gpt_oss

def byte_tokens():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]

SPECIAL = {199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>",
           200003: "<|constrain|>", 200005: "<|channel|>", 200006: "<|start|>",
           200007: "<|end|>", 200008: "<|message|>", 200012: "<|call|>"}

def set_vocab(self):
    n = self.hparams["vocab_size"]
    tokens = byte_tokens() + ["\u0120\u0120"]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for i in range(len(tokens), n):
        special = SPECIAL.get(i)
        tokens.append(special or f"<|reserved_{i}|>")
        types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.UNUSED)
    w = self.gguf_writer
    w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("gpt-4o")
    w.add_token_list(tokens); w.add_token_types(types)
    w.add_token_merges(["\u0120 \u0120"])
    w.add_bos_token_id(199998); w.add_eos_token_id(200002); w.add_pad_token_id(199999)

gpt_oss.GptOssModel.set_vocab = set_vocab
sys.argv = [src + "/convert_hf_to_gguf.py", *argv]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert_gguf(checkpoint: Path, out: Path, src: Path, lock: str | None,
                 outtype: str = "bf16") -> Path:
    """``outtype`` is the non-experts' type: ``bf16``, or ``q8_0`` (the official layout); the
    experts stay MXFP4 either way."""
    if out.exists():
        return out
    need_free(out.parent, CHECKPOINT_BYTES, "the GGUF file")
    tmp = out.with_name(out.name + ".partial")
    cmd = [sys.executable, "-c", _CONVERT, str(src), str(checkpoint), "--outfile", str(tmp),
           "--outtype", outtype]
    with locked(lock, "GGUF conversion (about 160 s)"):
        rc = subprocess.run(cmd).returncode
    if rc or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise BenchError(f"convert_hf_to_gguf.py failed (exit {rc}); see its output above")
    tmp.rename(out)
    return out


# -- 4. measuring ------------------------------------------------------------------------------
def _status(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def watched(cmd: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float = 1800) -> tuple[str, float, dict[str, int]]:
    """Run ``cmd``; its stdout, wall seconds and the peak RssAnon/RssFile/VmHWM seen."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    peak: dict[str, int] = {}
    out_parts: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: out_parts.append(proc.stdout.read()))  # type: ignore[union-attr]
    err_parts: list[str] = []
    err_reader = threading.Thread(target=lambda: err_parts.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    err_reader.start()
    while proc.poll() is None:
        for k, v in _status(proc.pid).items():
            peak[k] = max(peak.get(k, 0), v)
        if time.perf_counter() - started > timeout:
            proc.kill()
        time.sleep(0.05)
    wall = time.perf_counter() - started
    reader.join()
    err_reader.join()
    if proc.returncode:
        raise BenchError(f"{' '.join(cmd[:3])}... failed ({proc.returncode}):\n"
                         f"{''.join(err_parts)[-3000:]}")
    return "".join(out_parts), wall, peak


def warm(paths: Sequence[Path]) -> None:
    """Read ``paths`` once so that the engine measured next finds them in the page cache."""
    started, total = time.perf_counter(), 0
    buf = bytearray(16 << 20)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    seconds = time.perf_counter() - started
    log(f"page cache warmed: {total / 1e9:.1f} GB in {seconds:.0f} s")


def evict(paths: Sequence[Path]) -> None:
    """Drop ``paths`` from the page cache (what no process maps), so that reading the other
    engine's files next needs no reclaim, nor leaves the kernel reclaiming during its run."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_llamacpp(bindir: Path, gguf: Path, threads: int, repack: bool) -> dict[str, Any]:
    bench = [str(bindir / "llama-bench"), "-m", str(gguf), "-t", str(threads), "-p", "32,128",
             "-n", "32", "-r", "1", "-o", "json", "--repack", "1" if repack else "0"]
    out, _, peak = watched(bench)
    rows = json.loads(out)
    result: dict[str, Any] = {"peak": peak}
    for row in rows:
        key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        result[key] = row["avg_ts"]
    first = [str(bindir / "llama-completion"), "-m", str(gguf), "-t", str(threads), "-p",
             PROMPT32, "-n", "1", "--temp", "0", "--no-warmup", "-no-cnv", "--simple-io"]
    if not repack:
        first.append("--no-repack")
    _, wall, first_peak = watched(first)
    result["first_token_s"] = wall
    result["first_peak"] = first_peak
    return result


def llamacpp_decode(bindir: Path, gguf: Path, threads: int) -> float:
    """llama.cpp's default mode (repack on), decode only: ``llama-bench -p 0 -n 32``, tok/s."""
    bench = [str(bindir / "llama-bench"), "-m", str(gguf), "-t", str(threads), "-p", "0",
             "-n", "32", "-r", "1", "-o", "json", "--repack", "1"]
    out, _, _ = watched(bench)
    return float(json.loads(out)[0]["avg_ts"])


def paired_decode(bindir: Path, gguf: Path, checkpoint: Path, threads: int, pairs: int,
                  modes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``pairs`` rounds of llama.cpp's default decode then each oss_runtime mode's, each engine's
    files read right before it: per-round ratios, so that the machine's drift from minute to
    minute (up to 1.4x between runs here) falls on both sides of each ratio alike. The
    oss_runtime modes take turns at running first after the page cache is read, and the other
    engine's file is dropped from the page cache before each read, so every read starts from
    the same state. There is no untimed oss_runtime process (``--warmup``) in a round: the
    first processes after the read ran slower here (see docs/benchmarks.md)."""
    rounds: list[dict[str, float]] = []
    shards = sorted(checkpoint.glob("*.safetensors"))
    for i in range(pairs):
        evict(shards)
        warm([gguf])
        row = {"llama.cpp default": llamacpp_decode(bindir, gguf, threads)}
        evict([gguf])
        warm(shards)
        labels = list(modes)
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:  # first in turn
            row[label] = run_oss(checkpoint, threads, extra_env=modes[label])["steady_tok_s"]
        rounds.append({label: row[label] for label in ["llama.cpp default", *labels]})
        log(f"pair {i + 1}: {row}")
    return {"rounds": rounds}


def paired_table(paired: dict[str, Any]) -> str:
    """Median decode tok/s per engine and the median of the per-round ratios."""
    rounds = paired["rounds"]
    lines = ["| engine | decode tok/s, per round | median | ratio to llama.cpp, per round | "
             "median ratio |", "|---|---|---|---|---|"]
    for label in rounds[0]:
        vals = [r[label] for r in rounds]
        ratios = [r[label] / r["llama.cpp default"] for r in rounds]
        name = "llama.cpp default (repack on)" if label == "llama.cpp default" else f"oss_runtime, {label}"
        lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in vals)} | "
                     f"{statistics.median(vals):.2f} | {', '.join(f'{x:.2f}x' for x in ratios)} | "
                     f"{statistics.median(ratios):.2f}x |")
    return "\n".join(lines)


def run_oss(checkpoint: Path, threads: int, prompt: int = 32, new: int = 32,
            extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ, **(extra_env or {}),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, __file__, "--child", str(checkpoint), "--threads", str(threads),
           "--prompt", str(prompt), "--new", str(new)]
    out, wall, peak = watched(cmd, env=env)
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["peak"], result["process_wall_s"] = peak, wall
    return result


def _child(checkpoint: str, threads: int, prompt: int, new: int) -> None:
    other = os.environ.get("VS_LLAMACPP_IMPORT_ROOT")  # another tree's oss_runtime (A/B)
    if other:
        sys.path.insert(0, other)
    from oss_runtime.benchmark import run_benchmark

    r = run_benchmark(checkpoint, prompt_tokens=prompt, new_tokens=new, threads=threads,
                      steady_tokens=new, extra_prefills=(128,), load_kwargs={"progress": False})
    print(json.dumps(r))


# -- report ------------------------------------------------------------------------------------
def table(llama: dict[str, Any], plain: dict[str, Any], oss: list[dict[str, Any]],
          variants: dict[str, dict[str, Any]] | None = None,
          q8: dict[str, Any] | None = None) -> str:
    """The comparison table; with ``q8`` (llama.cpp on Q8_0 non-experts), variants that ran with
    int8 linear weights (``"q8": True``) are compared with that row instead of the default."""
    gb = 1e9

    def ratio(v: float, base: float, higher_better: bool = True) -> str:
        r = v / base if higher_better else base / v
        return f"{v:.2f} ({r:.2f}x)"

    def mem(peak: dict[str, int]) -> str:
        return (f"{peak.get('RssAnon', 0) / gb:.2f} anon + {peak.get('RssFile', 0) / gb:.2f} file "
                f"(peak RSS {peak.get('VmHWM', 0) / gb:.2f})")

    best = max(oss, key=lambda r: r["decode_tok_s"])
    ft = min(r["first_token_since_start_s"] for r in oss)
    lines = [
        "| engine | pp32 tok/s | pp128 tok/s | decode tok/s (tg32) | first token s | memory GB |",
        "|---|---|---|---|---|---|",
    ]
    engines = [("llama.cpp default (repack on)", llama),
               ("llama.cpp `--repack 0` (plain mmap)", plain)]
    if q8:
        engines.append(("llama.cpp official layout: Q8_0 non-experts (repack on)", q8))
    for label, r in engines:
        lines.append(f"| {label} | {ratio(r['pp32'], llama['pp32'])} | "
                     f"{ratio(r['pp128'], llama['pp128'])} | {ratio(r['tg32'], llama['tg32'])} | "
                     f"{ratio(r['first_token_s'], llama['first_token_s'], False)} | "
                     f"{mem(r['peak'])} |")
    lines.append(
        f"| oss_runtime, steady state | {ratio(best['prefill_tok_s'], llama['pp32'])} | "
        f"{ratio(best['extra_prefill_tok_s']['128'], llama['pp128'])} | "
        f"{ratio(best['steady_tok_s'], llama['tg32'])} | "
        f"{ratio(ft, llama['first_token_s'], False)} | {mem(best['peak'])} |")
    lines.append(
        f"| oss_runtime, first 32 tokens of a fresh process | | | "
        f"{ratio(best['decode_tok_s'], llama['tg32'])} | | |")
    for label, r in (variants or {}).items():
        base = q8 if q8 and r.get("q8") else llama
        label += " (ratios against the Q8_0 row)" if base is q8 else ""
        lines.append(
            f"| oss_runtime, {label}: steady / first 32 tokens | "
            f"{ratio(r['prefill_tok_s'], base['pp32'])} | "
            f"{ratio(r['extra_prefill_tok_s']['128'], base['pp128'])} | "
            f"{ratio(r['steady_tok_s'], base['tg32'])} / {ratio(r['decode_tok_s'], base['tg32'])} | "
            f"{ratio(r['first_token_since_start_s'], base['first_token_s'], False)} | "
            f"{mem(r['peak'])} |")
    return "\n".join(lines)


NOTES = """\
- Ratios in brackets are against llama.cpp's default; for the first token a ratio above 1 means
  faster. Each figure is one run (runs drift by up to 1.4x on this shared 2-core machine).
- llama.cpp: `llama-bench -t T -p 32,128 -n 32 -r 1 --repack 1|0` (it warms up first, so its tg32
  is its steady state); first token = wall time of `llama-completion -n 1` on a 32-token prompt,
  load included. Memory: peak RssAnon and RssFile sampled every 50 ms from /proc/PID/status
  over the llama-bench process.
- oss_runtime (`load_gpt_oss_20b(dir)`, mapped MXFP4 experts, bf16 elsewhere): one fresh
  process per round; first token counted from the process start (Python and torch import
  included); "first 32 tokens" is the decode right after the 32-token prefill, "steady state"
  the 32 tokens after those; prefill 128 runs last in the same process.
- The checkpoint is `oss_runtime.synth` shape `20b`: random data, so routing varies per token.
  Each engine's files are read once right before its runs (page cache warm); the machine has
  24 GB, so the two 13.8 GB files do not both stay cached.
- This machine's page cache is trimmed by DAMON (`pageout` of unmapped file pages idle for about
  60 s, at up to 128 MB/s): pages an engine has mapped are safe, the rest may have to be read
  again from disk. llama.cpp maps its whole file at load (`MAP_POPULATE`); oss_runtime maps
  pages as tokens touch them, or prefaults its experts in the background with
  `OSS_RUNTIME_PREFAULT=1` (opt-in; a variant row when measured).
- The CPU flags decide the kernels: with AVX2 only (no AVX-512), oss_runtime's exact MXFP4 kernel
  reads 11-12 GB/s of weights from memory on 2 threads and the int8 option 19-21 GB/s (see "decode
  mat-vecs from memory"); the figures in issue 18 (oss_runtime 2.21 tok/s, llama.cpp 3.56) came
  from a host that exposed AVX-512.
- This machine drifts by up to 1.4x from one run to the next (llama.cpp's default decoded 3.87
  and 5.43 tok/s in two runs 15 minutes apart), so single rows compare poorly across runs;
  `--pairs N` measures decode alone in N rounds, llama.cpp then oss_runtime each round, and
  reports the ratios round by round.
- `--warmup` runs one oss_runtime process before the measured ones and discards it: the first
  process after the page cache is read was up to 3x slower at prefill, whichever row it was.
"""


def machine_notes() -> str:
    """The CPU's vector extensions and any proactive page-cache reclaim (both move the numbers)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    isa = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if x in flags]
    out = f"CPU extensions: {', '.join(isa) or 'none of avx2/avx512'}"
    damon = Path("/sys/kernel/mm/damon/admin/kdamonds/0")
    with contextlib.suppress(OSError):
        if (damon / "state").read_text().strip() == "on":
            actions = {a.read_text().strip() for a in damon.glob("contexts/*/schemes/*/action")}
            out += f"; DAMON is on ({', '.join(sorted(actions))})"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", type=Path,
                   default=Path.home() / ".cache" / "oss-runtime" / "llamacpp")
    p.add_argument("--work-dir", type=Path, default=Path("/var/tmp/oss-vs-llamacpp"),
                   help="checkpoint and GGUF (about 28 GB)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="oss_runtime fresh processes")
    p.add_argument("--warmup", action="store_true",
                   help="one untimed oss_runtime process before the measured ones (the first "
                        "process after the page cache is read runs slower, whichever row it is)")
    p.add_argument("--lock", default="/tmp/bench.lock", help="flock file ('' for none)")
    p.add_argument("--skip-build", action="store_true", help="use --cache-dir's tools as they are")
    p.add_argument("--skip-llamacpp", action="store_true", help="measure only oss_runtime")
    p.add_argument("--prepare-only", action="store_true", help="build, write, convert; no runs")
    p.add_argument("--q8", action="store_true",
                   help="also convert a GGUF with Q8_0 non-experts (the official layout, 13 GB "
                        "more disk) and run llama.cpp's default on it; variants with "
                        "OSS_RUNTIME_LINEAR_WEIGHTS=int8 are compared with that row")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:NAME=VALUE[,...]",
                   help="one more oss_runtime round with these environment variables, e.g. "
                        "'no prefault:OSS_RUNTIME_PREFAULT=0' (repeatable); "
                        "VS_LLAMACPP_IMPORT_ROOT=DIR imports oss_runtime from DIR (an older tree)")
    p.add_argument("--pairs", type=int, default=0, metavar="N",
                   help="instead of the table: N rounds of decode alone, llama.cpp's default "
                        "then oss_runtime exact and each --variant with bf16 linear weights, "
                        "compared round by round")
    p.add_argument("--json", type=Path, help="also write all results here")
    p.add_argument("--write", action="store_true", help="put the table into docs/benchmarks.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--prompt", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--new", type=int, default=32, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.threads, args.prompt, args.new)
        return 0
    lock = args.lock or None
    checkpoint = write_random_checkpoint(args.work_dir / "gpt-oss-20b-random", lock)
    if not args.skip_llamacpp:
        bindir = args.cache_dir / "build" / "bin"
        if not args.skip_build:
            bindir = build_llamacpp(args.cache_dir, lock)
        elif not (bindir / TARGETS[0]).exists():
            raise BenchError(f"--skip-build: no {bindir / TARGETS[0]}")
        gguf = convert_gguf(checkpoint, args.work_dir / "gpt-oss-20b-random-bf16.gguf",
                            llama_source(args.cache_dir), lock)
        if args.q8:
            gguf_q8 = convert_gguf(checkpoint, args.work_dir / "gpt-oss-20b-random-q8_0.gguf",
                                   llama_source(args.cache_dir), lock, outtype="q8_0")
    if args.prepare_only:
        return 0
    if args.pairs:
        if args.skip_llamacpp or args.write:
            raise BenchError("--pairs compares with llama.cpp and prints its own table: "
                             "drop --skip-llamacpp and --write")
        modes: dict[str, dict[str, str]] = {"exact": {}}
        for spec in args.variant:  # the same layout as llama.cpp's default: bf16 non-experts
            label, _, assignments = spec.partition(":")
            env = dict(a.partition("=")[::2] for a in assignments.split(","))
            if env.get("OSS_RUNTIME_LINEAR_WEIGHTS") != "int8":
                modes[label] = env
        with locked(lock, "paired decode"):
            paired = paired_decode(bindir, gguf, checkpoint, args.threads, args.pairs, modes)
        if args.json:
            args.json.write_text(json.dumps(paired, indent=2))
        print(paired_table(paired))
        return 0
    results: dict[str, Any] = {}
    with locked(lock, "measuring both engines"):
        if not args.skip_llamacpp:
            warm([gguf])
            results["llama_default"] = run_llamacpp(bindir, gguf, args.threads, repack=True)
            log(f"llama.cpp default: {results['llama_default']}")
            results["llama_plain"] = run_llamacpp(bindir, gguf, args.threads, repack=False)
            log(f"llama.cpp --repack 0: {results['llama_plain']}")
            if args.q8:
                warm([gguf_q8])
                results["llama_q8"] = run_llamacpp(bindir, gguf_q8, args.threads, repack=True)
                log(f"llama.cpp Q8_0 non-experts: {results['llama_q8']}")
        results["oss"] = []
        warm(sorted(checkpoint.glob("*.safetensors")))
        if args.warmup:
            log(f"oss_runtime warm-up, not counted: {run_oss(checkpoint, args.threads)}")
        for i in range(args.rounds):
            results["oss"].append(run_oss(checkpoint, args.threads))
            log(f"oss_runtime round {i + 1}: {results['oss'][-1]}")
        results["variants"] = {}
        for spec in args.variant:
            label, _, assignments = spec.partition(":")
            env = dict(a.partition("=")[::2] for a in assignments.split(","))
            q8 = env.get("OSS_RUNTIME_LINEAR_WEIGHTS") == "int8"
            if q8:  # its int8 copy, once written, is read right before, like the checkpoint
                from oss_runtime.q8weights import default_folder

                warm(sorted(default_folder().glob(f"{checkpoint.name}-*.safetensors")))
            results["variants"][label] = {**run_oss(checkpoint, args.threads, extra_env=env),
                                          "q8": q8}
            log(f"oss_runtime {label}: {results['variants'][label]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.skip_llamacpp:
        print(json.dumps(results["oss"], indent=2))
        return 0
    out = table(results["llama_default"], results["llama_plain"], results["oss"],
                results["variants"], results.get("llama_q8"))
    print(out)
    if args.write:
        from _docs import write_section

        machine = (f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; "
                   f"{machine_notes()}")
        cmd = shlex.join(["python", "bench/vs_llamacpp.py", *(argv if argv is not None
                                                             else sys.argv[1:])])
        write_section(SECTION, f"Reproduce with `{cmd}` ({machine}, "
                               f"{time.strftime('%Y-%m-%d')}).\n\n{out}\n\n{NOTES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
