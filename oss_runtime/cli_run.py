"""The runtime subcommands of ``oss-runtime``: doctor, plan, chat, bench, serve (registered by
cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from oss_runtime.errors import OssRuntimeError

__all__ = ["add_parsers", "memory_table"]

GiB = 1024**3


def _load_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quantization", default="auto", help="auto | mxfp4 | dequantize")
    p.add_argument("--dtype", default=None, help="bfloat16 (default) | float32 | float16")
    p.add_argument("--max-memory", action="append", default=None, metavar="DEV=SIZE",
                   help="accelerate-style budget, e.g. cpu=12GiB or 0=20GiB (repeatable)")
    p.add_argument(
        "--expert-cache", default="0", help="bytes of dequantized experts kept, e.g. 2GB"
    )
    p.add_argument(
        "--expert-activations", default=None, choices=("float32", "int8"),
        help="float32: exact (default; $OSS_RUNTIME_EXPERT_ACTIVATIONS); int8: each expert's "
             "input rounded to int8 per 32 values, as llama.cpp does (faster on a CPU)")
    p.add_argument(
        "--linear-weights", default=None, choices=("exact", "int8"),
        help="exact: attention and lm_head weights as stored (default; "
             "$OSS_RUNTIME_LINEAR_WEIGHTS); int8: an int8 copy per 32 values, llama.cpp's Q8_0 "
             "(fewer bytes per token on a CPU; written once to the cache dir)")


def _max_memory(items: list[str] | None) -> dict[int | str, str] | None:
    if not items:
        return None
    out: dict[int | str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"oss-runtime: error: --max-memory wants DEV=SIZE, got {item!r}")
        out[int(key) if key.isdigit() else key] = value
    return out


def _on_disk(source: str) -> Any:
    """The checkpoint ``source`` names, from a local directory or the hub cache: plan and doctor
    read headers and never download."""
    from oss_runtime.checkpoint import inspect_checkpoint
    from oss_runtime.errors import SourceNotFound
    from oss_runtime.hubcache import hub_cache_dir
    from oss_runtime.resolve import looks_like_path, resolve_source

    try:
        return inspect_checkpoint(resolve_source(source, offline=True).path)
    except SourceNotFound:
        if looks_like_path(source):
            raise
        raise SourceNotFound(
            f"{source} is not (completely) in the Hugging Face cache at {hub_cache_dir()}; plan "
            "and doctor read the headers of a local copy and never download. Download it once "
            f"(`oss-runtime chat {source}` or load_gpt_oss_20b({source!r})), or pass a local "
            "directory."
        ) from None


def _options(args: argparse.Namespace) -> Any:
    from oss_runtime.api import _cache_bytes
    from oss_runtime.plan import LoadOptions
    from oss_runtime.switches import expert_activations, linear_weights

    return LoadOptions(device=args.device, quantization=args.quantization, dtype=args.dtype,
                       max_memory=_max_memory(args.max_memory),
                       expert_cache=_cache_bytes(args.expert_cache),
                       expert_activations=expert_activations(args.expert_activations),
                       linear_weights=linear_weights(args.linear_weights))


def memory_table(
    checkpoint: Any, options: Any = None, sizes: tuple[int, ...] = (8, 16, 32)
) -> list[str]:
    """Markdown rows: what the plan would be on a CPU-only machine with 8/16/32 GB of RAM."""
    import dataclasses

    from oss_runtime.environment import Environment
    from oss_runtime.plan import LoadOptions, plan_load

    opts = options or LoadOptions()
    rows = ["| RAM | plan | estimated peak | dequantized (transformers) |", "|---|---|---|---|"]
    for gb in sizes:
        env = Environment(cpu_count=4, total_ram=gb * GiB, available_ram=int((gb - 1.5) * GiB))
        plan = plan_load(
            checkpoint, env, dataclasses.replace(opts, device="cpu", quantization="auto")
        )
        fits = "fits" if not plan.warnings else "over budget: file-backed pages swap in and out"
        try:
            deq = plan_load(
                checkpoint, env, dataclasses.replace(opts, device="cpu", quantization="dequantize")
            )
            deq_text = f"{deq.estimated_peak_bytes / 1e9:.1f} GB, fits"
        except OssRuntimeError as exc:
            deq_text = "refused (" + str(exc).split(" but ")[0].split("needs ")[-1] + ")"
        rows.append(f"| {gb} GB | {plan.backend}, {plan.quantization} | "
                    f"{plan.estimated_peak_bytes / 1e9:.1f} GB ({fits}) | {deq_text} |")
    return rows


def _cmd_doctor(args: argparse.Namespace) -> int:
    from oss_runtime.environment import detect_environment
    from oss_runtime.plan import plan_load
    from oss_runtime.resolve import endpoint_chain
    from oss_runtime.spec import spec_from_config
    from oss_runtime.synth import synth_config
    from pip_91n.downloads import redact_text

    env = detect_environment()
    print("environment")
    for label, value in env.describe():
        print(f"  {label:<14}{value}")
    print(f"  {'hf endpoints':<14}{redact_text(' -> '.join(endpoint_chain()))}")
    if args.source:
        target: Any = _on_disk(args.source)
        print(f"\nplan for {target.root} (from its headers; no weights loaded)")
    else:
        target = spec_from_config(synth_config("20b"))
        print("\nplan for gpt-oss-20b (its published shapes; no weights loaded)")
    try:
        for line in plan_load(target, env, _options(args)).describe():
            print("  " + line)
    except OssRuntimeError as exc:
        print(f"  refused: {exc}")
        return 1
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from oss_runtime.environment import detect_environment
    from oss_runtime.plan import plan_load

    ck = _on_disk(args.source)
    print(f"checkpoint    {ck.root}: {len(ck.tensors)} tensors, {ck.total_bytes / 1e9:.2f} GB "
          f"({ck.expert_bytes() / 1e9:.2f} GB experts)")
    opts = _options(args)
    for line in plan_load(ck, detect_environment(), opts).describe():
        print(line)
    print("\nCPU-only machines:")
    print("\n".join(memory_table(ck, opts)))
    return 0


def _load(args: argparse.Namespace, source: Any = None) -> Any:
    from oss_runtime.api import load_gpt_oss_20b

    return load_gpt_oss_20b(source or args.source, device=args.device, dtype=args.dtype,
                            quantization=args.quantization, max_memory=_max_memory(args.max_memory),
                            expert_cache=args.expert_cache, offline=args.offline or None,
                            revision=args.revision, progress=not args.quiet,
                            expert_activations=args.expert_activations,
                            linear_weights=args.linear_weights)


def _cmd_chat(args: argparse.Namespace) -> int:
    from oss_runtime.api import has_tokenizer
    from oss_runtime.resolve import resolve_source

    # everything that can be wrong is found before the (long) load
    interactive = sys.stdin.isatty()
    first = "" if interactive else sys.stdin.readline()
    if not interactive and not first:
        print("oss-runtime: error: chat read nothing from stdin; run it at a terminal, or pipe "
              "in one message per line (echo 'Hello' | oss-runtime chat ...)", file=sys.stderr)
        return 2
    resolved = resolve_source(args.source, offline=args.offline or None, revision=args.revision,
                              progress=not args.quiet)
    if not has_tokenizer(resolved.path):
        print(f"oss-runtime: error: {resolved.path} has no tokenizer (tokenizer.json or "
              "tokenizer_config.json): chat needs one. Add the tokenizer files of the model, "
              "or use load_gpt_oss_20b(...).model with token ids.", file=sys.stderr)
        return 1
    rt = _load(args, resolved.path)
    if interactive:
        print(f"{rt!r}\n/reset clears the history, /exit quits.", file=sys.stderr)
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            print(">>> ", end="", file=sys.stderr, flush=True)
        line, first = (first or sys.stdin.readline()), ""
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history.clear()
            continue
        history.append({"role": "user", "content": text})
        pieces: list[str] = []
        for item in rt.generate(history, max_new_tokens=args.max_new_tokens, stream=True,
                                reasoning_effort=args.reasoning_effort, system=args.system,
                                return_analysis=True):
            channel, piece = item
            if channel == "final":
                pieces.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
            elif args.show_analysis:
                sys.stderr.write(piece)
        sys.stdout.write("\n")
        sys.stdout.flush()
        history.append({"role": "assistant", "content": "".join(pieces)})
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from oss_runtime.benchmark import format_table, run_benchmark

    kwargs = {"device": args.device, "dtype": args.dtype, "quantization": args.quantization,
              "max_memory": _max_memory(args.max_memory), "expert_cache": args.expert_cache,
              "offline": args.offline or None, "revision": args.revision, "progress": not args.quiet,
              "expert_activations": args.expert_activations, "linear_weights": args.linear_weights}
    result = run_benchmark(args.source, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                           threads=args.threads, load_kwargs=kwargs)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from oss_runtime.api import has_tokenizer
    from oss_runtime.resolve import looks_like_path, resolve_source
    from oss_runtime.serve.runner import serve
    from oss_runtime.serve.state import ServeSettings

    for flag, value, low in (("--max-queue", args.max_queue, 0), ("--max-tokens", args.max_tokens, 1),
                             ("--max-body-bytes", args.max_body_bytes, 1024),
                             ("--max-header-bytes", args.max_header_bytes, 1024)):
        if value is not None and value < low:
            print(f"oss-runtime: error: {flag} must be at least {low}, got {value}",
                  file=sys.stderr)
            return 2
    source = args.source
    if source is not None and looks_like_path(source):  # a local directory: check it now
        path = resolve_source(source).path
        if not has_tokenizer(path):
            print(f"oss-runtime: error: {path} has no tokenizer (tokenizer.json or "
                  "tokenizer_config.json): serve needs one and its chat template.",
                  file=sys.stderr)
            return 1
        source = str(path)
    settings = ServeSettings(
        model_name=args.model_name, api_key=args.api_key or os.environ.get("OSS_RUNTIME_API_KEY")
        or None, max_queue=args.max_queue, max_body=args.max_body_bytes,
        max_header=args.max_header_bytes, max_tokens=args.max_tokens,
        log_prompts=args.log_prompts)
    return serve(settings, args.host, args.port, lambda: _load(args, source))


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free)")
    p.add_argument("--model-name", default="gpt-oss-20b",
                   help="the model id clients send and /v1/models lists (default gpt-oss-20b)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /v1 (default: "
                        "$OSS_RUNTIME_API_KEY; none: no key)")
    p.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait behind the running one; more get 503 (default 16)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="default and ceiling of a request's max_tokens (default: the context)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024,
                   help="largest request body; larger gets 413 (default 4 MiB)")
    p.add_argument("--max-header-bytes", type=int, default=16 * 1024,
                   help="largest request line + headers; larger gets 431 (default 16 KiB)")
    p.add_argument("--log-prompts", action="store_true",
                   help="add each request's messages to its log line (off: no prompt text)")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("doctor", help="environment and load plan (no weights loaded)")
    p.add_argument(
        "source", nargs="?", default=None, help="a local or cached checkpoint (optional)"
    )
    _load_options(p)
    p.set_defaults(func=_cmd_doctor)
    p = sub.add_parser("plan", help="load plan and memory estimate from a checkpoint's headers")
    p.add_argument("source", help="checkpoint directory or cached repo id")
    _load_options(p)
    p.set_defaults(func=_cmd_plan)
    for name, func, text in (("chat", _cmd_chat, "interactive streaming chat (reads stdin)"),
                             ("bench", _cmd_bench, "load time, peak RSS, prefill/decode tokens/s"),
                             ("serve", _cmd_serve, "an OpenAI-compatible HTTP API (FastAPI)")):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "source",
            nargs="?",
            default=None,
            help="directory or repo id (default openai/gpt-oss-20b)",
        )
        _load_options(p)
        p.add_argument("--offline", action="store_true", help="never download")
        p.add_argument("--revision", default=None)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=func)
        if name == "chat":
            p.add_argument("--max-new-tokens", type=int, default=512)
            p.add_argument(
                "--reasoning-effort", choices=("low", "medium", "high"), default="medium"
            )
            p.add_argument("--system", default=None, help="developer instructions")
            p.add_argument(
                "--show-analysis", action="store_true", help="print the analysis channel to stderr"
            )
        elif name == "serve":
            _serve_options(p)
        else:
            p.add_argument("--prompt-tokens", type=int, default=32)
            p.add_argument("--new-tokens", type=int, default=8)
            p.add_argument("--threads", type=int, default=None)
            p.add_argument("--json", action="store_true")
