"""Pure routing: which URLs belong to the mirror chain and what a resource is called on each.

A *resource* is what pip asked for, independent of where it asked: the index root, one
project page, one distribution file, or a file's PEP 658 ``.metadata``. Files are named by
filename (and, elsewhere, their sha256), never by URL: a mirror's file URL is derived here
only when its layout is known to be PyPI's content-addressed ``aa/bb/<hash>/<filename>``;
otherwise the caller finds the file through that mirror's own project page.

Credentials and redaction live in ``pip_91n._urls``. No I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pip_91n._urls import origin, split_credentials
from pip_91n.settings.catalog import LAYOUT_PYPI, Mirror

__all__ = [
    "KIND_FILE",
    "KIND_INDEX",
    "KIND_METADATA",
    "KIND_PAGE",
    "PYPI_HOSTS",
    "Resource",
    "ResourceKind",
    "classify",
    "is_dist_filename",
    "mirror_for_url",
    "normalize_name",
    "project_from_filename",
    "resource_url",
]

#: Hosts that are always routed through the chain: pip's default index and file host.
PYPI_HOSTS = frozenset({"pypi.org", "files.pythonhosted.org", "pypi.python.org"})

_DIST_RE = re.compile(r"\.(whl|tar\.gz|tgz|zip|tar\.bz2|tbz|tar\.xz|egg)$", re.IGNORECASE)
_CAS_RE = re.compile(r"(?:^|/)([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[^/]+)$")
_NAME_RE = re.compile(r"[-_.]+")

ResourceKind = Literal["index", "page", "file", "metadata"]
KIND_INDEX: ResourceKind = "index"
KIND_PAGE: ResourceKind = "page"
KIND_FILE: ResourceKind = "file"
KIND_METADATA: ResourceKind = "metadata"


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

    kind: ResourceKind
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


def _strip(url: str) -> str:
    bare, _ = split_credentials(url)
    p = urlsplit(bare)
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path, "", ""))


#: The same few mirror prefixes are stripped for every request: once each is enough.
_strip_prefix = functools.lru_cache(maxsize=512)(_strip)
_prefix_origin = functools.lru_cache(maxsize=512)(origin)


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
    want = origin(url)
    return next((m for m in chain if any(_prefix_origin(p) == want for p in m.prefixes)),
                None)


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
