"""The arguments of every ``pip-91n`` command, and which module runs each (``COMMANDS``)."""

from __future__ import annotations

import argparse

from pip_91n import __version__

__all__ = ["COMMANDS", "build_parser"]

_DESCRIPTION = (
    "pip-91n makes plain `pip install` fetch from an ordered chain of PyPI mirrors with "
    "failover and resumable, sha256-verified downloads. Configure it with PIP_91N_* "
    "environment variables or its TOML config file (see `pip-91n config show`)."
)
_EPILOG = (
    "exit codes: 0 ok, 1 a check found a problem, 2 usage error, 3 invalid configuration, "
    "4 file or directory error, 130 interrupted. Docs: docs/cli.md"
)

#: command -> (module whose ``run(args, out)`` runs it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("pip_91n.cli.status", "the effective chain, where each setting came from, "
               "mirror health and the pip hook"),
    "probe": ("pip_91n.cli.probe", "measure every mirror in parallel (bounded); --save "
              "stores the ranking"),
    "use": ("pip_91n.cli.config", "set the mirror chain in the user config file"),
    "config": ("pip_91n.cli.config", "show, get, set or unset pip-91n settings"),
    "env": ("pip_91n.cli.env", "print settings for a shell, Dockerfile, CI, uv, or (with "
            "--serve) poetry, pdm and pip pointed at pip-91n serve"),
    "doctor": ("pip_91n.cli.doctor", "diagnose the installation, pip config, mirrors and "
               "cache; exits 1 when something is wrong"),
    "cache": ("pip_91n.cli.cache", "list or purge partial downloads and mirror health state"),
    "verify": ("pip_91n.cli.verify", "check installed files against their RECORD sha256"),
    "serve": ("pip_91n.cli.serve", "serve the mirror chain as a local simple index for uv, "
              "poetry, pdm, pip and CI (needs pip-91n[serve])"),
}


def _common() -> argparse.ArgumentParser:
    """Options every subcommand accepts too (``pip-91n status --json``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="machine-readable JSON on stdout")
    p.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                   help="colour and tables: auto (on a terminal), always, never")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="pip-91n", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"pip-91n {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour and tables: auto (on a terminal), always, never")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                           parents=[common], epilog=_EPILOG)
        _add_arguments(name, p)
    return parser


def _add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    if name == "status":
        p.add_argument("--no-pip", action="store_true",
                       help="do not import pip to check that the hook patches it")
    elif name == "probe":
        p.add_argument("mirrors", nargs="*", metavar="NAME|URL",
                       help="mirrors to probe (default: the chain, or the catalog for auto)")
        p.add_argument("--catalog", action="store_true", help="probe every catalog mirror")
        p.add_argument("--budget", type=float, default=5.0, metavar="SECONDS",
                       help="time limit for the whole probe (default 5)")
        p.add_argument("--project", default="pip",
                       help="project page to fetch from each mirror (default pip)")
        p.add_argument("--save", action="store_true",
                       help="write the mirrors that answered, best first, to the user config")
    elif name == "use":
        p.add_argument("mirrors", nargs="+", metavar="NAME|URL",
                       help="catalog names, simple-index URLs, or auto")
        p.add_argument("--check", action="store_true",
                       help="probe the mirrors first; refuse when none answers")
    elif name == "config":
        csub = p.add_subparsers(dest="action", metavar="ACTION")
        csub.required = True
        csub.add_parser("show", help="every setting, its value and where it came from",
                        parents=[_common()])
        g = csub.add_parser("get", help="one setting's value", parents=[_common()])
        g.add_argument("key")
        s = csub.add_parser("set", help="write a setting to the user config file",
                            parents=[_common()])
        s.add_argument("key")
        s.add_argument("values", nargs="+", metavar="VALUE")
        u = csub.add_parser("unset", help="remove a setting from the user config file",
                            parents=[_common()])
        u.add_argument("key")
    elif name == "env":
        p.add_argument("--format", "-f", default="shell",
                       choices=("shell", "dockerfile", "github-actions", "gitlab-ci", "uv",
                                "uv-toml", "poetry", "pdm", "pip"),
                       help="output syntax (default shell); poetry, pdm and pip need --serve")
        p.add_argument("--serve", default=None, metavar="URL",
                       help="point the tool at a running `pip-91n serve` (its URL, e.g. "
                            "http://127.0.0.1:3144/simple/) instead of at the mirrors")
        p.add_argument("--all", action="store_true",
                       help="also include machine-local settings (cache_dir, log)")
        p.add_argument("--count", type=int, default=3, metavar="N",
                       help="uv formats: how many of the best-ranked mirrors to list (default 3)")
        p.add_argument("--probe", action="store_true",
                       help="rank an auto chain now instead of using the cached ranking")
    elif name == "doctor":
        p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
        p.add_argument("--offline", action="store_true",
                       help="skip the network checks (DNS, TLS, reachability)")
    elif name == "cache":
        csub = p.add_subparsers(dest="action", metavar="ACTION")
        csub.required = True
        csub.add_parser("list", help="partial downloads, mirror health and the auto ranking",
                        parents=[_common()])
        pg = csub.add_parser("purge", help="delete partial downloads and health state",
                             parents=[_common()])
        pg.add_argument("--partials", action="store_true", help="only the partial downloads")
        pg.add_argument("--health", action="store_true",
                        help="only the health state and the auto ranking")
    elif name == "serve":
        p.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
        p.add_argument("--port", type=int, default=3144,
                       help="port to listen on (default 3144; 0 picks a free one)")
        p.add_argument("--cache-dir", default=None, metavar="DIR",
                       help="where files and last good pages are kept (default: "
                            "<PIP_91N_CACHE_DIR>/serve)")
        p.add_argument("--max-cache", default="10G", metavar="SIZE",
                       help="most bytes of files kept, least recently used out first "
                            "(default 10G; K/M/G/T)")
    elif name == "verify":
        p.add_argument("packages", nargs="*", metavar="PKG",
                       help="distributions to check (default: all installed)")
        p.add_argument("--path", action="append", default=None, metavar="DIR",
                       help="look for distributions in DIR instead of sys.path (repeatable)")


