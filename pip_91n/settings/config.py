"""Configuration: ``PIP_91N_*`` environment > user TOML > site TOML > built-in default.

``resolve_config`` is pure (mappings in, a frozen ``MirrorConfig`` out); ``load_config`` reads
the environment and the files and calls it; ``update_config`` writes one change to a file,
validated by the same rules. Every setting remembers its ``Source``, and every bad value
raises ``ConfigError`` naming the variable or ``file:line`` and the fix.

TOML file (``PIP_91N_CONFIG``, else ``platformdirs.user_config_path("pip-91n")/config.toml``;
site file ``platformdirs.site_config_path("pip-91n")/config.toml``)::

    mirrors = ["tuna", "aliyun", "pypi"]   # or "auto", or "tuna,pypi"
    timeout = 5            # seconds to connect and get the first byte
    hedge_delay = 0.75     # head start before the next mirror is raced; 0 = no hedging
    cache_dir = "/var/cache/pip-91n"
    log = "-"              # "-" = stderr, or a file path
    allow_http = ["10.0.0.5"]   # hosts that may be used over plain http
    segment_threshold = "32M"   # files this large are fetched in segments from several mirrors
    verify = "quorum"      # a file needs a second source's hash: quorum, strict or off
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pip_91n._startup import disabled
from pip_91n.errors import ConfigError
from pip_91n.settings.catalog import Catalog, Mirror, builtin_catalog, parse_mirror
from pip_91n.settings.configfile import (
    ConfigLayer,
    config_paths,
    edit_text,
    read_toml_layer,
    toml_loads,
    write_atomic,
)
from pip_91n.settings.pipconf import PipIndex, pip_index_url
from pip_91n.settings.values import (
    DEFAULT_HEDGE_DELAY,
    DEFAULT_SEGMENT_THRESHOLD,
    DEFAULT_TIMEOUT,
    KEYS,
    Source,
    parse_setting,
)
from pip_91n.settings.values import default_cache_dir as platform_cache_dir

__all__ = ["MirrorConfig", "load_config", "resolve_config", "update_config"]

_DEFAULTS: dict[str, Any] = {
    "mirrors": "auto",
    "timeout": DEFAULT_TIMEOUT,
    "hedge_delay": DEFAULT_HEDGE_DELAY,
    "cache_dir": None,
    "log": None,
    "allow_http": [],
    "segment_threshold": DEFAULT_SEGMENT_THRESHOLD,
    "verify": "quorum",
}


@dataclass(frozen=True)
class MirrorConfig:
    """The resolved settings. ``auto`` means ``chain`` is the catalog, still to be ranked by a
    probe (see ``pip_91n.chain.ranking``); otherwise ``chain`` is used exactly as given.
    ``head`` names a catalog mirror that pip's own index points at: it leads an ``auto`` chain.
    """

    chain: tuple[Mirror, ...]
    auto: bool
    timeout: float
    hedge_delay: float
    cache_dir: Path
    log: str | None
    allow_http: tuple[str, ...]
    segment_threshold: int
    verify: str
    disabled: bool
    head: str | None
    pip_index: str | None
    sources: tuple[tuple[str, Source], ...]

    def source(self, key: str) -> Source:
        return dict(self.sources).get(key, Source("default"))


def _parse_mirrors(value: Any, where: Source, catalog: Catalog, allow_http: tuple[str, ...]
                   ) -> tuple[Mirror, ...] | None:
    """The explicit chain, or None for ``auto``."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(f"{where}: mirrors must be a string or a list of strings, e.g. "
                          "mirrors = [\"tuna\", \"pypi\"]")
    items = [i for i in items if i]
    if not items:
        raise ConfigError(f"{where}: empty mirror list; use auto or names like tuna,pypi")
    if [i.lower() for i in items] == ["auto"]:
        return None
    chain: list[Mirror] = []
    for item in items:
        if item.lower() == "auto":
            raise ConfigError(f"{where}: auto cannot be combined with other mirrors; "
                              "use auto alone or an explicit list")
        mirror = parse_mirror(item, catalog, where, allow_http)
        if mirror.name not in (m.name for m in chain):
            chain.append(mirror)
    return tuple(chain)


