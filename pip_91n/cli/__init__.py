"""The ``pip-91n`` command line (same as ``python -m pip_91n``).

``main(argv=None) -> int`` parses the arguments (``pip_91n.cli.parser``) and runs one
command, each in a module of its own here, imported only when it runs, so ``pip-91n
--version`` and ``--help`` import neither rich nor httpx. User mistakes and bad settings
print one clear message (no traceback) and map to the exit codes documented in docs/cli.md:

    0 ok · 1 a check failed · 2 usage error · 3 invalid configuration · 4 file error ·
    130 interrupted · 141 stdout closed early (a pipe)
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from pip_91n.cli.output import (
        EXIT_CONFIG,
        EXIT_INTERRUPTED,
        EXIT_IO,
        EXIT_USAGE,
        Output,
        UsageError,
    )
    from pip_91n.cli.parser import COMMANDS, build_parser
    from pip_91n.errors import ConfigError, Pip91nError

    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, argparse errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return 0
    out = Output(json_mode=args.json, color=args.color)
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        code: int = module.run(args, out)
        return code
    except UsageError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        out.error(str(exc))
        return EXIT_CONFIG
    except Pip91nError as exc:
        out.error(str(exc))
        return 1
    except BrokenPipeError:  # `pip-91n verify | head`: stop quietly, as a killed pipe would
        import os

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        out.error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return EXIT_IO
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
