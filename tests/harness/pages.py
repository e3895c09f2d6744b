"""PEP 503 HTML and PEP 691 JSON simple-index pages, file layouts and content negotiation."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Literal

from .index import DistFile

__all__ = [
    "HTML_V1",
    "JSON_V1",
    "TEXT_HTML",
    "Layout",
    "file_path",
    "negotiate",
    "project_page",
    "root_page",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"

Layout = Literal["pypi", "flat"]

_ALIASES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: TEXT_HTML,
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
    "*/*": TEXT_HTML,
    "text/*": TEXT_HTML,
    "application/*": JSON_V1,
}


def file_path(dist: DistFile, layout: Layout) -> str:
    """The URL path of a file: PyPI's ``/packages/aa/bb/<rest of blake2b-256>/<file>`` or
    a flat ``/files/<file>``."""
    if layout == "pypi":
        b = dist.blake2b
        return f"/packages/{b[:2]}/{b[2:4]}/{b[4:]}/{dist.filename}"
    if layout == "flat":
        return f"/files/{dist.filename}"
    raise ValueError(f"unknown layout {layout!r}")


def negotiate(accept: str | None, query_format: str | None = None) -> str | None:
    """The page content type for an ``Accept`` header (q-values honoured, ties go to the
    type listed first) or a ``?format=`` value; ``None`` means 406 Not Acceptable."""
    if query_format:
        return _ALIASES.get(query_format.strip().lower())
    if not accept or not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, str] | None = None
    for pos, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        served = _ALIASES.get(media)
        if served is None or q <= 0:
            continue
        if best is None or q > best[0] or (q == best[0] and pos < best[1]):
            best = (q, pos, served)
    return None if best is None else best[2]


def _href(dist: DistFile, layout: Layout, base: str | None) -> str:
    path = file_path(dist, layout)
    # relative to /simple/<project>/, like TUNA and bandersnatch mirrors; absolute like PyPI
    return f"../..{path}" if base is None else f"{base}{path}"


def project_page(
    *,
    name: str,
    display: str,
    files: Sequence[DistFile],
    serial: int,
    content_type: str,
    layout: Layout,
    base: str | None,
) -> bytes:
    """A project page. ``base`` None gives relative file URLs, else absolute ones under it."""
    if content_type == JSON_V1:
        versions: dict[str, None] = {}
        entries = []
        for f in files:
            versions.setdefault(f.version, None)
            meta: object = False if f.metadata_sha256 is None else {"sha256": f.metadata_sha256}
            entries.append(
                {
                    "filename": f.filename,
                    "url": _href(f, layout, base),
                    "hashes": {"sha256": f.sha256},
                    "requires-python": f.requires_python,
                    "core-metadata": meta,
                    "dist-info-metadata": meta,
                    "yanked": f.yanked,
                    "size": f.size,
                }
            )
        doc = {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "name": name,
            "files": entries,
            "versions": list(versions),
        }
        return json.dumps(doc, indent=1).encode()
    title = html.escape(display)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>Links for {title}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {title}</h1>",
    ]
    for f in files:
        attrs = [f'href="{html.escape(_href(f, layout, base))}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python, quote=True)}"')
        if f.metadata_sha256 is not None:
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
        if f.yanked:
            reason = f.yanked if isinstance(f.yanked, str) else ""
            attrs.append(f'data-yanked="{html.escape(reason, quote=True)}"')
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(f.filename)}</a><br />")
    lines += ["  </body>", "</html>", f"<!--SERIAL {serial}-->", ""]
    return "\n".join(lines).encode()


def root_page(
    *, projects: Sequence[str], serials: Callable[[str], int], serial: int, content_type: str
) -> bytes:
    """The ``/simple/`` page listing every project."""
    if content_type == JSON_V1:
        doc = {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "projects": [{"name": p, "_last-serial": serials(p)} for p in projects],
        }
        return json.dumps(doc, indent=1).encode()
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        "    <title>Simple index</title>",
        "  </head>",
        "  <body>",
    ]
    lines += [f'    <a href="{p}/">{html.escape(p)}</a>' for p in projects]
    lines += ["  </body>", "</html>", f"<!--SERIAL {serial}-->", ""]
    return "\n".join(lines).encode()
