"""Resumable, sha256-verified, multi-source downloads: the public API.

``fetch(candidates, sha256, dest)`` gets one file from an ordered list of URLs that all serve
the same bytes (mirrors of one index, or Hugging Face endpoints for a model file), and puts
it at ``dest`` only once its sha256 matches (``dest`` is either absent, the old file, or the
verified new one). ``open_stream(...)`` gives the same download as a file-like object
(``read(n)``) that pip's progress bar and its own hash check can consume; it holds back the
last byte until the hash matched, so a consumer never sees a whole, unverified file.

Interrupted downloads stay in ``PIP_91N_CACHE_DIR/partials`` and the next call resumes them,
from whichever candidate answers; a finished file is moved to its destination (or removed
once a stream's reader has it), so nothing finished stays in the cache dir. Files of ``segment_threshold`` bytes or more are fetched in
segments from several candidates at once. Processes fetching the same file share the work
through a file lock. How: ``pip_91n.downloads.engine``. Housekeeping: ``clean()``,
``purge()``.

Requests go through a ``pip_91n.net.wire.Wire``: ``wire`` (inside pip: pip's own pools), or
``transport`` (an httpx transport), or the default httpx pool. Importing this module imports
neither httpx nor the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pip_91n.downloads.files import hash_file, move_into
from pip_91n.downloads.options import DownloadOptions
from pip_91n.downloads.partials import CleanReport, Journal, PartialMeta, PartialStore

if TYPE_CHECKING:  # the engine loads when a download starts, not with the small-file path
    import httpx

    from pip_91n.downloads.engine import Download
    from pip_91n.downloads.state import OnAttempt, Progress
    from pip_91n.downloads.stream import DownloadStream
    from pip_91n.net.wire import Wire

__all__ = [
    "check_request",
    "clean",
    "fetch",
    "filename_of",
    "has_copy",
    "keep_partial",
    "open_stream",
    "purge",
]

_SHA256 = re.compile(r"^(?:sha256[=:])?([0-9a-fA-F]{64})$")


def check_request(candidates: Sequence[str] | str, sha256: str) -> tuple[list[str], str]:
    """(the candidate URLs, without fragments and duplicates; the lower-case hex digest).
    ``ValueError`` for no candidate or a digest that is not sha256 hex."""
    if isinstance(candidates, str):
        candidates = [candidates]
    urls = list(dict.fromkeys(u.split("#", 1)[0] for u in candidates if u))
    if not urls:
        raise ValueError("fetch() needs at least one candidate URL")
    m = _SHA256.match(sha256.strip())
    if not m:
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return urls, m.group(1).lower()


def filename_of(url: str) -> str:
    """The last path segment of ``url``, unquoted (``download`` when there is none)."""
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return name or "download"


def _wire(wire: Wire | None, transport: httpx.BaseTransport | None) -> Wire:
    if wire is not None:
        return wire
    from pip_91n.net.httpx_wire import HttpxWire, default_wire

    return HttpxWire(transport) if transport is not None else default_wire()


def _download(
    candidates: Sequence[str] | str,
    sha256: str,
    *,
    size: int | None,
    filename: str | None,
    progress: Progress | None,
    options: DownloadOptions | None,
    transport: httpx.BaseTransport | None,
    wire: Wire | None,
    on_attempt: OnAttempt | None,
) -> Download:
    from pip_91n.downloads.engine import Download
    from pip_91n.downloads.state import DownloadState

    urls, sha = check_request(candidates, sha256)
    opts = options if options is not None else DownloadOptions.from_env()
    state = DownloadState(urls, sha, store=PartialStore(opts.cache_dir), options=opts.bounded(),
                          size=size, filename=filename or filename_of(urls[0]),
                          progress=progress, on_attempt=on_attempt)
    return Download(state, _wire(wire, transport))


def fetch(
    candidates: Sequence[str] | str,
    sha256: str,
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    filename: str | None = None,
    progress: Progress | None = None,
    options: DownloadOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    wire: Wire | None = None,
    on_attempt: OnAttempt | None = None,
) -> Path:
    """Download the file with ``sha256`` from ``candidates`` (ordered URLs of the same file)
    to ``dest`` (a file path, or an existing directory: then ``dest/filename``).

    ``size`` (bytes), when known, is checked against every source. ``progress(done, total)``
    is called from this thread about ten times a second (``total`` None while unknown).
    ``on_attempt(url, reason, seconds)`` reports each request: reason None on success
    (for a health memory). ``transport`` replaces httpx's (tests use ``httpx.MockTransport``);
    ``wire`` replaces httpx altogether.

    Returns the path written. Raises ``DownloadFailed`` (listing each source and why) when no
    source delivers the file with that hash; the partial is kept for the next call.
    """
    download = _download(candidates, sha256, size=size, filename=filename, progress=progress,
                         options=options, transport=transport, wire=wire,
                         on_attempt=on_attempt)
    target = Path(dest)
    if target.is_dir():
        target = target / download.filename
    if target.is_file() and (size is None or target.stat().st_size == size) and \
            hash_file(target) == download.sha256:
        if progress is not None:
            n = target.stat().st_size
            progress(n, n)
        return target
    return download.run(deliver=lambda verified: move_into(verified, target))


def open_stream(
    candidates: Sequence[str] | str,
    sha256: str,
    *,
    size: int | None = None,
    filename: str | None = None,
    options: DownloadOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    wire: Wire | None = None,
    on_attempt: OnAttempt | None = None,
) -> DownloadStream:
    """Start downloading like ``fetch`` and return a ``DownloadStream`` over its bytes."""
    from pip_91n.downloads.stream import DownloadStream

    return DownloadStream(_download(candidates, sha256, size=size, filename=filename,
                                    progress=None, options=options, transport=transport,
                                    wire=wire, on_attempt=on_attempt))


def has_copy(sha256: str, options: DownloadOptions | None = None) -> bool:
    """Whether the cache holds a partial or a verified copy of the file (the engine then
    reuses or resumes it)."""
    store = PartialStore((options or DownloadOptions.from_env()).cache_dir)
    return any(store.path(sha256, s).exists() for s in (".complete", ".part"))


def keep_partial(sha256: str, data: bytes, *, filename: str, size: int, url: str,
                 validator: str = "", options: DownloadOptions | None = None) -> None:
    """Keep ``data``, the first bytes of the file (fetched elsewhere from ``url``, which sent
    ``validator`` as its ETag or Last-Modified), as a partial the engine resumes (with
    ``keep_partials`` off, the engine still resumes it in this run, then drops it). Nothing
    is kept when another process holds the file's lock (it is fetching the file itself) or a
    partial is there already."""
    store = PartialStore((options or DownloadOptions.from_env()).cache_dir)
    lock = store.lock(sha256)
    if not lock.try_acquire():
        return
    try:
        if store.path(sha256, ".part").exists():
            return
        store.root.mkdir(parents=True, exist_ok=True)
        store.path(sha256, ".part").write_bytes(data)
        journal = Journal(store.path(sha256, ".ranges"))
        try:
            journal.record(0, len(data))
        finally:
            journal.close()
        store.save_meta(PartialMeta(sha256, filename, size,
                                    {url: validator} if validator else {}))
    except OSError:
        store.discard(sha256)
    finally:
        lock.release()


def clean(options: DownloadOptions | None = None) -> CleanReport:
    """Drop partials older than ``max_age`` or beyond ``max_bytes`` (in-use ones stay)."""
    opts = options if options is not None else DownloadOptions.from_env()
    return PartialStore(opts.cache_dir).clean(max_age=opts.max_age, max_bytes=opts.max_bytes)


def purge(cache_dir: str | os.PathLike[str] | None = None) -> CleanReport:
    """Delete every partial and cached verified file not in use (for ``pip-91n cache
    purge``)."""
    root = Path(cache_dir) if cache_dir is not None else DownloadOptions.from_env().cache_dir
    return PartialStore(root).purge()
