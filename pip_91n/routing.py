"""Pure routing: which URLs belong to the mirror chain and what a resource is called on each.

A *resource* is what pip asked for, independent of where it asked: the index root, one
project page, one distribution file, or a file's PEP 658 ``.metadata``. Files are named by
filename (and, elsewhere, their sha256), never by URL: a mirror's file URL is derived here
only when its layout is known to be PyPI's content-addressed ``aa/bb/<hash>/<filename>``;
otherwise the caller finds the file through that mirror's own project page.

Also: credential handling (a mirror's credentials are only ever sent to that mirror's host)
and redaction for logs. No I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pip_91n.catalog import LAYOUT_PYPI, Mirror

__all__ = [
    "PYPI_HOSTS",
    "SECRET_HEADERS",
    "Resource",
    "classify",
    "cross_host_headers",
    "is_dist_filename",
    "mirror_for_url",
    "normalize_name",
    "project_from_filename",
    "proxy_for",
    "redact",
    "resource_url",
    "same_origin",
    "split_credentials",
]

#: Hosts that are always routed through the chain: pip's default index and file host.
PYPI_HOSTS = frozenset({"pypi.org", "files.pythonhosted.org", "pypi.python.org"})

_DIST_RE = re.compile(r"\.(whl|tar\.gz|tgz|zip|tar\.bz2|tbz|tar\.xz|egg)$", re.IGNORECASE)
_CAS_RE = re.compile(r"(?:^|/)([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[^/]+)$")
#: Request headers that never leave their own origin.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_NAME_RE = re.compile(r"[-_.]+")

KIND_INDEX = "index"
KIND_PAGE = "page"
KIND_FILE = "file"
KIND_METADATA = "metadata"


def normalize_name(name: str) -> str:
    """PEP 503 normalisation."""
    return _NAME_RE.sub("-", name).lower()


def is_dist_filename(filename: str) -> bool:
    return bool(_DIST_RE.search(filename))


def project_from_filename(filename: str) -> str | None:
    """The normalised project name of a wheel or sdist filename, or None if it is neither."""
    m = _DIST_RE.search(filename)
    if not m:
        return None
    stem, ext = filename[: m.start()], m.group(1).lower()
    if ext in ("whl", "egg"):
        parts = stem.split("-")
        ok = len(parts) in (5, 6) if ext == "whl" else len(parts) >= 2
        return normalize_name(parts[0]) if ok and parts[0] else None
    name, sep, _version = stem.rpartition("-")
    return normalize_name(name) if sep and name else None


class Resource(NamedTuple):
    """What a chain URL asks for, independent of the mirror.

    ``kind`` is ``"index"``, ``"page"``, ``"file"`` or ``"metadata"``. ``project`` is the
    normalised name (pages; files when the filename says it). ``filename`` is the
    distribution filename (files and metadata, without ``.metadata``). ``cas_path`` is the
    content-addressed ``aa/bb/<hash>/<filename>`` tail when the URL had one. ``mirror`` is
    the name of the chain mirror the URL belongs to (None for a PyPI host outside the chain).
    """

    kind: str
    project: str | None = None
    filename: str | None = None
    cas_path: str | None = None
    mirror: str | None = None

    @property
    def key(self) -> str:
        """Stable label for logs and the staleness memory."""
        if self.kind in (KIND_FILE, KIND_METADATA):
            return f"{self.kind}:{self.filename}"
        return f"{self.kind}:{self.project or ''}"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that part (or None)."""
    if "@" not in url:  # the common case, on every request: no parsing
        return url, None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (and a lone token user too)."""
    if "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    bare, creds = split_credentials(url)
    assert creds is not None
    user, password = creds
    shown = f"{quote(user, safe='')}:***" if password else "***"
    b = urlsplit(bare)
    return urlunsplit((b.scheme, f"{shown}@{b.netloc}", b.path, b.query, b.fragment))


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    port = p.port if p.port != {"https": 443, "http": 80}.get(scheme) else None
    return (scheme, (p.hostname or "").lower(), port)


def cross_host_headers(
    headers: Iterable[tuple[str, str]], source_url: str, target_url: str
) -> list[tuple[str, str]]:
    """Request headers safe to send to ``target_url``: secrets stay on their own origin."""
    if same_origin(source_url, target_url):
        return list(headers)
    return [(k, v) for k, v in headers if k.lower() not in SECRET_HEADERS]


def same_origin(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` share scheme, host and port (default ports spelled or not)."""
    return _origin(a) == _origin(b)


