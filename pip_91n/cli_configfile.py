"""Editing the user config file for ``pip-91n use`` and ``pip-91n config set|unset``.

Only the key being changed is touched: other keys, comments and blank lines stay as they
were. The new text is parsed and validated (with the same rules as ``pip_91n.config``)
before it replaces the old file atomically (temporary file in the same directory, fsync,
``os.replace``), so a crash or a bad value never leaves a broken config behind. pip's own
configuration (pip.conf) is never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pip_91n.cli_output import UsageError
from pip_91n.config import KEYS, ConfigLayer, _config_paths, resolve_config
from pip_91n.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["KEYS", "env_var", "format_value", "normalize_key", "parse_values", "site_config_path",
           "update_config", "user_config_path"]

_LISTS = {"mirrors", "allow_http"}
_NUMBERS = {"timeout", "hedge_delay"}
_HEADER = ("# pip-91n configuration: see docs/configuration.md.\n"
           "# Written by `pip-91n use` / `pip-91n config set`; edit freely.\n")


def user_config_path(environ: Mapping[str, str]) -> Path:
    """``PIP_91N_CONFIG``, else ``platformdirs.user_config_path("pip-91n")/config.toml``."""
    return _config_paths(environ)[0]


def site_config_path(environ: Mapping[str, str]) -> Path:
    return _config_paths(environ)[1]


def env_var(key: str) -> str:
    return KEYS[key]


def normalize_key(name: str) -> str:
    """``hedge-delay``, ``HEDGE_DELAY`` and ``PIP_91N_HEDGE_DELAY`` all mean ``hedge_delay``."""
    key = name.strip().lower().replace("-", "_")
    if key.startswith("pip_91n_"):
        key = key[len("pip_91n_"):]
    if key not in KEYS:
        raise UsageError(f"unknown setting {name!r}; known settings: {', '.join(KEYS)}")
    return key


def parse_values(key: str, values: Sequence[str]) -> Any:
    """The TOML value for ``config set KEY VALUE...`` (lists split on commas and spaces)."""
    if not values:
        raise UsageError(f"config set {key}: give a value")
    if key in _LISTS:
        items = [i for v in values for i in re.split(r"[,\s]+", v) if i]
        if not items:
            raise UsageError(f"config set {key}: give at least one value")
        return items
    if len(values) != 1:
        raise UsageError(f"config set {key}: takes one value, got {len(values)}")
    value = values[0].strip()
    if key in _NUMBERS:
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{key} must be a number of seconds, got {value!r}") from None
        return int(number) if number.is_integer() else number
    return value


def format_value(value: Any) -> str:
    """A TOML literal for a string, number or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _statement_span(lines: list[str], key: str) -> tuple[int, int] | None:
    """(first, last+1) line indexes of the top-level ``key = ...`` statement, if present."""
    pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for i, line in enumerate(lines):
        if re.match(r"\s*\[", line):
            return None  # tables start: top-level keys are above
        if not pattern.match(line):
            continue
        for j in range(i, len(lines)):
            try:
                tomllib.loads("\n".join(lines[i:j + 1]))
            except tomllib.TOMLDecodeError:
                continue
            return i, j + 1
        return i, i + 1
    return None


def edit_text(text: str, key: str, value: Any | None) -> str:
    """``text`` with ``key`` set to ``value`` (None removes it); nothing else changes."""
    lines = text.splitlines()
    span = _statement_span(lines, key)
    new = [] if value is None else [f"{key} = {format_value(value)}"]
    if span is not None:
        lines[span[0]:span[1]] = new
    elif new:
        at = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[", ln)), len(lines))
        lines[at:at] = new
    return "\n".join(lines) + "\n" if lines else ""


def _validate(path: Path, text: str, environ: Mapping[str, str]) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - we only write valid TOML
        raise ConfigError(f"{path}: would not be valid TOML ({exc})") from exc
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; known settings: "
                          f"{', '.join(KEYS)}; remove it first")
    from pip_91n.catalog import load_catalog

    env = {k: v for k, v in environ.items() if k == "PIP_91N_ALLOW_HTTP"}
    resolve_config(env, (ConfigLayer(str(path), "user", data, {}),), catalog=load_catalog(),
                   default_cache_dir=Path("."))


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def update_config(path: Path, changes: Mapping[str, Any | None],
                  environ: Mapping[str, str] | None = None) -> str:
    """Apply ``changes`` (None removes a key) to the TOML file at ``path``; returns the new
    text. Raises ``ConfigError`` (nothing written) when the result would be invalid; hosts in
    ``PIP_91N_ALLOW_HTTP`` (from ``environ``, default ``os.environ``) count as allowed."""
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    text = old
    for key, value in changes.items():
        text = edit_text(text, key, value)
    if not old.strip() and text.strip():
        text = _HEADER + text
    _validate(path, text, os.environ if environ is None else environ)
    if text != old:
        write_atomic(path, text)
    return text
