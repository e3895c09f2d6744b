"""Benchmark: `oss-runtime serve` against the same model in process, side by side, one run.

Loads the checkpoint once (`load_gpt_oss_20b`), then on the same warm model:

* in process: `oss_runtime.chat.sample_tokens` (the loop `rt.generate` runs) over the prompt's
  token ids: time to the first token and decode tokens/s;
* through the server (the real app on uvicorn, 127.0.0.1, a thread of this process; the
  client in a process of its own, as real clients are): a streamed ``POST /v1/completions``
  with the same token ids and greedy decoding: time from the request to the first streamed
  token, and decode tokens/s from the chunks' arrival times; the two alternate, round by
  round;
* ``--clients`` concurrent streamed requests: aggregate tokens/s and p50/p95 latency.

The default is the full 20B shape (``oss-runtime synth DIR --shape 20b-sparse``: real sizes,
file holes, ~4-5 GB RSS); ``--shape tiny`` runs in seconds. The sparse checkpoint has no
tokenizer, so the tests' tiny harmony tokenizer is written beside it (the weights are zeros, so
every token is the same; the bytes and arithmetic per token are the real model's).

    python bench/serve_runtime.py --dir /tmp/oss-20b-sparse --new-tokens 8 --clients 4 --write
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from _docs import write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "oss_runtime")]

SECTION = "## oss_runtime: serve"


def _checkpoint(directory: Path, shape: str) -> Path:
    from _oss_tokenizer import write_tokenizer

    from oss_runtime.synth import synth_config, write_checkpoint

    if not (directory / "config.json").exists():
        sparse = shape == "20b-sparse"
        write_checkpoint(directory, synth_config(shape), sparse=sparse, shards=3 if sparse else 1)
    if not (directory / "tokenizer.json").exists():
        write_tokenizer(directory)
    return directory


def _in_process(rt: Any, prompt: list[int], new: int) -> dict[str, float]:
    from oss_runtime.chat import HarmonyParser, sample_tokens

    stops = set(HarmonyParser(rt.tokenizer).stops)
    started = time.perf_counter()
    times = [time.perf_counter() for _ in sample_tokens(rt.model, prompt, new, stops)]
    return _timing(started, times)


def _timing(started: float, times: list[float]) -> dict[str, float]:
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"ttft": times[0] - started, "decode": decode, "total": times[-1] - started,
            "tokens": len(times)}


_CLIENT = """
import json, sys, time
import httpx
url, prompt, new = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
body = {"model": "gpt-oss-20b", "prompt": prompt, "max_tokens": new, "temperature": 0,
        "stream": True}
times = []
started = time.perf_counter()
with httpx.stream("POST", url + "/v1/completions", json=body, timeout=3600) as r:
    r.raise_for_status()
    for line in r.iter_lines():
        if line.startswith("data: {"):
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["finish_reason"] is None:
                times.append(time.perf_counter())
print(json.dumps({"started": started, "times": times}))
"""


def _through_server(url: str, prompt: list[int], new: int) -> dict[str, float]:
    """A streamed request from a client in its own process (as real clients are: one in
    this process would share the GIL with the generation thread). ``perf_counter`` is the
    system's monotonic clock, the same in both processes."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _CLIENT, url, json.dumps(prompt), str(new)],
                         capture_output=True, text=True, check=True, timeout=3600).stdout
    got = json.loads(out)
    return _timing(got["started"], got["times"])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(directory: Path, shape: str, new: int, clients: int, rounds: int = 3
        ) -> dict[str, Any]:
    from _oss_serve import RunningServer

    from oss_runtime import load_gpt_oss_20b
    from oss_runtime.benchmark import memory_status
    from oss_runtime.chat import render_prompt

    ck = _checkpoint(directory, shape)
    rt = load_gpt_oss_20b(ck, progress=False)
    prompt = render_prompt(rt.tokenizer, "Why is the sky blue?")
    _in_process(rt, prompt, 2)  # warm-up (first touch of the pages, the kernel)
    server = RunningServer(rt, max_queue=max(16, clients))
    try:
        _through_server(server.url, prompt, 2)
        local, remote = [], []
        for _ in range(rounds):  # interleaved: both see the machine's slow spells alike
            local.append(_in_process(rt, prompt, new))
            remote.append(_through_server(server.url, prompt, new))
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            many = list(pool.map(lambda _: _through_server(server.url, prompt, new),
                                 range(clients)))
        wall = time.perf_counter() - started
    finally:
        server.stop()
    return {"shape": shape, "plan": f"{rt.plan.device}, {rt.plan.backend}, {rt.plan.compute}",
            "prompt_tokens": len(prompt), "new_tokens": new, "clients": clients,
            "local": local, "remote": remote, "many": many, "wall": wall,
            "aggregate": sum(m["tokens"] for m in many) / wall, "rss": memory_status()}


