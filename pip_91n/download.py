"""Resumable, sha256-verified, multi-source downloads: the public API.

``fetch(candidates, sha256, dest)`` gets one file from an ordered list of URLs that all serve
the same bytes (mirrors of one index, or Hugging Face endpoints for a model file), and puts
it at ``dest`` only once its sha256 matches (``os.replace``: ``dest`` is either absent, the old
file, or the verified new one). ``open_stream(...)`` gives the same download as a file-like
object (``read(n)``) that pip's progress bar and its own hash check can consume; it holds back
the last byte until the hash matched, so a consumer never sees a whole, unverified file.

Interrupted downloads stay in ``PIP_91N_CACHE_DIR/partials`` and the next call resumes them,
from whichever candidate answers. Files of ``segment_threshold`` bytes or more are fetched in
segments from several candidates at once. Processes fetching the same file share the work
through a file lock. How: ``pip_91n.download_engine``. Housekeeping: ``clean()``, ``purge()``.

Importing this module imports no httpx; the engine does so when a download starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pip_91n.config import DEFAULT_TIMEOUT, Source, parse_seconds
from pip_91n.errors import ConfigError, DownloadFailed
from pip_91n.partials import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BYTES,
    CleanReport,
    Journal,
    PartialMeta,
    PartialStore,
)

if TYPE_CHECKING:
    import httpx

    from pip_91n.catalog import Mirror
    from pip_91n.config import MirrorConfig
    from pip_91n.download_engine import Download, EngineOptions
    from pip_91n.health import HealthStore
    from pip_91n.wire import Wire

__all__ = [
    "DEFAULT_SEGMENT_THRESHOLD",
    "DownloadOptions",
    "DownloadStream",
    "clean",
    "fetch",
    "fetch_small",
    "health_reporter",
    "open_stream",
    "purge",
]

log = logging.getLogger("pip_91n")

DEFAULT_SEGMENT_THRESHOLD = 32 * 1024**2
_SHA256 = re.compile(r"^(?:sha256[=:])?([0-9a-fA-F]{64})$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

Progress = Callable[[int, "int | None"], None]
OnAttempt = Callable[[str, "str | None", float], None]


def _parse_bytes(text: str, var: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise ConfigError(f"{var}={text!r} is not a size; use bytes or a K/M/G suffix, e.g. 32M")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class DownloadOptions:
    """How downloads behave. ``DownloadOptions.from_env()`` reads the ``PIP_91N_*`` variables.

    - ``cache_dir``: where partials live (``<cache_dir>/partials``); None: ``PIP_91N_CACHE_DIR``
      or the platform cache dir.
    - ``segment_threshold``: files this large or larger are fetched in segments from up to
      ``max_connections`` candidates at once (``PIP_91N_SEGMENT_THRESHOLD``, default 32 MiB).
    - ``timeout``: seconds to connect, to get the first byte, and between two reads
      (``PIP_91N_TIMEOUT``); a source that stalls longer loses its range to the others.
    - ``retries``: a source is dropped after this many failures in a row without progress.
    - ``lock_stall``: seconds to wait for another process's download that makes no progress.
    - ``max_age`` / ``max_bytes``: limits for partials, applied before each download.
    """

    cache_dir: Path | None = None
    segment_threshold: int = DEFAULT_SEGMENT_THRESHOLD
    max_connections: int = 4
    min_split: int = 1024**2
    chunk_size: int = 64 * 1024
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 3
    lock_stall: float = 120.0
    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> DownloadOptions:
        env = os.environ if environ is None else environ
        opts = cls()
        if env.get("PIP_91N_CACHE_DIR", "").strip():
            opts = replace(opts, cache_dir=Path(env["PIP_91N_CACHE_DIR"].strip()).expanduser())
        if env.get("PIP_91N_TIMEOUT", "").strip():
            timeout = parse_seconds(env["PIP_91N_TIMEOUT"].strip(), "timeout",
                                    Source("env", "PIP_91N_TIMEOUT"), zero_ok=False)
            opts = replace(opts, timeout=timeout)
        if env.get("PIP_91N_SEGMENT_THRESHOLD", "").strip():
            opts = replace(opts, segment_threshold=_parse_bytes(
                env["PIP_91N_SEGMENT_THRESHOLD"], "PIP_91N_SEGMENT_THRESHOLD"))
        return replace(opts, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: MirrorConfig, **overrides: object) -> DownloadOptions:
        """Options for the mirror chain's resolved settings (cache dir and timeout)."""
        opts = cls.from_env()
        return replace(opts, cache_dir=config.cache_dir, timeout=config.timeout,
                       **overrides)  # type: ignore[arg-type]

    def engine(self) -> EngineOptions:
        from pip_91n.download_engine import EngineOptions

        return EngineOptions(
            segment_threshold=self.segment_threshold,
            max_connections=max(1, self.max_connections),
            min_split=max(64 * 1024, self.min_split),
            chunk_size=max(4096, self.chunk_size),
            timeout=self.timeout,
            retries=max(1, self.retries),
            lock_stall=self.lock_stall,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            headers=dict(self.headers),
            verify=self.verify,
        )