def _strip(url: str) -> str:
    bare, _ = split_credentials(url)
    p = urlsplit(bare)
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path, "", ""))


#: The same few mirror prefixes are stripped for every request: once each is enough.
_strip_prefix = functools.lru_cache(maxsize=512)(_strip)
_prefix_origin = functools.lru_cache(maxsize=512)(_origin)


def mirror_for_url(url: str, chain: Sequence[Mirror]) -> Mirror | None:
    """The chain mirror that ``url`` belongs to: longest prefix, else same origin."""
    return _mirror_for(url, _strip(url), chain)


def _mirror_for(url: str, target: str, chain: Sequence[Mirror]) -> Mirror | None:
    best: tuple[int, Mirror] | None = None
    for m in chain:
        for prefix in m.prefixes:
            p = _strip_prefix(prefix)
            if target.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), m)
    if best is not None:
        return best[1]
    origin = _origin(url)
    return next((m for m in chain if any(_prefix_origin(p) == origin for p in m.prefixes)),
                None)


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy URL for ``url`` under ``proxies`` (as ``getproxies_environment()`` gives):
    the scheme's, else ``all``, unless ``no`` (no_proxy) exempts the host."""
    if not proxies:
        return None
    import urllib.request

    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    # proxy_bypass_environment is the stdlib's no_proxy matcher (not in typeshed)
    bypass: Callable[[str, Mapping[str, str]], bool] = getattr(  # noqa: B009
        urllib.request, "proxy_bypass_environment")
    if "no" in proxies and bypass(host, proxies):
        return None
    return proxies.get(parts.scheme.lower()) or proxies.get("all")


def _index_roots(m: Mirror) -> list[str]:
    return [_strip_prefix(m.simple_url)] + [_strip_prefix(a) for a in m.aliases
                                            if a.endswith("/simple/")]


def classify(url: str, chain: Sequence[Mirror]) -> Resource | None:
    """What ``url`` asks for, or None when it is not the chain's business (pass it through).

    Chain URLs are those of a chain mirror, plus pypi.org and files.pythonhosted.org.
    """
    target = _strip(url)
    mirror = _mirror_for(url, target, chain)
    parts = urlsplit(target)
    host = parts.hostname or ""
    if mirror is None and host not in PYPI_HOSTS:
        return None
    path = parts.path
    name = mirror.name if mirror else None
    roots = _index_roots(mirror) if mirror else []
    if host == "pypi.org" or host == "pypi.python.org":
        roots.append(f"https://{host}/simple/")
    for root in roots:
        if target == root or target + "/" == root:
            return Resource(KIND_INDEX, mirror=name)
        if target.startswith(root):
            rest = target[len(root) :].strip("/")
            if rest and "/" not in rest:
                return Resource(KIND_PAGE, project=normalize_name(unquote(rest)), mirror=name)
            return None
    last = unquote(path.rsplit("/", 1)[-1])
    kind = KIND_FILE
    if last.endswith(".metadata"):
        kind, last = KIND_METADATA, last[: -len(".metadata")]
    if not is_dist_filename(last):
        return None
    m = _CAS_RE.search(unquote(path[: -len(".metadata")] if kind == KIND_METADATA else path))
    return Resource(kind, project_from_filename(last), last, m.group(1) if m else None, name)


def resource_url(resource: Resource, mirror: Mirror, known: Mapping[str, str] | None = None) -> (
    str | None
):
    """``resource``'s URL on ``mirror``, or None when only the mirror's page can tell.

    ``known`` maps mirror name -> file URL already seen on that mirror's pages; it wins over
    the layout fast path (content-addressed tail appended to ``mirror.file_base``).
    """
    if resource.kind == KIND_INDEX:
        return mirror.simple_url
    if resource.kind == KIND_PAGE:
        return f"{mirror.simple_url}{quote(resource.project or '')}/"
    suffix = ".metadata" if resource.kind == KIND_METADATA else ""
    if known and mirror.name in known:
        return known[mirror.name] + suffix
    if mirror.layout == LAYOUT_PYPI and mirror.file_base and resource.cas_path:
        return mirror.file_base + quote(resource.cas_path) + suffix
    return None
