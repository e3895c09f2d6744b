"""Every pip-91n setting: its config-file key, its variable, its default, and the one parser
of its value.

The hook, ``pip-91n status``, ``doctor``, ``config set`` and the download options all read a
setting through ``parse_setting``, so they cannot disagree about what a value means or
whether it is valid. Every bad value raises ``ConfigError`` naming where it came from and an
example of a good one. Pure, but for ``default_cache_dir`` (a platform lookup).

Sizes follow one convention in both packages (GNU coreutils', and accelerate's for
``max_memory``): ``K``, ``M``, ``G``, ``T`` and ``KiB`` ... ``TiB`` are powers of 1024;
``KB``, ``MB``, ``GB``, ``TB`` are powers of 1000. ``32M`` is 33,554,432 bytes, ``16GB`` is
16,000,000,000.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pip_91n.errors import ConfigError

__all__ = [
    "DEFAULT_HEDGE_DELAY",
    "DEFAULT_SEGMENT_THRESHOLD",
    "DEFAULT_TIMEOUT",
    "KEYS",
    "VERIFY_POLICIES",
    "Source",
    "default_cache_dir",
    "parse_seconds",
    "parse_setting",
    "parse_size",
    "platformdirs",
    "size_text",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_HEDGE_DELAY = 0.75
DEFAULT_SEGMENT_THRESHOLD = 32 * 1024**2

#: Config-file key -> environment variable, for every setting a config file may hold.
KEYS: dict[str, str] = {
    "mirrors": "PIP_91N_MIRRORS",
    "timeout": "PIP_91N_TIMEOUT",
    "hedge_delay": "PIP_91N_HEDGE_DELAY",
    "cache_dir": "PIP_91N_CACHE_DIR",
    "log": "PIP_91N_LOG",
    "allow_http": "PIP_91N_ALLOW_HTTP",
    "segment_threshold": "PIP_91N_SEGMENT_THRESHOLD",
    "verify": "PIP_91N_VERIFY",
}
#: An example of a good value of each key, for error messages.
EXAMPLES: dict[str, str] = {
    "mirrors": 'mirrors = ["tuna", "pypi"]',
    "timeout": "timeout = 5",
    "hedge_delay": "hedge_delay = 0.75",
    "cache_dir": 'cache_dir = "/var/cache/pip-91n"',
    "log": 'log = "-"',
    "allow_http": 'allow_http = ["10.0.0.5"]',
    "segment_threshold": 'segment_threshold = "32M"',
    "verify": 'verify = "quorum"',
}
#: ``verify``: the sources' vote on each file (see ``pip_91n.chain.agreement``).
VERIFY_POLICIES = ("quorum", "strict", "off")
_SIZE = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?)(b?)|b)?\s*"


class Source(NamedTuple):
    """Where a setting came from: ``kind`` is env, user, site, pip or default."""

    kind: str
    where: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "default":
            return "built-in default"
        return f"{self.where}:{self.line}" if self.line else self.where


def parse_size(value: int | str) -> int:
    """Bytes of a size: ``1048576``, ``"32M"``, ``"1.5GiB"``, ``"16GB"`` (see the module
    docstring for the units). ``ValueError`` names the value and the spelling."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    m = re.fullmatch(_SIZE, value, re.IGNORECASE) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"cannot read {value!r} as a size; use bytes or a unit, e.g. 32M, "
                         "1.5GiB or 16GB (K/M/G/T and KiB..TiB: powers of 1024; KB..TB: "
                         "powers of 1000)")
    unit = (m.group(2) or "").lower()
    base = 1000 if m.group(4) and not m.group(3) else 1024
    return int(float(m.group(1)) * base ** (" kmgt".index(unit) if unit else 0))


def size_text(n: float) -> str:
    """A size for people, in the same units: ``512 B``, ``1.5 KiB`` ... ``10.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def parse_seconds(value: Any, key: str, where: Source | str, *, zero_ok: bool) -> float:
    """A number of seconds (``0`` only when ``zero_ok``); ``ConfigError`` otherwise."""
    try:
        n = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        n = math.nan
    if not math.isfinite(n) or n < 0 or (n == 0 and not zero_ok):
        need = "a number >= 0" if zero_ok else "a positive number of seconds"
        raise ConfigError(f"{where}: {key} must be {need}, got {value!r}; e.g. "
                          f"{EXAMPLES.get(key, f'{key} = 5')}")
    return n


def _hosts(value: Any, where: Source | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(h.strip() for h in value.split(",") if h.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{where}: allow_http must be a list of host names, e.g. "
                      f"{EXAMPLES['allow_http']}")


def _text(value: Any, key: str, where: Source | str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string path, got {value!r}; e.g. "
                          f"{EXAMPLES[key]}")
    return value


def parse_setting(key: str, value: Any, where: Source | str) -> Any:
    """The value of setting ``key`` as pip-91n uses it, from the raw ``value`` found at
    ``where`` (a variable's text or a TOML value). ``mirrors`` is parsed against the catalog
    by ``pip_91n.settings.config``; every other key is parsed here."""
    if key == "timeout":
        return parse_seconds(value, key, where, zero_ok=False)
    if key == "hedge_delay":
        return parse_seconds(value, key, where, zero_ok=True)
    if key == "allow_http":
        return _hosts(value, where)
    if key == "cache_dir":
        text = _text(value, key, where)
        return Path(os.path.expanduser(text)) if text else None
    if key == "log":
        return _text(value, key, where)
    if key == "segment_threshold":
        try:
            return parse_size(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: segment_threshold: {exc}") from None
    if key == "verify":
        policy = value.strip().lower() if isinstance(value, str) else None
        if policy not in VERIFY_POLICIES:
            raise ConfigError(f"{where}: verify must be quorum (a file needs a second source's "
                              "agreement, else one warning), strict (else refused) or off "
                              f"(trust each page), got {value!r}; e.g. {EXAMPLES[key]}")
        return policy
    raise KeyError(key)


def platformdirs() -> Any:
    """The ``platformdirs`` module. Inside pip it is pip's own copy, loaded already:
    importing a second one would cost every pip run ~2 ms and 1,300 objects, and both give
    the same user and site paths (their Linux, macOS and Windows rules are the same since
    platformdirs 3, the oldest copy a supported pip ships)."""
    loaded = sys.modules.get("pip._vendor.platformdirs")
    if loaded is not None:
        return loaded
    import platformdirs as standalone

    return standalone


def default_cache_dir() -> Path:
    """Where mirror health and partial downloads live when ``cache_dir`` is not set."""
    return Path(platformdirs().user_cache_path("pip-91n"))
