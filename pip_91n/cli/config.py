"""``pip-91n use`` and ``pip-91n config show|get|set|unset``: settings with their sources.

Reads go through ``pip_91n.settings.config.load_config`` (the precedence the hook uses);
writes go to the user config file only, through ``pip_91n.settings.config.update_config``
(one key at a time, validated, atomic). pip.conf is never written.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from typing import Any

from pip_91n._urls import redact
from pip_91n.cli.output import EXIT_FAILED, EXIT_OK, Output, UsageError
from pip_91n.errors import ConfigError
from pip_91n.settings.catalog import Catalog, mirror_spec
from pip_91n.settings.config import MirrorConfig, update_config
from pip_91n.settings.configfile import config_paths, read_toml_layer
from pip_91n.settings.values import KEYS

__all__ = ["normalize_key", "parse_values", "run", "setting_value", "settings", "value_text"]

_LISTS = {"mirrors", "allow_http"}
_NUMBERS = {"timeout", "hedge_delay"}


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


def setting_value(config: MirrorConfig, key: str, catalog: Catalog) -> Any:
    """The effective value of ``key`` in config-file form (``mirrors`` -> "auto" or a list),
    as shown to people: passwords in mirror URLs are ``***``."""
    if key == "mirrors":
        return "auto" if config.auto else [redact(mirror_spec(m, catalog)) for m in config.chain]
    if key == "cache_dir":
        return str(config.cache_dir)
    if key == "allow_http":
        return list(config.allow_http)
    value: Any = getattr(config, key)
    return value


def settings(config: MirrorConfig, catalog: Catalog) -> list[dict[str, Any]]:
    """One dict per setting: key, env variable, value, source text and kind."""
    rows = []
    for key, var in KEYS.items():
        src = config.source(key)
        rows.append({"key": key, "env": var, "value": setting_value(config, key, catalog),
                     "source": str(src), "kind": src.kind})
    if config.head:  # pip's own index is a catalog mirror: it leads an auto chain
        src = config.source("head")
        rows.append({"key": "head", "env": "", "value": config.head, "source": str(src),
                     "kind": src.kind})
    return rows


def value_text(value: Any) -> str:
    if value is None:
        return "(off)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _load() -> tuple[MirrorConfig, Catalog]:
    from pip_91n.settings.catalog import load_catalog
    from pip_91n.settings.config import load_config

    catalog = load_catalog()
    return load_config(catalog=catalog), catalog


def _env_override(key: str, out: Output) -> None:
    var = KEYS[key]
    if os.environ.get(var, "").strip():
        out.note(f"{var} is set in the environment and takes precedence over the config file")


def _write(key: str, value: Any, out: Output) -> int:
    path = config_paths(os.environ)[0]
    if path.is_file():  # a file that is already broken: exit 3, naming file:line
        read_toml_layer(path, "user")
    try:
        update_config(path, {key: value})
    except ConfigError as exc:  # the value given on the command line is wrong
        message = str(exc).removeprefix(f"{path}: ")
        raise UsageError(f"{message} (nothing written)") from None
    if out.json_mode:
        out.json({"file": str(path), "key": key, "value": value})
    elif value is None:
        out.line(f"removed {key} from {path}")
    else:
        out.line(f"{key} = {value_text(value)}  written to {path}", "ok")
    _env_override(key, out)
    return EXIT_OK


def run_use(args: argparse.Namespace, out: Output) -> int:
    items = [i.strip() for v in args.mirrors for i in v.split(",") if i.strip()]
    if [i.lower() for i in items] == ["auto"]:
        return _write("mirrors", "auto", out)
    if args.check:
        from pip_91n.chain.probe import measure
        from pip_91n.cli.probe import parse_mirrors
        from pip_91n.settings.catalog import load_catalog

        chain = parse_mirrors(items, load_catalog())
        with out.status("probing the mirrors..."):
            results = measure(chain, budget=5.0)
        if not any(r.status is not None and r.status < 500 for r in results):
            out.error("none of these mirrors answered; nothing written (drop --check to "
                      "write anyway)")
            return EXIT_FAILED
    code = _write("mirrors", items, out)
    if "pypi" not in (i.lower() for i in items) and not any("pypi.org" in i for i in items):
        out.note("pypi is not in the chain: a release newer than every mirror's last sync "
                 "will not be found (add pypi last to keep it as the fallback)")
    return code


def run_config(args: argparse.Namespace, out: Output) -> int:
    action = args.action
    if action in ("set", "unset"):
        key = normalize_key(args.key)
        if action == "unset":
            return _write(key, None, out)
        value = parse_values(key, args.values)
        if key == "mirrors" and value == ["auto"]:
            value = "auto"
        return _write(key, value, out)
    config, catalog = _load()
    rows = settings(config, catalog)
    if action == "get":
        key = normalize_key(args.key)
        row = next(r for r in rows if r["key"] == key)
        if out.json_mode:
            out.json(row)
        else:
            value = row["value"]
            print(",".join(value) if isinstance(value, list) else
                  "" if value is None else value_text(value), file=out.stream)
        return EXIT_OK
    user, site = config_paths(os.environ)
    if out.json_mode:
        out.json({"files": {"user": {"path": str(user), "exists": user.exists()},
                            "site": {"path": str(site), "exists": site.exists()}},
                  "disabled": config.disabled, "settings": rows})
        return EXIT_OK
    styles = [None if r["kind"] == "default" else "ok" for r in rows]
    out.table(["setting", "value", "source"],
              [[r["key"], value_text(r["value"]), r["source"]] for r in rows], styles=styles)
    out.line()
    out.line(f"user config: {user}{'' if user.exists() else ' (not created yet)'}", "dim")
    out.line(f"site config: {site}{'' if site.exists() else ' (none)'}", "dim")
    out.line("precedence: environment > user config > site config > built-in default", "dim")
    if config.disabled:
        out.line("PIP_91N_DISABLE is set: the hook does nothing", "warn")
    return EXIT_OK


def run(args: argparse.Namespace, out: Output) -> int:
    if args.command == "use":
        return run_use(args, out)
    return run_config(args, out)
