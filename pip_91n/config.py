"""Configuration: ``PIP_91N_*`` environment > user TOML > site TOML > built-in default.

``resolve_config`` is pure (mappings in, a frozen ``MirrorConfig`` out); ``load_config`` reads
the environment and the files and calls it. Every setting remembers its ``Source``, and every
bad value raises ``ConfigError`` naming the variable or ``file:line`` and the fix.

TOML file (``PIP_91N_CONFIG``, else ``platformdirs.user_config_path("pip-91n")/config.toml``;
site file ``platformdirs.site_config_path("pip-91n")/config.toml``)::

    mirrors = ["tuna", "aliyun", "pypi"]   # or "auto", or "tuna,pypi"
    timeout = 5            # seconds to connect and get the first byte
    hedge_delay = 0.75     # head start before the next mirror is raced; 0 = no hedging
    cache_dir = "/var/cache/pip-91n"
    log = "-"              # "-" = stderr, or a file path
    allow_http = ["10.0.0.5"]   # hosts that may be used over plain http
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pip_91n.catalog import Catalog, Mirror, builtin_catalog, mirror_from_url
from pip_91n.errors import ConfigError
from pip_91n.pipconf import PipIndex, pip_index_url

__all__ = [
    "DEFAULT_HEDGE_DELAY",
    "DEFAULT_TIMEOUT",
    "KEYS",
    "ConfigLayer",
    "MirrorConfig",
    "Source",
    "load_config",
    "parse_seconds",
    "read_toml_layer",
    "resolve_config",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_HEDGE_DELAY = 0.75
#: TOML key -> environment variable, for every setting a config file may hold.
KEYS: dict[str, str] = {
    "mirrors": "PIP_91N_MIRRORS",
    "timeout": "PIP_91N_TIMEOUT",
    "hedge_delay": "PIP_91N_HEDGE_DELAY",
    "cache_dir": "PIP_91N_CACHE_DIR",
    "log": "PIP_91N_LOG",
    "allow_http": "PIP_91N_ALLOW_HTTP",
}
_TRUE = {"1", "true", "yes", "on"}


class Source(NamedTuple):
    """Where a setting came from: ``kind`` is env, user, site, pip or default."""

    kind: str
    where: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "default":
            return "built-in default"
        return f"{self.where}:{self.line}" if self.line else self.where


class ConfigLayer(NamedTuple):
    """The settings of one TOML file: values by key, with their line numbers."""

    path: str
    kind: str
    values: Mapping[str, Any]
    lines: Mapping[str, int]

    def source(self, key: str) -> Source:
        return Source(self.kind, self.path, self.lines.get(key))


@dataclass(frozen=True)
class MirrorConfig:
    """The resolved settings. ``auto`` means ``chain`` is the catalog, still to be ranked by a
    probe (see ``pip_91n.ranking``); otherwise ``chain`` is used exactly as given.
    ``head`` names a catalog mirror that pip's own index points at: it leads an ``auto`` chain.
    """

    chain: tuple[Mirror, ...]
    auto: bool
    timeout: float
    hedge_delay: float
    cache_dir: Path
    log: str | None
    allow_http: tuple[str, ...]
    disabled: bool
    head: str | None
    pip_index: str | None
    sources: tuple[tuple[str, Source], ...]

    def source(self, key: str) -> Source:
        return dict(self.sources).get(key, Source("default"))

    def describe(self) -> list[str]:
        """One line per setting, with where it came from (for ``pip-91n status``)."""
        from pip_91n.routing import redact

        chain = "auto: " if self.auto else ""
        chain += ", ".join(f"{m.name} ({redact(m.simple_url)})" for m in self.chain)
        rows = [
            ("mirrors", chain),
            ("timeout", f"{self.timeout:g} s"),
            ("hedge_delay", f"{self.hedge_delay:g} s"),
            ("cache_dir", str(self.cache_dir)),
            ("log", self.log or "off"),
            ("allow_http", ", ".join(self.allow_http) or "none"),
        ]
        if self.head:
            rows.append(("head", f"{self.head} (pip's index {redact(self.pip_index or '')})"))
        return [f"{key} = {value}  [{self.source(key)}]" for key, value in rows]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(url: str, where: Source, allow_http: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where}: {url!r} is not a simple-index URL; give a catalog name or a full "
            "https://host/simple/ URL"
        )
    host = parts.hostname
    if parts.scheme == "http" and not _is_loopback(host) and host not in allow_http:
        raise ConfigError(
            f"{where}: {url!r} uses plain http to {host}; use https, or allow it explicitly "
            f"with PIP_91N_ALLOW_HTTP={host} (or allow_http = [\"{host}\"] in the config file)"
        )


def _parse_mirrors(
    value: Any, where: Source, catalog: Catalog, allow_http: tuple[str, ...]
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
        if "://" in item:
            _check_url(item, where, allow_http)
            mirror = catalog.match_url(item) or mirror_from_url(item)
        else:
            found = catalog.get(item)
            if found is None:
                raise ConfigError(
                    f"{where}: unknown mirror {item!r}; known names: "
                    f"{', '.join(catalog.names)}, or give a full https://host/simple/ URL"
                )
            mirror = found
        if mirror.name not in (m.name for m in chain):
            chain.append(mirror)
    return tuple(chain)


def parse_seconds(value: Any, key: str, where: Source, *, zero_ok: bool) -> float:
    try:
        n = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        n = math.nan
    if not math.isfinite(n) or n < 0 or (n == 0 and not zero_ok):
        need = "a number >= 0" if zero_ok else "a positive number of seconds"
        raise ConfigError(f"{where}: {key} must be {need}, got {value!r}; e.g. {key} = 5")
    return n


def _hosts(value: Any, where: Source) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(h.strip() for h in value.split(",") if h.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{where}: allow_http must be a list of host names, e.g. "
                      "allow_http = [\"10.0.0.5\"]")


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

    def get(key: str, default: Any) -> tuple[Any, Source]:
        return picked.get(key, (default, Source("default")))

    allow_raw, allow_src = get("allow_http", [])
    allow_http = _hosts(allow_raw, allow_src)
    mirrors_raw, mirrors_src = get("mirrors", "auto")
    explicit = _parse_mirrors(mirrors_raw, mirrors_src, catalog, allow_http)
    timeout_raw, timeout_src = get("timeout", DEFAULT_TIMEOUT)
    hedge_raw, hedge_src = get("hedge_delay", DEFAULT_HEDGE_DELAY)
    cache_raw, cache_src = get("cache_dir", None)
    log_raw, log_src = get("log", None)
    for key, val, src in (("cache_dir", cache_raw, cache_src), ("log", log_raw, log_src)):
        if val is not None and not isinstance(val, str):
            raise ConfigError(f"{src}: {key} must be a string path, got {val!r}")
    if cache_raw:
        cache_dir = Path(os.path.expanduser(cache_raw))
    else:
        cache_dir = default_cache_dir or _default_cache_dir()

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
        timeout=parse_seconds(timeout_raw, "timeout", timeout_src, zero_ok=False),
        hedge_delay=parse_seconds(hedge_raw, "hedge_delay", hedge_src, zero_ok=True),
        cache_dir=cache_dir,
        log=log_raw or None,
        allow_http=allow_http,
        disabled=environ.get("PIP_91N_DISABLE", "").strip().lower() in _TRUE,
        head=head,
        pip_index=pip_index.url if pip_index else None,
        sources=tuple(sorted(sources.items())),
    )


def _default_cache_dir() -> Path:
    return Path(platformdirs().user_cache_path("pip-91n"))


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
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = m.group(1) if m else str(max(1, len(text.splitlines())))
        loc = f"{path}:{line}"
        raise ConfigError(f"{loc}: invalid TOML ({exc}); fix the syntax, e.g. "
                          "mirrors = [\"tuna\", \"pypi\"]") from exc
    lines: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\"?([A-Za-z0-9_-]+)\"?\s*=", line)
        if m and m.group(1) not in lines:
            lines[m.group(1)] = n
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        key = unknown[0]
        loc = f"{path}:{lines[key]}" if key in lines else str(path)
        raise ConfigError(f"{loc}: unknown setting {key!r}; known settings: "
                          f"{', '.join(KEYS)}")
    return ConfigLayer(str(path), kind, data, lines)


def _config_paths(environ: Mapping[str, str]) -> tuple[Path, Path]:
    dirs = platformdirs()
    user = environ.get("PIP_91N_CONFIG", "").strip()
    user_path = (Path(os.path.expanduser(user)) if user
                 else Path(dirs.user_config_path("pip-91n")) / "config.toml")
    return user_path, Path(dirs.site_config_path("pip-91n")) / "config.toml"


def load_config(
    environ: Mapping[str, str] | None = None, *, catalog: Catalog | None = None
) -> MirrorConfig:
    """Read the environment, the TOML files and pip's index setting; resolve once."""
    env = dict(os.environ if environ is None else environ)
    user_path, site_path = _config_paths(env)
    if env.get("PIP_91N_CONFIG", "").strip() and not user_path.exists():
        raise ConfigError(f"PIP_91N_CONFIG: {user_path} does not exist; create it or unset "
                          "PIP_91N_CONFIG")
    layers = tuple(
        layer
        for layer in (read_toml_layer(user_path, "user"), read_toml_layer(site_path, "site"))
        if layer is not None
    )
    if catalog is None:
        from pip_91n.catalog import load_catalog

        catalog = load_catalog()
    return resolve_config(env, layers, catalog=catalog, pip_index=pip_index_url(env))
