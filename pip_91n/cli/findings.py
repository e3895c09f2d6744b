"""What ``pip-91n doctor`` finds (``Finding``), and its checks of pip-91n's own settings: the
request log, the verification policy and the cache dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pip_91n.settings.config import MirrorConfig

__all__ = ["Finding", "check_cache_dir", "check_log", "check_verify"]


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | info | warn | error
    message: str
    fix: str = ""


def check_log(config: MirrorConfig) -> Finding | None:
    """``PIP_91N_LOG``: a file it names must be writable (else the hook turns the log off)."""
    if not config.log or config.log == "-":
        return None
    where = config.source("log")
    try:
        with open(config.log, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return Finding("log", "error", f"{where}: cannot write the request log {config.log} "
                       f"({exc.strerror or exc}); pip runs without it",
                       "point it at a writable file, `-` for stderr, or unset it")
    return Finding("log", "ok", f"request log {config.log} is writable ({where})")


def check_verify(config: MirrorConfig) -> Finding:
    """``PIP_91N_VERIFY``, and whether the chain can satisfy it (one operator cannot)."""
    where, policy = config.source("verify"), config.verify
    operators = len({m.failure_domain for m in config.chain})
    if policy == "off":
        return Finding("verify", "warn", f"verify = off ({where}): each file is used on the "
                       "word of the one mirror whose page pip read",
                       "set PIP_91N_VERIFY=quorum (the default): a second source confirms each")
    if operators < 2:
        then = "refuses every file" if policy == "strict" else "trusts it as pip trusts -i"
        return Finding("verify", "warn", f"verify = {policy} ({where}), but the chain has one "
                       f"operator only, so no file can be confirmed: pip-91n {then}",
                       "add a mirror of another operator (e.g. pypi) to PIP_91N_MIRRORS")
    settles = ("pypi.org settles disagreements" if any(m.name == "pypi" for m in config.chain)
               else "without pypi in the chain, a 1:1 disagreement stops that file")
    return Finding("verify", "ok", f"verify = {policy} ({where}): a second source among "
                   f"{operators} operators confirms each file; {settles}")


def check_cache_dir(cache_dir: Path) -> Finding:
    import tempfile

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Finding("cache dir", "error",
                       f"{cache_dir} is not writable ({exc.strerror or exc}): no health memory "
                       "and no resumable downloads",
                       "set PIP_91N_CACHE_DIR (or cache_dir in the config file) to a writable "
                       f"directory, or fix the permissions of {cache_dir}")
    return Finding("cache dir", "ok", f"{cache_dir} is writable")
