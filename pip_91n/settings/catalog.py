"""The mirror catalog: every known PyPI mirror, its URLs, file layout and failure domain.

Pure data, the one parser of a mirror as a user names it (``parse_mirror``: a catalog name or
a simple-index URL), and one loader for plug-ins. Other packages add mirrors through the entry-point
group ``pip_91n.mirrors`` (keyring-style): each entry point names a *provider*, either an
object with a ``priority`` (number, higher wins on a name clash; the built-in catalog has
priority 0) and a ``mirrors()`` method, or a plain callable returning mirrors. A provider
that fails to load, has no usable priority or raises is logged and skipped, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pip_91n._urls import is_loopback, redact
from pip_91n.errors import ConfigError

__all__ = [
    "BUILTIN_MIRRORS",
    "ENTRY_POINT_GROUP",
    "LAYOUT_PYPI",
    "LAYOUT_UNKNOWN",
    "Catalog",
    "Mirror",
    "builtin_catalog",
    "load_catalog",
    "mirror_from_url",
    "mirror_spec",
    "parse_mirror",
]

log = logging.getLogger("pip_91n")

ENTRY_POINT_GROUP = "pip_91n.mirrors"
#: Files live at ``<file_base><aa>/<bb>/<60 hex>/<filename>``, as on files.pythonhosted.org.
LAYOUT_PYPI = "pypi"
#: Nothing is assumed: a file is found through the mirror's own project page.
LAYOUT_UNKNOWN = "unknown"


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class Mirror:
    """One copy of PyPI.

    ``simple_url`` is the PEP 503 index root (always ends in ``/``). ``file_base`` is where
    files live when ``layout`` is ``"pypi"`` (the content-addressed ``aa/bb/hash/filename``
    suffix is appended to it). ``aliases`` are other index roots or file bases that serve the
    same mirror (URLs that should be recognised as belonging to it). Mirrors with the same
    ``failure_domain`` fail together (USTC redirects misses to TUNA, BFSU is run by TUNA), so
    the chain does not treat them as independent.
    """

    name: str
    simple_url: str
    file_base: str | None = None
    layout: str = LAYOUT_UNKNOWN
    failure_domain: str = ""
    aliases: tuple[str, ...] = ()
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "simple_url", _slash(self.simple_url))
        if self.file_base is not None:
            object.__setattr__(self, "file_base", _slash(self.file_base))
        object.__setattr__(self, "aliases", tuple(_slash(a) for a in self.aliases))
        if not self.failure_domain:
            object.__setattr__(self, "failure_domain", self.name)
        if self.layout not in (LAYOUT_PYPI, LAYOUT_UNKNOWN):
            raise ValueError(f"mirror {self.name!r}: unknown layout {self.layout!r}")
        if self.layout == LAYOUT_PYPI and self.file_base is None:
            raise ValueError(f"mirror {self.name!r}: layout 'pypi' needs a file_base")

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every URL prefix that belongs to this mirror (index roots first)."""
        out = [self.simple_url]
        if self.file_base:
            out.append(self.file_base)
        out.extend(self.aliases)
        return tuple(out)



_PYPI = Mirror(
    "pypi",
    "https://pypi.org/simple/",
    "https://files.pythonhosted.org/packages/",
    LAYOUT_PYPI,
    note="the upstream",
)

BUILTIN_MIRRORS: tuple[Mirror, ...] = (
    Mirror(
        "91n",
        "https://pypi.91n.ml/simple/",
        note="the 91n mirror of the original write-up; no public source confirms its layout",
    ),
    Mirror(
        "tuna",
        "https://pypi.tuna.tsinghua.edu.cn/simple/",
        "https://pypi.tuna.tsinghua.edu.cn/packages/",
        LAYOUT_PYPI,
        "tuna",
        (
            "https://mirrors.tuna.tsinghua.edu.cn/pypi/web/simple/",
            "https://mirrors.tuna.tsinghua.edu.cn/pypi/web/packages/",
        ),
        note="Tsinghua; shadowmire, re-syncs 5 minutes after each sync",
    ),
    Mirror(
        "bfsu",
        "https://mirrors.bfsu.edu.cn/pypi/web/simple/",
        "https://mirrors.bfsu.edu.cn/pypi/web/packages/",
        LAYOUT_PYPI,
        "tuna",
        note="run by the TUNA team with the same tooling",
    ),
    Mirror(
        "ustc",
        "https://mirrors.ustc.edu.cn/pypi/simple/",
        "https://mirrors.ustc.edu.cn/pypi/packages/",
        LAYOUT_PYPI,
        "tuna",
        (
            "https://pypi.mirrors.ustc.edu.cn/simple/",
            "https://mirrors.ustc.edu.cn/pypi/web/simple/",
        ),
        note="metadata synced from TUNA; cache misses redirect to TUNA",
    ),
    Mirror(
        "aliyun",
        "https://mirrors.aliyun.com/pypi/simple/",
        "https://mirrors.aliyun.com/pypi/packages/",
        LAYOUT_PYPI,
    ),
    Mirror(
        "tencent",
        "https://mirrors.cloud.tencent.com/pypi/simple/",
        "https://mirrors.cloud.tencent.com/pypi/packages/",
        LAYOUT_PYPI,
    ),
    Mirror(
        "huawei",
        "https://repo.huaweicloud.com/repository/pypi/simple/",
        "https://repo.huaweicloud.com/repository/pypi/packages/",
        LAYOUT_PYPI,
        aliases=("https://mirrors.huaweicloud.com/repository/pypi/simple/",),
    ),
    Mirror(
        "sjtu",
        "https://mirror.sjtu.edu.cn/pypi/web/simple/",
        "https://mirror.sjtu.edu.cn/pypi-packages/",
        LAYOUT_PYPI,
        note="files under /pypi-packages/ (no packages/ segment)",
    ),
    _PYPI,
)


