"""Parse simple-index project pages (PEP 503 HTML, PEP 691 JSON) into files and a serial.

Pure: bytes in, frozen values out. Used to learn each file's sha256 (pip strips the
``#sha256=`` fragment before it asks for a file), to find a file on a mirror whose layout is
unknown, and to read the page's serial for the staleness check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

from pip_91n._urls import split_sha256

__all__ = [
    "JSON_TYPE",
    "PAGE_TYPES",
    "PageFile",
    "ProjectPage",
    "is_page_content_type",
    "parse_page",
    "parse_serial",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PAGE_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html", JSON_TYPE)
_SERIAL_RE = re.compile(rb"<!--\s*SERIAL\s+(\d+)\s*-->")


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_page_content_type(content_type: str | None) -> bool:
    """True for the content types a simple index may answer a page request with."""
    return _mime(content_type) in PAGE_TYPES


class PageFile(NamedTuple):
    """One file link: absolute ``url`` (no fragment), ``sha256`` hex or None, ``yanked``
    (False, True, or the reason), the sha256 of its PEP 658 ``.metadata`` when the page names
    one, its ``size`` in bytes and ``upload_time`` when a PEP 700 JSON page names them,
    ``requires_python``, and ``has_metadata`` (the page offers a ``.metadata`` file, with or
    without its hash)."""

    filename: str
    url: str
    sha256: str | None = None
    yanked: bool | str = False
    metadata_sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    has_metadata: bool = False
    upload_time: str | None = None


class ProjectPage(NamedTuple):
    files: tuple[PageFile, ...]
    serial: int | None = None
    name: str = ""  # the project's name as the page shows it ("" when it names none)

    def find(self, filename: str, sha256: str | None = None) -> PageFile | None:
        """The link for ``filename``; when ``sha256`` is given it must match too."""
        for f in self.files:
            if f.filename == filename and (sha256 is None or f.sha256 in (None, sha256)):
                return f
        return None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[dict[str, str | None]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_serial(headers: Mapping[str, str], body: bytes, content_type: str | None) -> int | None:
    """The page's serial: ``X-PyPI-Last-Serial``, else ``<!--SERIAL n-->``, else JSON
    ``meta._last-serial`` (int or str, as shadowmire writes it). None means unknown."""
    for key, value in headers.items():
        if key.lower() == "x-pypi-last-serial":
            found = _as_int(value)
            if found is not None:
                return found
    if _mime(content_type) == JSON_TYPE:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        meta = data.get("meta") if isinstance(data, dict) else None
        return _as_int(meta.get("_last-serial")) if isinstance(meta, dict) else None
    found_all = _SERIAL_RE.findall(body[-4096:]) or _SERIAL_RE.findall(body)
    return int(found_all[-1]) if found_all else None


def _metadata(value: object) -> tuple[bool, str | None]:
    """PEP 658/714 metadata from an HTML attribute or a JSON value: (offered, sha256)."""
    if isinstance(value, dict):
        sha = value.get("sha256")
        return True, sha.lower() if isinstance(sha, str) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("sha256=") and len(text) > 7:
            return True, text[7:]
        return text not in ("", "false"), None
    return value is True, None


def _json_files(data: object, base_url: str) -> tuple[str, list[PageFile]]:
    if not isinstance(data, dict):
        raise ValueError("a PEP 691 page is a JSON object")
    files: list[PageFile] = []
    for item in data.get("files", []):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        url, sha = split_sha256(urljoin(base_url, item["url"]))
        hashes = item.get("hashes")
        if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
            sha = hashes["sha256"]
        name = item.get("filename")
        if not isinstance(name, str):
            name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        yanked = item.get("yanked", False)
        offered, meta_sha = _metadata(item.get("core-metadata", item.get("dist-info-metadata")))
        size, rp, up = item.get("size"), item.get("requires-python"), item.get("upload-time")
        files.append(PageFile(
            name, url, sha.lower() if sha else None,
            yanked if isinstance(yanked, str) and yanked else bool(yanked), meta_sha,
            size if type(size) is int and size >= 0 else None,
            rp if isinstance(rp, str) and rp else None, offered,
            up if isinstance(up, str) else None))
    name = data.get("name")
    return (name if isinstance(name, str) else ""), files


def _html_files(body: bytes, base_url: str) -> tuple[str, list[PageFile]]:
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    parser.close()
    files: list[PageFile] = []
    for attrs in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, sha = split_sha256(urljoin(base_url, href))
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        offered, meta_sha = _metadata(attrs.get("data-core-metadata",
                                                attrs.get("data-dist-info-metadata")))
        yanked: bool | str = (attrs.get("data-yanked") or True) if "data-yanked" in attrs \
            else False
        files.append(PageFile(name, url, sha, yanked, meta_sha, None,
                              attrs.get("data-requires-python") or None, offered))
    return parser.title.strip().removeprefix("Links for ").strip(), files


def parse_page(
    body: bytes, base_url: str, content_type: str | None, headers: Mapping[str, str] | None = None
) -> ProjectPage:
    """Files, serial and name of a project page served at ``base_url``; relative links
    resolved. ``ValueError`` when a JSON page is not JSON."""
    serial = parse_serial(headers or {}, body, content_type)
    if _mime(content_type) == JSON_TYPE:
        name, files = _json_files(json.loads(body) if body.strip() else {}, base_url)
    else:
        name, files = _html_files(body, base_url)
    return ProjectPage(tuple(files), serial, name)