def _check(candidates: Sequence[str] | str, sha256: str) -> tuple[list[str], str]:
    if isinstance(candidates, str):
        candidates = [candidates]
    urls = list(dict.fromkeys(u.split("#", 1)[0] for u in candidates if u))
    if not urls:
        raise ValueError("fetch() needs at least one candidate URL")
    m = _SHA256.match(sha256.strip())
    if not m:
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return urls, m.group(1).lower()


def _filename(url: str) -> str:
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return name or "download"


def _publish(src: Path, dest: Path) -> None:
    """Put the verified ``src`` at ``dest`` atomically (hard link when possible, else copy)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _engine(
    candidates: Sequence[str] | str,
    sha256: str,
    *,
    size: int | None,
    filename: str | None,
    progress: Progress | None,
    options: DownloadOptions | None,
    transport: httpx.BaseTransport | None,
    on_attempt: OnAttempt | None,
) -> Download:
    from pip_91n.download_engine import Download

    urls, sha = _check(candidates, sha256)
    opts = options if options is not None else DownloadOptions.from_env()
    return Download(
        urls, sha, store=PartialStore(opts.cache_dir), options=opts.engine(), size=size,
        filename=filename or _filename(urls[0]), progress=progress, on_attempt=on_attempt,
        transport=transport,
    )


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
    on_attempt: OnAttempt | None = None,
) -> Path:
    """Download the file with ``sha256`` from ``candidates`` (ordered URLs of the same file)
    to ``dest`` (a file path, or an existing directory: then ``dest/filename``).

    ``size`` (bytes), when known, is checked against every source. ``progress(done, total)``
    is called from this thread about ten times a second (``total`` None while unknown).
    ``on_attempt(url, reason, seconds)`` reports each request: reason None on success
    (for a health memory). ``transport`` replaces httpx's (tests use ``httpx.MockTransport``).

    Returns the path written. Raises ``DownloadFailed`` (listing each source and why) when no
    source delivers the file with that hash; the partial is kept for the next call.
    """
    from pip_91n.download_engine import hash_file

    eng = _engine(candidates, sha256, size=size, filename=filename, progress=progress,
                  options=options, transport=transport, on_attempt=on_attempt)
    target = Path(dest)
    if target.is_dir():
        target = target / eng.filename
    if target.is_file() and (size is None or target.stat().st_size == size) and \
            hash_file(target) == eng.sha256:
        if progress is not None:
            n = target.stat().st_size
            progress(n, n)
        return target
    complete = eng.run()
    _publish(complete, target)
    return target


class DownloadStream:
    """A download read like a response body: ``read(n)``, iteration, ``close()``.

    The download runs in a background thread (into the cache dir, as ``fetch`` does); ``read``
    returns bytes as they arrive, in order, except the last one, which waits for the sha256
    check. ``read`` then returns b"" at the end, or raises ``DownloadFailed``. If a restart
    replaced bytes already handed out, and the verified file differs in them, ``read`` raises
    instead of silently joining two different files.

    ``size`` is the expected length once known (``Content-Length`` for a wrapper),
    ``path`` the verified file in the cache dir after the end.
    """

    def __init__(self, engine: Download) -> None:
        self._eng = engine
        self.sha256 = engine.sha256
        self.filename = engine.filename
        self._pos = 0
        self._fd: int | None = None
        self._hasher = hashlib.sha256()
        self._gen: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pip-91n-stream-{engine.sha256[:8]}")
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(BaseException):
            self._eng.run()

    @property
    def size(self) -> int | None:
        return self._eng.size

    def tell(self) -> int:
        return self._pos

    @property
    def path(self) -> Path | None:
        return self._eng.data_path if self._eng.verified else None

    def wait_size(self, timeout: float) -> int | None:
        """Block until the size is known (or the download ended), at most ``timeout`` s."""
        with self._eng.cond:
            self._eng.cond.wait_for(lambda: self._eng.size is not None or self._eng.finished,
                                    timeout)
            return self._eng.size

    def _check_replaced(self) -> None:
        """After a restart: the bytes already handed out must equal the verified file's."""
        from pip_91n.download_engine import hash_file

        path = self._eng.data_path
        assert path is not None
        if self._pos and hash_file(path, self._pos) != self._hasher.hexdigest():
            raise DownloadFailed(self.filename, [*self._eng.attempts]) from None

    def read(self, n: int = -1) -> bytes:
        from pip_91n.download_engine import pread

        if self._closed:
            raise ValueError("read from a closed DownloadStream")
        eng = self._eng
        for _ in range(10_000_000):  # bounded: each turn waits <= 0.2 s or returns
            with eng.cond:
                if eng.error is not None:
                    if isinstance(eng.error, DownloadFailed):
                        raise eng.error
                    raise DownloadFailed(self.filename, eng.attempts) from eng.error
                end, final = eng.readable()
                gen = eng.generation
                if self._gen is not None and gen != self._gen and self._pos:
                    if not final:
                        eng.cond.wait(0.2)
                        continue
                    self._check_replaced()
                self._gen = gen
                if self._pos >= end:
                    if final:
                        return b""
                    eng.cond.wait(0.2)
                    continue
                path = eng.data_path
            take = end - self._pos if n is None or n < 0 else min(n, end - self._pos)
            if self._fd is None:
                assert path is not None
                try:
                    self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except FileNotFoundError:  # renamed to .complete just now: ask again
                    continue
            data = pread(self._fd, take, self._pos)
            with eng.cond:
                if eng.generation != gen:
                    continue  # a restart raced with this read: read again
            self._pos += len(data)
            self._hasher.update(data)
            return data
        raise DownloadFailed(self.filename, eng.attempts)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(256 * 1024)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Stop reading; an unfinished download is cancelled (its partial stays)."""
        if self._closed:
            return
        self._closed = True
        if not self._eng.finished:
            self._eng.cancel()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> DownloadStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_stream(
    candidates: Sequence[str] | str,
    sha256: str,
    *,
    size: int | None = None,
    filename: str | None = None,
    options: DownloadOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    on_attempt: OnAttempt | None = None,
) -> DownloadStream:
    """Start downloading like ``fetch`` and return a ``DownloadStream`` over its bytes."""
    return DownloadStream(_engine(candidates, sha256, size=size, filename=filename,
                                  progress=None, options=options, transport=transport,
                                  on_attempt=on_attempt))


def fetch_small(
    url: str,
    sha256: str,
    size: int,
    *,
    wire: Wire,
    filename: str | None = None,
    options: DownloadOptions | None = None,
    on_attempt: OnAttempt | None = None,
) -> bytes | None:
    """The fast path for a small file whose ``size`` is known (a page named it): one
    streamed GET of ``url`` through ``wire`` into memory, in the calling thread: no engine
    threads, no lock, nothing written to disk when it works. The bytes are returned only once
    size and sha256 matched; they are not kept in the cache (pip's own HTTP cache keeps what
    pip fetched).

    Returns None when the fast path does not apply (``size`` at or above the segment
    threshold, a partial or verified copy of the file in the cache) or the GET failed
    (reported through ``on_attempt``). A body cut short becomes a partial the engine resumes
    (when no other process holds the file's lock); wrong bytes are dropped. The caller then
    runs the engine, which reuses, resumes, fails over and waits as usual.
    """
    from pip_91n.download_http import judge
    from pip_91n.wire import WireError, describe, follow

    urls, sha = _check(url, sha256)
    opts = options if options is not None else DownloadOptions.from_env()
    if size < 0 or size >= opts.segment_threshold:
        return None
    store = PartialStore(opts.cache_dir)
    if any(store.path(sha, s).exists() for s in (".complete", ".part")):
        return None
    t0 = time.monotonic()
    first_byte, digest = 0.0, hashlib.sha256()
    body = bytearray()
    reason: str | None = None
    validator = ""
    headers = [*{**opts.headers, "Accept-Encoding": "identity"}.items()]
    resp = None
    try:
        resp, _ = follow(wire, urls[0], headers, opts.timeout)
        first_byte = time.monotonic() - t0
        verdict = judge(resp.status, resp.headers, start=0, size=size)
        if verdict.action != "accept":
            reason = verdict.reason or f"HTTP {resp.status}"
        else:
            validator = resp.headers.get("etag") or resp.headers.get("last-modified", "")
            for chunk in resp:
                body += chunk
                if len(body) > size:
                    break
                digest.update(chunk)
    except (WireError, OSError) as exc:
        reason = (describe(exc, opts.timeout) if resp is None
                  else f"body cut short after {len(body)} bytes: {exc}")
    finally:
        if resp is not None:
            resp.close()
    n = len(body)
    if reason is None and n != size:
        reason = f"serves {n}{'+' if n > size else ''} bytes, expected {size}"
    if reason is None and digest.hexdigest() != sha:
        reason = (f"sha256 mismatch (got {digest.hexdigest()[:12]}..., expected "
                  f"{sha[:12]}...)")
        log.warning("pip-91n: %s: %s; fetching it again", filename or _filename(urls[0]),
                    reason)  # as the engine says it
    if reason is not None:
        if 0 < n < size and not reason.startswith("serves"):  # cut short: resumable
            _keep_partial(store, PartialMeta(sha, filename or _filename(urls[0]), size,
                                             {urls[0]: validator} if validator else {}),
                          bytes(body))
        if on_attempt is not None:
            on_attempt(urls[0], reason, time.monotonic() - t0)
        return None
    if on_attempt is not None:
        on_attempt(urls[0], None, first_byte)
    return bytes(body)


def _keep_partial(store: PartialStore, meta: PartialMeta, data: bytes) -> None:
    """Store ``data``, the first bytes of the file, as a partial the engine resumes (unless
    another process holds the file's lock: it is fetching the file itself)."""
    lock = store.lock(meta.sha256)
    if not lock.try_acquire():
        return
    try:
        if store.path(meta.sha256, ".part").exists():
            return
        store.path(meta.sha256, ".part").write_bytes(data)
        journal = Journal(store.path(meta.sha256, ".ranges"))
        try:
            journal.record(0, len(data))
        finally:
            journal.close()
        store.save_meta(meta)
    except OSError:
        store.discard(meta.sha256, keep_complete=True)
    finally:
        lock.release()


def health_reporter(health: HealthStore, chain: Sequence[Mirror]) -> OnAttempt:
    """An ``on_attempt`` callback that feeds the mirror chain's health memory: a request that
    worked is a success, a failure (reset, timeout, 5xx, bad bytes) a failure of its mirror.
    A 404 is not held against the mirror (it may just lag behind); URLs outside ``chain``
    are ignored."""
    from pip_91n.routing import mirror_for_url

    def report(url: str, reason: str | None, seconds: float) -> None:
        mirror = mirror_for_url(url, chain)
        if mirror is None:
            return
        if reason is None:
            health.record_success(mirror.name, seconds)
        elif not reason.startswith("HTTP 404"):
            health.record_failure(mirror.name, reason)

    return report


def clean(options: DownloadOptions | None = None) -> CleanReport:
    """Drop partials older than ``max_age`` or beyond ``max_bytes`` (in-use ones stay)."""
    opts = options if options is not None else DownloadOptions.from_env()
    return PartialStore(opts.cache_dir).clean(max_age=opts.max_age, max_bytes=opts.max_bytes)


def purge(cache_dir: str | os.PathLike[str] | None = None) -> CleanReport:
    """Delete every partial and cached verified file not in use (for ``pip-91n purge``)."""
    root = Path(cache_dir) if cache_dir is not None else DownloadOptions.from_env().cache_dir
    return PartialStore(root).purge()
