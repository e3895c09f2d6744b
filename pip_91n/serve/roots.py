"""The ``/simple/`` root, streamed: the copy a mirror sent (on disk, see
``pip_91n.serve.upstream``) read in chunks and rendered again chunk by chunk, as PEP 503
HTML or PEP 691 JSON, with links relative to the server. PyPI's root lists some 700 000
projects (tens of MB): it is never held in memory whole, unless a mirror sent it as JSON,
which is parsed whole (mirrors are asked for HTML first).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from pip_91n.index.pages import JSON_TYPE
from pip_91n.index.routing import normalize_name

__all__ = ["render_root"]

_CHUNK = 256 * 1024


class _Names(HTMLParser):
    """Project names of the root page's links, collected as the HTML is fed in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.names: list[str] = []
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", ""

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            path = urlsplit(self._href).path.rstrip("/")
            name = self._text.strip() or unquote(path.rsplit("/", 1)[-1])
            if name:
                self.names.append(name)
            self._href = None


def _names(path: Path, is_json: bool) -> Iterator[list[str]]:
    """The project names of the copy at ``path``, a batch at a time."""
    if is_json:
        data = json.loads(path.read_bytes())
        projects = data.get("projects", []) if isinstance(data, dict) else []
        names = [p["name"] for p in projects
                 if isinstance(p, dict) and isinstance(p.get("name"), str)]
        for i in range(0, len(names), 4096):
            yield names[i:i + 4096]
        return
    parser = _Names()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            parser.feed(chunk.decode("utf-8", "replace"))
            if parser.names:
                batch, parser.names = parser.names, []
                yield batch
    parser.close()
    if parser.names:
        yield parser.names


def render_root(path: Path, is_json: bool, content_type: str) -> Iterator[bytes]:
    """The root page for ``content_type``, in chunks."""
    as_json = content_type == JSON_TYPE
    if as_json:
        yield b'{"meta":{"api-version":"1.0"},"projects":['
    else:
        yield (b'<!DOCTYPE html>\n<html>\n  <head>\n'
               b'    <meta name="pypi:repository-version" content="1.0">\n'
               b"    <title>Simple index</title>\n  </head>\n  <body>\n")
    first = True
    for batch in _names(path, is_json):
        if as_json:
            items = ",".join(json.dumps({"name": n}) for n in batch)
            yield (b"" if first else b",") + items.encode()
        else:
            yield "".join(f'    <a href="{quote(normalize_name(n))}/">{html.escape(n)}</a>\n'
                          for n in batch).encode()
        first = False
    yield b"]}" if as_json else b"  </body>\n</html>\n"
