"""``pip-91n serve``: the mirror chain as a local simple index for uv, poetry, pdm, pip
without the hook, whole teams and CI (the optional ``serve`` extra: Starlette on uvicorn).

When clients can connect, the index URL is printed on stdout (one line, so a script can
read it: ``--port 0`` picks a free port); start-up notes and the request log go to stderr
(or to ``PIP_91N_LOG``). SIGINT or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import sys

from pip_91n.cli.output import EXIT_FAILED, EXIT_IO, EXIT_OK, Output, UsageError

__all__ = ["run"]


def _options(args: argparse.Namespace) -> tuple[str, int, str | None, int]:
    from pip_91n.settings.values import parse_size

    host = (args.host or "").strip()
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise UsageError(f"--host {args.host!r}: give an address to listen on, e.g. "
                         "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give a port from 1 to 65535 (0: any free one)")
    try:
        max_cache = parse_size(args.max_cache.strip())
    except ValueError as exc:
        raise UsageError(f"--max-cache: {exc}") from None
    return host, args.port, args.cache_dir, max_cache


def run(args: argparse.Namespace, out: Output) -> int:
    from pathlib import Path

    host, port, cache_dir, max_cache = _options(args)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        out.error(f"pip-91n serve needs the serve extra ({exc.name} is missing): "
                  "pip install 'pip-91n[serve]'")
        return EXIT_FAILED
    from pip_91n.serve.runner import ServeOptions, serve
    from pip_91n.settings.config import load_config

    config = load_config()
    if cache_dir is not None:
        root = Path(cache_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = None
    options = ServeOptions(host=host, port=port, cache_dir=root, max_cache=max_cache)

    def note(text: str) -> None:
        print(f"pip-91n serve: {text}", file=sys.stderr, flush=True)

    def ready(url: str) -> None:
        note(f"serving {url}; stop with Ctrl-C or SIGTERM")
        print(url, flush=True)

    try:
        serve(config, options, ready=ready, note=note)
    except OSError as exc:
        if exc.filename is None:  # binding failed: say which address
            out.error(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                      + (" (another server uses this port: pick one with --port)"
                         if getattr(exc, "errno", None) == 98 else ""))
            return EXIT_IO
        raise
    return EXIT_OK