def table(result: dict[str, Any]) -> str:
    best = {k: {"ttft": min(r["ttft"] for r in result[k]), "decode": max(r["decode"]
                                                                         for r in result[k])}
            for k in ("local", "remote")}
    lat = [m["total"] for m in result["many"]]
    over_ttft = best["remote"]["ttft"] / best["local"]["ttft"] - 1
    over_dec = best["local"]["decode"] / best["remote"]["decode"] - 1
    n = result["clients"]
    rows = [
        "| metric | in process (`sample_tokens`, as `rt.generate`) | through the server "
        "(streamed `/v1/completions`) | overhead |",
        "|---|---|---|---|",
        f"| time to first token (best of {len(result['local'])}) | {best['local']['ttft']:.2f} s | "
        f"{best['remote']['ttft']:.2f} s | {over_ttft:+.1%} |",
        f"| decode (best of {len(result['local'])}) | {best['local']['decode']:.2f} tok/s | "
        f"{best['remote']['decode']:.2f} tok/s | {over_dec:+.1%} |",
        f"| {n} concurrent clients: aggregate | | {result['aggregate']:.2f} tok/s "
        f"({n} x {result['new_tokens']} tokens in {result['wall']:.1f} s) | |",
        f"| {n} concurrent clients: latency p50 / p95 | | {_pct(lat, 0.5):.1f} s / "
        f"{_pct(lat, 0.95):.1f} s | |",
    ]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/oss-20b-sparse"))
    parser.add_argument("--shape", default="20b-sparse", choices=("20b-sparse", "tiny", "wide"))
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved in-process and server runs (best of each)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = run(args.dir, args.shape, args.new_tokens, args.clients, args.rounds)
    text = table(result)
    print(text)
    print(json.dumps({k: v for k, v in result.items() if k != "rss"}, indent=1, default=str))
    if args.write:
        head = (f"Reproduce with `python bench/serve_runtime.py --new-tokens {args.new_tokens} "
                f"--clients {args.clients} --write` ({platform.machine()}, {os.cpu_count()} "
                f"cores, Python {platform.python_version()}; {result['shape']} checkpoint, "
                f"{result['plan']}, prompt {result['prompt_tokens']} tokens).")
        write_section(SECTION, head + "\n\n" + text + "\n\n" + NOTES)
    return 0


NOTES = """\
- **One request at a time.** The server does not batch: a CPU decode of gpt-oss-20b reads
  ~3.7 GB of weights per token and is memory-bound, so requests wait in a bounded FIFO
  (`--max-queue`) and run in arrival order. With N concurrent clients the aggregate equals the
  single-stream rate, and the latency of the k-th client is about k single requests.
- **What the overhead holds.** HTTP on loopback, JSON and SSE framing, the token's trip from the
  generation thread to the event loop, incremental detokenization, and the GIL the event loop
  shares with the generation thread (the client runs in a process of its own). The time to
  first token through the server includes the request's prefill, as in process."""


if __name__ == "__main__":
    raise SystemExit(main())
