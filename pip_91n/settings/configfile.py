"""pip-91n's TOML config files: where they are, reading one, and editing one in place.

The user file is ``PIP_91N_CONFIG``, else ``platformdirs.user_config_path("pip-91n")/
config.toml``; the site file is ``platformdirs.site_config_path("pip-91n")/config.toml``.
Reading gives a ``ConfigLayer`` (values with their line numbers); errors name ``file:line``.

Editing (``pip-91n use``, ``pip-91n config set|unset``) touches only the key being changed:
other keys, comments and blank lines stay as they were, and the new text replaces the old
file atomically (temporary file in the same directory, fsync, ``os.replace``), so a crash
never leaves a broken file behind. Values are validated before that by
``pip_91n.settings.config.update_config``. pip's own configuration is never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pip_91n.errors import ConfigError
from pip_91n.settings.values import KEYS, Source, platformdirs

__all__ = [
    "ConfigLayer",
    "config_paths",
    "edit_text",
    "format_value",
    "read_toml_layer",
    "toml_loads",
    "write_atomic",
]

HEADER = ("# pip-91n configuration: see docs/configuration.md.\n"
          "# Written by `pip-91n use` / `pip-91n config set`; edit freely.\n")


class ConfigLayer(NamedTuple):
    """The settings of one TOML file: values by key, with their line numbers."""

    path: str
    kind: str
    values: Mapping[str, Any]
    lines: Mapping[str, int]

    def source(self, key: str) -> Source:
        return Source(self.kind, self.path, self.lines.get(key))


def config_paths(environ: Mapping[str, str]) -> tuple[Path, Path]:
    """(user file, site file)."""
    dirs = platformdirs()
    user = environ.get("PIP_91N_CONFIG", "").strip()
    user_path = (Path(os.path.expanduser(user)) if user
                 else Path(dirs.user_config_path("pip-91n")) / "config.toml")
    return user_path, Path(dirs.site_config_path("pip-91n")) / "config.toml"


def toml_loads(text: str) -> dict[str, Any]:
    """``tomllib.loads`` (``tomli`` before Python 3.11), imported only when a file has text."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


def read_toml_layer(path: Path, kind: str) -> ConfigLayer | None:
    """The settings in ``path`` (None when it does not exist); errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pip-91n config file ({exc}); fix its "
                          "permissions or encoding (UTF-8), or point PIP_91N_CONFIG elsewhere"
                          ) from exc
    if not text.strip():
        return ConfigLayer(str(path), kind, {}, {})  # an empty file: no TOML parser needed
    try:
        data = toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        m = re.search(r"line (\d+)", str(exc))
        line = m.group(1) if m else str(max(1, len(text.splitlines())))
        raise ConfigError(f"{path}:{line}: invalid TOML ({exc}); fix the syntax, e.g. "
                          "mirrors = [\"tuna\", \"pypi\"]") from exc
    lines: dict[str, int] = {}
    for n, line_text in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*=", line_text)
        if m and m.group(1) not in lines:
            lines[m.group(1)] = n
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        key = unknown[0]
        loc = f"{path}:{lines[key]}" if key in lines else str(path)
        raise ConfigError(f"{loc}: unknown setting {key!r}; known settings: "
                          f"{', '.join(KEYS)}")
    return ConfigLayer(str(path), kind, data, lines)


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
                toml_loads("\n".join(lines[i:j + 1]))
            except ValueError:
                continue
            return i, j + 1
        return i, i + 1
    return None


def edit_text(text: str, key: str, value: Any | None) -> str:
    """``text`` with ``key`` set to ``value`` (None removes it); nothing else changes. A file
    that gets its first setting gets a header comment too."""
    lines = text.splitlines()
    span = _statement_span(lines, key)
    new = [] if value is None else [f"{key} = {format_value(value)}"]
    if span is not None:
        lines[span[0]:span[1]] = new
    elif new:
        at = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[", ln)), len(lines))
        lines[at:at] = new
    out = "\n".join(lines) + "\n" if lines else ""
    return HEADER + out if not text.strip() and out.strip() else out


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
