"""Request paths of the local index, as pure functions: what a path asks for, and the
layout of the file links the server's own pages carry.

The layout does not depend on which mirror served a page::

    /simple/                                   the root (every project)
    /simple/<project>/                         one project page
    /files/<project>/<sha256>/<filename>       one distribution file, named by its hash
    /files/<project>/<sha256>/<filename>.metadata   its PEP 658 core metadata

Paths are read from the raw (still percent-encoded) request path and decoded once here:
an encoded slash, backslash or NUL, a ``.`` or ``..`` segment, an empty segment or anything
else outside the layout is not a route (the app answers 404), so no request can name a
file outside the cache.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple
from urllib.parse import quote, unquote

from pip_91n.index.routing import is_dist_filename, normalize_name

__all__ = [
    "FILES",
    "NO_HASH",
    "SIMPLE",
    "Route",
    "RouteKind",
    "file_link",
    "parse_path",
]

SIMPLE = "/simple/"
FILES = "/files/"
#: Stands for the sha256 in the link of a file whose page named none.
NO_HASH = "-"

RouteKind = Literal["root", "page", "file", "metadata", "ready"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PROJECT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_BAD = ("/", "\\", "\x00")


class Route(NamedTuple):
    """What a request path names. ``project`` is normalised; ``canonical`` is the path the
    resource lives at (a page asked for under another spelling of its name redirects)."""

    kind: RouteKind
    project: str | None = None
    sha256: str | None = None
    filename: str | None = None
    canonical: str = ""


def file_link(project: str, sha256: str | None, filename: str) -> str:
    """The path of a file, relative to its project page (``/simple/<project>/``)."""
    return f"../../files/{quote(project)}/{sha256 or NO_HASH}/{quote(filename)}"


def _segments(raw: str) -> list[str] | None:
    """The decoded segments of a raw path, or None when one of them is unsafe."""
    if "?" in raw or "#" in raw:
        return None
    out: list[str] = []
    for seg in raw.split("/"):
        if any(c in seg.lower() for c in ("%2f", "%5c", "%00")):
            return None
        text = unquote(seg, errors="strict") if "%" in seg else seg
        if any(c in text for c in _BAD) or text in (".", "..") or not text.isprintable():
            return None
        out.append(text)
    return out


def parse_path(raw: str) -> Route | None:
    """The route of a raw request path (no query), or None (404)."""
    try:
        segs = _segments(raw)
    except UnicodeDecodeError:
        return None
    if segs is None or not segs or segs[0] != "":
        return None
    parts = segs[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
        slash = True
    else:
        slash = False
    if any(p == "" for p in parts):
        return None
    if parts == ["-", "ready"]:
        return Route("ready", canonical="/-/ready")
    if parts == ["simple"]:
        return Route("root", canonical=SIMPLE)
    if len(parts) == 2 and parts[0] == "simple" and _PROJECT.match(parts[1]):
        project = normalize_name(parts[1])
        return Route("page", project, canonical=f"{SIMPLE}{project}/")
    if len(parts) == 4 and parts[0] == "files" and not slash:
        return _file_route(parts[1], parts[2], parts[3])
    return None


def _file_route(project: str, sha256: str, filename: str) -> Route | None:
    if not _PROJECT.match(project) or normalize_name(project) != project:
        return None
    if sha256 != NO_HASH and not _SHA256.match(sha256):
        return None
    kind: RouteKind = "file"
    name = filename
    if name.endswith(".metadata"):
        kind, name = "metadata", name[: -len(".metadata")]
    if not is_dist_filename(name) or name.startswith("."):
        return None
    canonical = f"{FILES}{quote(project)}/{sha256}/{quote(filename)}"
    return Route(kind, project, None if sha256 == NO_HASH else sha256, name, canonical)
