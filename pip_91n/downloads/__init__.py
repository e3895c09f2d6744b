"""Resumable, sha256-verified, multi-source downloads. Knows nothing about mirrors or pip.

The public API (imported on first use, so ``import pip_91n.downloads`` stays light)::

    from pip_91n.downloads import fetch, open_stream, DownloadOptions, DownloadFailed

- ``fetch(candidates, sha256, dest, ...)``: the file, verified, at ``dest``;
- ``open_stream(candidates, sha256, ...)``: the same download read like a response body;
- ``DownloadOptions``: segment threshold, timeout, retries, cache dir (``from_env()``);
- ``clean()`` / ``purge()``: housekeeping of the partials in the cache dir;
- ``parse_size("32M")``: sizes as every pip-91n and oss_runtime setting spells them;
- ``redact_text(message)``: the password of every URL in a message shown as ``***``, as in
  every ``DownloadFailed``;
- ``DownloadFailed``: no source delivered the file whole with its sha256.

Inside: ``api`` (the calls), ``options``, ``engine`` (lock → reuse → fetch → verify → keep),
``workers`` (sources and ranges), ``state`` (what they share), ``stream`` (readers),
``files`` (pread, pwrite, hashing, moving into place), ``resume`` (pip's resume rules),
``segments`` (range bookkeeping), ``partials`` (the cache dir's entries), ``small`` (one GET
into memory for a small file of known size, before the engine is needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pip_91n._urls import redact_text
    from pip_91n.downloads.api import clean, fetch, open_stream, purge
    from pip_91n.downloads.options import DownloadOptions
    from pip_91n.downloads.partials import CleanReport
    from pip_91n.downloads.stream import DownloadStream
    from pip_91n.errors import DownloadFailed
    from pip_91n.settings.values import parse_size

_LAZY: dict[str, str] = {
    "fetch": "pip_91n.downloads.api",
    "open_stream": "pip_91n.downloads.api",
    "clean": "pip_91n.downloads.api",
    "purge": "pip_91n.downloads.api",
    "DownloadOptions": "pip_91n.downloads.options",
    "DownloadStream": "pip_91n.downloads.stream",
    "CleanReport": "pip_91n.downloads.partials",
    "DownloadFailed": "pip_91n.errors",
    "parse_size": "pip_91n.settings.values",
    "redact_text": "pip_91n._urls",
}

__all__ = [
    "CleanReport",
    "DownloadFailed",
    "DownloadOptions",
    "DownloadStream",
    "clean",
    "fetch",
    "open_stream",
    "parse_size",
    "purge",
    "redact_text",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pip_91n.downloads' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