def resolve_config(
    environ: Mapping[str, str],
    layers: tuple[ConfigLayer, ...] = (),
    *,
    catalog: Catalog | None = None,
    pip_index: PipIndex | None = None,
    default_cache_dir: Path | None = None,
) -> MirrorConfig:
    """Apply the precedence: ``environ`` > ``layers`` (user first, then site) > defaults."""
    catalog = catalog or builtin_catalog()
    picked: dict[str, tuple[Any, Source]] = {}
    for key, var in KEYS.items():
        raw = environ.get(var, "")
        if raw.strip():
            picked[key] = (raw.strip(), Source("env", var))
            continue
        for layer in layers:
            if key in layer.values:
                picked[key] = (layer.values[key], layer.source(key))
                break
    values: dict[str, Any] = {}
    for key in KEYS:
        raw, src = picked.get(key, (_DEFAULTS[key], Source("default")))
        if key != "mirrors":
            values[key] = parse_setting(key, raw, src)
    mirrors_raw, mirrors_src = picked.get("mirrors", (_DEFAULTS["mirrors"], Source("default")))
    explicit = _parse_mirrors(mirrors_raw, mirrors_src, catalog, values["allow_http"])

    head: str | None = None
    sources = {k: s for k, (_, s) in picked.items()}
    if pip_index is not None:
        match = catalog.match_url(pip_index.url)
        if match is not None and match.name != "pypi" and explicit is None:
            head = match.name
            sources["head"] = Source("pip", pip_index.where)
    chain = explicit if explicit is not None else catalog.mirrors
    if head is not None:
        chain = tuple(m for m in chain if m.name == head) + tuple(
            m for m in chain if m.name != head)
    return MirrorConfig(
        chain=chain,
        auto=explicit is None,
        timeout=values["timeout"],
        hedge_delay=values["hedge_delay"],
        cache_dir=values["cache_dir"] or default_cache_dir or platform_cache_dir(),
        log=values["log"],
        allow_http=values["allow_http"],
        segment_threshold=values["segment_threshold"],
        verify=values["verify"],
        disabled=disabled(environ),
        head=head,
        pip_index=pip_index.url if pip_index else None,
        sources=tuple(sorted(sources.items())),
    )


def _layers(env: Mapping[str, str]) -> tuple[ConfigLayer, ...]:
    user_path, site_path = config_paths(env)
    if env.get("PIP_91N_CONFIG", "").strip() and not user_path.exists():
        raise ConfigError(f"PIP_91N_CONFIG: {user_path} does not exist; create it or unset "
                          "PIP_91N_CONFIG")
    return tuple(
        layer
        for layer in (read_toml_layer(user_path, "user"), read_toml_layer(site_path, "site"))
        if layer is not None
    )


def load_config(
    environ: Mapping[str, str] | None = None, *, catalog: Catalog | None = None
) -> MirrorConfig:
    """Read the environment, the TOML files and pip's index setting; resolve once."""
    env = dict(os.environ if environ is None else environ)
    layers = _layers(env)
    if catalog is None:
        from pip_91n.settings.catalog import load_catalog

        catalog = load_catalog()
    return resolve_config(env, layers, catalog=catalog, pip_index=pip_index_url(env))


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
    data = toml_loads(text)
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; known settings: "
                          f"{', '.join(KEYS)}; remove it first")
    from pip_91n.settings.catalog import load_catalog

    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k == "PIP_91N_ALLOW_HTTP"}
    resolve_config(env, (ConfigLayer(str(path), "user", data, {}),), catalog=load_catalog(),
                   default_cache_dir=Path("."))
    if text != old:
        write_atomic(path, text)
    return text
