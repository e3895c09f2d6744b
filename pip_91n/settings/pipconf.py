"""pip's own index setting, read without importing pip.

Two values matter to pip-91n: the index pip would use (``PIP_INDEX_URL``, or ``index-url`` in
a pip config file), and the CA bundle pip trusts (``PIP_CERT``, or ``cert``). Files are found and merged as pip does: global
(``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``), user (``~/.pip/pip.conf``,
``~/.config/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE`` names an existing file), site
(``sys.prefix/pip.conf``), then ``PIP_CONFIG_FILE``; later files win, and an ``[install]``
section wins over ``[global]``. ``PIP_CONFIG_FILE=/dev/null`` means no file at all, as in pip.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["PipConfigFile", "PipIndex", "pip_cert", "pip_config_files", "pip_index_url",
           "read_pip_configs"]


class PipIndex(NamedTuple):
    """pip's index URL and where it was set (a variable, or ``file:line``)."""

    url: str
    where: str


def pip_config_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """pip's config files in load order (lowest precedence first); missing ones included."""
    env = os.environ if environ is None else environ
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    name = "pip.ini" if sys.platform == "win32" else "pip.conf"
    files: list[Path] = []
    if sys.platform == "win32":  # pragma: no cover - Windows only
        program_data = env.get("PROGRAMDATA", r"C:\ProgramData")
        files.append(Path(program_data) / "pip" / name)
    else:
        for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep):
            if d:
                files.append(Path(d) / "pip" / name)
        files.append(Path("/etc") / name)
    if not (env_file and os.path.exists(env_file)):
        home = Path(env.get("HOME") or Path.home())
        files.append(home / (("pip/" + name) if sys.platform == "win32" else ".pip/" + name))
        xdg = env.get("XDG_CONFIG_HOME") or str(home / ".config")
        if sys.platform == "win32":  # pragma: no cover
            files.append(Path(env.get("APPDATA", str(home))) / "pip" / name)
        else:
            files.append(Path(xdg) / "pip" / name)
    files.append(Path(sys.prefix) / name)
    if env_file:
        files.append(Path(env_file))
    return files


class PipConfigFile(NamedTuple):
    """One readable pip config file: its text and parsed sections, or why it does not parse."""

    path: Path
    text: str
    parser: configparser.RawConfigParser | None
    error: str | None = None

    def where(self, section: str | None, key: str) -> tuple[str, int | None]:
        """``path:line`` of ``key`` (in ``section``, or any section when None), and the line."""
        line = _line_of(self.text, section, key)
        return (f"{self.path}:{line}" if line else str(self.path)), line


def read_pip_configs(files: Sequence[Path]) -> Iterator[PipConfigFile]:
    """Each file that exists and decodes, parsed (``parser`` None and ``error`` set when it is
    not valid INI); missing or unreadable files are skipped."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            yield PipConfigFile(path, text, None, str(exc).splitlines()[0])
            continue
        yield PipConfigFile(path, text, parser)


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """The line number of ``key`` (``-`` and ``_`` alike) in ``section`` (None: any section)."""
    current = ""
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"\[\s*([^\]]+?)\s*\]", s)
        if m:
            current = m.group(1).lower()
        elif section in (None, current) and re.match(
            rf"{re.escape(key)}\s*[=:]", s.replace("_", "-"), re.I
        ):
            return n
    return None


def _pip_value(key: str, var: str, environ: Mapping[str, str] | None,
               files: Sequence[Path] | None) -> tuple[str, str] | None:
    """(value, where) of pip's option ``key``: the ``var`` variable, else the pip config files
    in pip's order, ``[install]`` over ``[global]``. Unreadable or malformed pip config files
    are ignored here: pip reports them itself."""
    env = os.environ if environ is None else environ
    value = env.get(var, "").strip()
    if value:
        return value, var
    found: dict[str, tuple[str, str]] = {}
    for conf in read_pip_configs(pip_config_files(env) if files is None else files):
        if conf.parser is None:
            continue
        for section in ("global", "install"):
            if not conf.parser.has_section(section):
                continue
            for name, raw in conf.parser.items(section):
                if name.replace("_", "-").lower() == key and raw.strip():
                    found[section] = (raw.strip(), conf.where(section, key)[0])
    return found.get("install") or found.get("global")


def pip_index_url(
    environ: Mapping[str, str] | None = None, files: Sequence[Path] | None = None
) -> PipIndex | None:
    """pip's configured index URL, or None when pip uses its default (pypi.org)."""
    found = _pip_value("index-url", "PIP_INDEX_URL", environ, files)
    return PipIndex(found[0].split()[0], found[1]) if found else None


def pip_cert(
    environ: Mapping[str, str] | None = None, files: Sequence[Path] | None = None
) -> tuple[str, str] | None:
    """(path, where) of pip's ``--cert`` CA bundle (``PIP_CERT`` or ``cert`` in pip's
    config), or None."""
    return _pip_value("cert", "PIP_CERT", environ, files)