@dataclass(frozen=True)
class Catalog:
    """Mirrors by name, in catalog order (``pypi`` last)."""

    mirrors: tuple[Mirror, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.mirrors)

    def get(self, name: str) -> Mirror | None:
        key = name.strip().lower()
        return next((m for m in self.mirrors if m.name == key), None)

    def match_url(self, url: str) -> Mirror | None:
        """The catalog mirror whose index root (or alias) is ``url``, ignoring a trailing ``/``."""
        want = _slash(url.strip()).lower()
        for m in self.mirrors:
            if want in (p.lower() for p in (m.simple_url, *m.aliases)):
                return m
        return None


def builtin_catalog() -> Catalog:
    return Catalog(BUILTIN_MIRRORS)


def mirror_from_url(url: str, *, name: str | None = None) -> Mirror:
    """A mirror known only by its index URL: no layout assumed, its own failure domain."""
    url = _slash(url.strip())
    parts = urlsplit(url)
    host = (parts.hostname or url) + (f":{parts.port}" if parts.port else "")
    label = name or host + (parts.path.rstrip("/") if parts.path != "/" else "")
    return Mirror(label, url, failure_domain=label)


def _check_url(url: str, where: str, allow_http: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where}: {redact(url)!r} is not a simple-index URL; give a catalog name or a full "
            "https://host/simple/ URL"
        )
    host = parts.hostname
    if parts.scheme == "http" and not is_loopback(host) and host not in allow_http:
        raise ConfigError(
            f"{where}: {redact(url)!r} uses plain http to {host}; use https, or allow it "
            f"explicitly with PIP_91N_ALLOW_HTTP={host} (or allow_http = [\"{host}\"] in the "
            "config file)"
        )


def parse_mirror(item: str, catalog: Catalog, where: object = "mirrors",
                 allow_http: tuple[str, ...] = ()) -> Mirror:
    """The mirror a user means by ``item``: a catalog name (any case), or a simple-index URL
    (the catalog mirror it is an index root of, else a mirror known only by that URL).
    ``ConfigError`` names ``where`` and the fix; plain http is refused unless the host is
    loopback or in ``allow_http``."""
    item = item.strip()
    if "://" in item:
        _check_url(item, str(where), allow_http)
        return catalog.match_url(item) or mirror_from_url(item)
    found = catalog.get(item)
    if found is None:
        raise ConfigError(
            f"{where}: unknown mirror {item!r}; known names: {', '.join(catalog.names)}, or "
            "give a full https://host/simple/ URL"
        )
    return found


def mirror_spec(mirror: Mirror, catalog: Catalog) -> str:
    """How to write ``mirror`` in a config: its catalog name, else its index URL."""
    return mirror.name if catalog.get(mirror.name) == mirror else mirror.simple_url


def _provider_priority(provider: Any) -> float:
    prio = getattr(provider, "priority", 0)
    if callable(prio):
        prio = prio()
    if isinstance(prio, bool) or not isinstance(prio, (int, float)):
        raise TypeError(f"priority must be a number, got {prio!r}")
    return float(prio)


def _provider_mirrors(provider: Any) -> tuple[Mirror, ...]:
    get = getattr(provider, "mirrors", None)
    items = get() if callable(get) else provider() if callable(provider) else None
    if items is None:
        raise TypeError("a provider needs a mirrors() method or must be callable")
    out = tuple(items)
    bad = [m for m in out if not isinstance(m, Mirror)]
    if bad:
        raise TypeError(f"providers must return pip_91n.settings.catalog.Mirror objects, got {bad[0]!r}")
    return out


def _entry_points() -> Iterable[Any]:
    from importlib.metadata import entry_points

    return entry_points(group=ENTRY_POINT_GROUP)


def load_catalog(
    entry_points: Iterable[Any] | None = None,
    *,
    base: Catalog | None = None,
) -> Catalog:
    """The built-in catalog plus every working provider of ``pip_91n.mirrors``.

    ``entry_points`` (objects with ``name`` and ``load()``) defaults to the installed ones.
    On a name clash the provider with the higher priority wins (built-ins have 0; a tie keeps
    the earlier one). New names go before ``pypi``, ordered by priority.
    """
    catalog = base or builtin_catalog()
    chosen: dict[str, tuple[float, Mirror]] = {m.name: (0.0, m) for m in catalog.mirrors}
    order = list(chosen)
    try:
        eps = list(_entry_points() if entry_points is None else entry_points)
    except Exception:
        log.exception("pip-91n: could not list %s entry points; using built-ins", ENTRY_POINT_GROUP)
        eps = []
    found: list[tuple[float, Mirror]] = []
    for ep in eps:
        label = getattr(ep, "name", repr(ep))
        try:
            provider = ep.load()
            prio = _provider_priority(provider)
            mirrors = _provider_mirrors(provider)
        except Exception:
            log.exception("pip-91n: mirror provider %r is broken; skipped", label)
            continue
        found.extend((prio, m) for m in mirrors)
    found.sort(key=lambda pm: -pm[0])
    for prio, mirror in found:
        old = chosen.get(mirror.name)
        if old is None:
            order.insert(order.index("pypi") if "pypi" in order else len(order), mirror.name)
            chosen[mirror.name] = (prio, mirror)
        elif prio > old[0]:
            chosen[mirror.name] = (prio, mirror)
    return Catalog(tuple(chosen[n][1] for n in order))
