"""Project pages of the local index, as pure functions: an upstream page (PEP 503 HTML or
PEP 691 JSON, from whichever mirror, read by ``pip_91n.index.pages``) as ``Entry`` values,
rendered again as HTML or JSON whose file links point back at the server
(``pip_91n.serve.paths``).

Everything a resolver needs survives the trip: sha256, ``requires-python``, yanked (and
its reason), PEP 658/714 core metadata (``data-core-metadata`` and the older
``data-dist-info-metadata``, JSON ``core-metadata``), size and upload time (PEP 700). The
rendering is deterministic, so the same files give the same bytes (and ETag) whichever
mirror served the page.
"""

from __future__ import annotations

import html
import json
from typing import Any, NamedTuple

from pip_91n.index.pages import ProjectPage, parse_page
from pip_91n.serve.paths import file_link

__all__ = ["HTML_TYPE", "Entry", "Page", "fresher", "from_parsed", "parse_upstream",
           "render_html", "render_json"]

HTML_TYPE = "application/vnd.pypi.simple.v1+html"


class Entry(NamedTuple):
    """One file of a project page. ``yanked``: False, True or the reason. ``metadata``:
    None (no PEP 658 file), ``""`` (one exists, hash unknown) or its sha256."""

    filename: str
    sha256: str | None
    requires_python: str | None = None
    yanked: bool | str = False
    metadata: str | None = None
    size: int | None = None
    upload_time: str | None = None


class Page(NamedTuple):
    """A project page: its name as displayed, its files, and the upstream serial."""

    name: str
    entries: tuple[Entry, ...]
    serial: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "serial": self.serial,
                "entries": [list(e) for e in self.entries]}

    @classmethod
    def from_json(cls, data: Any) -> Page:
        entries = tuple(Entry(*e) for e in data["entries"])
        return cls(str(data["name"]), entries, data.get("serial"))

    def find(self, filename: str) -> Entry | None:
        return next((e for e in self.entries if e.filename == filename), None)

    def versions(self) -> frozenset[Any]:
        from pip_91n.index.staleness import versions_in

        return versions_in(e.filename for e in self.entries)


def parse_upstream(body: bytes, url: str, content_type: str | None,
                   headers: dict[str, str], project: str) -> Page:
    """The page ``url`` answered (``content_type``, ``headers``) for ``project``, read by
    the chain's one page parser (``pip_91n.index.pages``). ``ValueError`` when unreadable."""
    return from_parsed(parse_page(body, url, content_type, headers), project)


def from_parsed(parsed: ProjectPage, project: str) -> Page:
    """The page the chain's page parser read (``ProjectPage``) as the server keeps it."""
    seen: set[str] = set()
    unique = []
    for f in parsed.files:  # one entry per filename: the first, as pip and uv would take it
        if f.filename and f.filename not in seen and "/" not in f.filename:
            seen.add(f.filename)
            unique.append(Entry(f.filename, f.sha256, f.requires_python, f.yanked,
                                (f.metadata_sha256 or "") if f.has_metadata else None,
                                f.size, f.upload_time))
    return Page(parsed.name or project, tuple(unique), parsed.serial)


def _api_version(page: Page) -> str:
    """1.1 (PEP 700) needs every file's size; without them the page says 1.0."""
    return "1.1" if all(e.size is not None for e in page.entries) else "1.0"


def render_html(page: Page, project: str) -> bytes:
    title = html.escape(page.name)
    lines = ["<!DOCTYPE html>", "<html>", "  <head>",
             f'    <meta name="pypi:repository-version" content="{_api_version(page)}">',
             f"    <title>Links for {title}</title>", "  </head>", "  <body>",
             f"    <h1>Links for {title}</h1>"]
    for e in page.entries:
        href = file_link(project, e.sha256, e.filename)
        if e.sha256:
            href += f"#sha256={e.sha256}"
        attrs = [f'href="{html.escape(href)}"']
        if e.requires_python:
            attrs.append(f'data-requires-python="{html.escape(e.requires_python)}"')
        if e.metadata is not None:
            value = f"sha256={e.metadata}" if e.metadata else "true"
            attrs.append(f'data-dist-info-metadata="{value}"')
            attrs.append(f'data-core-metadata="{value}"')
        if e.yanked:
            reason = e.yanked if isinstance(e.yanked, str) else ""
            attrs.append(f'data-yanked="{html.escape(reason)}"')
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(e.filename)}</a><br />")
    lines += ["  </body>", "</html>"]
    if page.serial is not None:
        lines.append(f"<!--SERIAL {page.serial}-->")
    return ("\n".join(lines) + "\n").encode()


def render_json(page: Page, project: str) -> bytes:
    files = []
    for e in page.entries:
        meta: Any = False if e.metadata is None else (
            {"sha256": e.metadata} if e.metadata else True)
        item: dict[str, Any] = {
            "filename": e.filename, "url": file_link(project, e.sha256, e.filename),
            "hashes": {"sha256": e.sha256} if e.sha256 else {},
            "requires-python": e.requires_python, "core-metadata": meta,
            "dist-info-metadata": meta, "yanked": e.yanked}
        if e.size is not None:
            item["size"] = e.size
        if e.upload_time is not None:
            item["upload-time"] = e.upload_time
        files.append(item)
    meta_block: dict[str, Any] = {"api-version": _api_version(page)}
    if page.serial is not None:
        meta_block["_last-serial"] = page.serial
    versions = [str(v) for v in sorted(page.versions())]
    doc = {"meta": meta_block, "name": project, "files": files, "versions": versions}
    return json.dumps(doc, separators=(",", ":")).encode()


def fresher(current: Page, other: Page) -> bool:
    """Whether ``other`` is a newer copy of the same project than ``current``: a higher
    serial when both name one, else (a mirror such as TUNA sends none) more versions, with
    every version ``current`` lists."""
    if current.serial is not None and other.serial is not None:
        return other.serial > current.serial
    mine, theirs = current.versions(), other.versions()
    return theirs > mine
