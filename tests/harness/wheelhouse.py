"""Fill the local wheelhouse the offline test venvs install from.

    python -m tests.harness.wheelhouse [DIR] [--pip VERSION ...]

DIR defaults to ``$PIP_91N_TEST_WHEELHOUSE`` or ``<repo>/.wheelhouse``. It gets the project's
runtime dependencies (from pyproject.toml, resolved for this Python), pip-tools with its
dependencies (for ``tests/hook/test_pip_tools.py``: the latest, and for each requested pip the
newest one that supports it; each group resolved for this Python) and the requested pip wheels (``--pip 24.0 --pip latest``; ``$PIP_91N_TEST_PIP`` is added when set). When
DIR already satisfies a group (checked offline) nothing is downloaded for it; otherwise ``python
-m pip download`` fetches what is missing with your normal pip configuration (index, proxy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .venvs import ENV_PIP, REPO, clean_env, wheelhouse_dir

FALLBACK_DEPS = ["httpx>=0.27", "platformdirs>=3.0", "packaging>=23.0", "tomli>=1.1; python_version < '3.11'"]

# pip-compile/pip-sync for the hook tests: the latest release, and for each pinned pip the
# newest release that declares support for it (pip-tools 7.7 requires pip>=26.2.2).
PIP_TOOLS = ["pip-tools"]


def project_dependencies() -> list[str]:
    """``[project].dependencies`` of the repo's pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ImportError:
            return list(FALLBACK_DEPS)
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _pip(args: Sequence[str], env: dict[str, str] | None, *, quiet: bool = False) -> int:
    cmd = [sys.executable, "-m", "pip", *args]
    if not quiet:
        print("+", " ".join(cmd), flush=True)
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False).returncode


def _groups(deps: list[str], pips: list[str]) -> list[tuple[list[str], bool]]:
    """Requirement sets resolved separately (two pip pins cannot share one resolve), each with
    whether it is a lone pip wheel (fetched with ``--no-deps``)."""
    import ensurepip

    groups = [(deps, False), (list(PIP_TOOLS), False)]
    for version in pips:
        groups.append((["pip"] if version == "latest" else [f"pip=={version}"], True))
    # pip-tools for each pinned pip, and for the pip fresh venvs get when none is named
    for version in dict.fromkeys([*pips, ensurepip.version()]):
        if version != "latest":
            groups.append(([*PIP_TOOLS, f"pip=={version}"], False))
    return groups


def fill(directory: Path, pips: Sequence[str]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    deps = project_dependencies()
    pips = list(dict.fromkeys(pips))
    offline_env = clean_env(directory / ".home")
    status = 0
    for group, pip_wheel in _groups(deps, pips):
        no_deps = ["--no-deps"] if pip_wheel else []
        common = ["download", "--only-binary=:all:", "--dest", str(directory), "-q", *no_deps]
        if group != ["pip"]:  # "latest" must ask the index; pins may already be here
            offline = [*common, "--no-index", "--find-links", str(directory), *group]
            if _pip(offline, offline_env, quiet=True) == 0:
                print(f"ok (already here): {' '.join(group)}")
                continue
        # use the user's own pip configuration (index, proxy) for the network step
        if _pip([*common, *group], None) != 0:
            print(f"error: could not download {group}", file=sys.stderr)
            status = 1
    wheels = sorted(p.name for p in directory.glob("*.whl"))
    print(f"wheelhouse {directory}: {len(wheels)} wheels")
    for name in wheels:
        print(f"  {name}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.wheelhouse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", type=Path, default=None, help="default: %(default)s")
    parser.add_argument("--pip", action="append", default=[], metavar="VERSION",
                        help="also fetch this pip wheel (a version or 'latest'); repeatable")
    args = parser.parse_args(argv)
    directory = (args.dir or wheelhouse_dir()).resolve()
    pips = list(args.pip)
    if os.environ.get(ENV_PIP, "").strip():
        pips.append(os.environ[ENV_PIP].strip())
    return fill(directory, pips)


if __name__ == "__main__":
    raise SystemExit(main())
