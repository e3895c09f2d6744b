"""Files of the local index: every one passes ``FileServer.release_file`` (the gate), then
comes from the cache, or from the download engine through a single flight.

Downloads use the pieces the hook uses: candidates and look-ups from the
``ChainSession`` (each mirror's copy of the file, healthiest first), the small-file fast path
(``pip_91n.downloads.small``), ``pip_91n.downloads.open_stream`` (multi-source segments,
resume across runs and mirrors, failover, sha256 before the last byte), and the session's
health and request log. PEP 658 metadata comes through the chain's ``Failover`` and
is checked against the hash the page named.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pip_91n.chain.attempt import Ask, Fetched
from pip_91n.errors import AllMirrorsFailed, DownloadFailed
from pip_91n.index.routing import KIND_FILE, KIND_METADATA, Resource
from pip_91n.serve.flights import Flights, Once, Reader, Sink
from pip_91n.serve.simple import Entry, Page
from pip_91n.serve.store import FileCache
from pip_91n.serve.upstream import USER_AGENT, Chain

if TYPE_CHECKING:
    from pip_91n.downloads.stream import DownloadStream

__all__ = ["PREFETCH", "SMALL", "FileServer", "NotListed"]

log = logging.getLogger("pip_91n")

_CHUNK = 1024 * 1024
#: Metadata files prefetched after a page went out, at most (the newest version's files).
PREFETCH = 4
#: Files smaller than this (whose size the page named) come with one GET into memory.
SMALL = 16 * 1024 * 1024


class NotListed(Exception):
    """The file is not one the project's page names with that sha256 (the app says 404)."""


class FileServer:
    """Files for the app: ``release_file`` (the gate), ``cached``, ``join`` (a flight),
    ``metadata``."""

    def __init__(self, chain: Chain, cache: FileCache, flights: Flights) -> None:
        self.chain, self.cache, self.flights = chain, cache, flights
        self._lock = threading.Lock()
        self._metadata_flights: Once[bytes] = Once()
        self._prefetched: OrderedDict[str, float] = OrderedDict()
        self._prefetch = ThreadPoolExecutor(max_workers=8,
                                            thread_name_prefix="pip-91n-serve-metadata")

    def close(self) -> None:
        self._prefetch.shutdown(wait=False, cancel_futures=True)

    def release_file(self, project: str, filename: str, sha256: str | None) -> Entry:
        """The one gate every file passes before the server hands it out (from the cache
        or from upstream): the file must be listed, with this sha256, on the page the
        server publishes for ``project`` (read from the chain when none is known, else the
        last good copy), and the sources must vouch for that sha256 (``PIP_91N_VERIFY``,
        ``pip_91n.chain.agreement``). Returns the page's entry; raises ``NotListed`` or
        ``HashNotConfirmed``.

        The place for any further check of (project, filename, sha256) before bytes go out.
        """
        published = self.chain.published(project)
        if published is None or published.page is None or \
                published.page.find(filename) is None:
            try:
                published = self.chain.page(project)
            except AllMirrorsFailed as exc:
                raise NotListed(f"{filename}: no page of {project} is known") from exc
        entry = published.page.find(filename) if published.page is not None else None
        if entry is None or entry.sha256 != sha256:
            raise NotListed(f"{filename} with sha256 {sha256 or '(none)'} is not on "
                            f"{project}'s page")
        agreement = self.chain.failover.agreement
        if agreement is not None and sha256 is not None:  # the sources' vote (issue 19)
            agreement.check_file(project, filename, sha256)  # raises HashNotConfirmed
        return entry

    # -- files -----------------------------------------------------------------------------

    def join(self, project: str, entry: Entry) -> Reader:
        """A reader of the download of ``entry`` (which has a sha256), started if needed."""
        assert entry.sha256 is not None
        sha256 = entry.sha256
        return self.flights.join(
            sha256, lambda sink: self._download(project, entry, sha256, sink))

    def _download(self, project: str, entry: Entry, sha256: str, sink: Sink) -> None:
        """The flight's producer: the engine's stream, in order, into ``sink``."""
        shim = self.chain.shim
        res = Resource(KIND_FILE, project=project, filename=entry.filename)
        served: dict[str, object] = {}

        def attempt(url: str, reason: str | None, seconds: float) -> None:
            if reason is None:
                served.update(url=url, started=time.monotonic() - seconds)
            shim.on_attempt(url, reason, seconds, log=reason is not None)

        def open_() -> DownloadStream:
            if (not shim.candidates(res) or entry.size is None
                    or entry.size >= shim.options.segment_threshold):
                shim.look_up_file(res)  # every live mirror's copy: segments from each
            return shim.open_file(res, sha256, options=shim.options, on_attempt=attempt,
                                  size=entry.size)

        if entry.size is not None and entry.size < SMALL:
            # one GET into memory, verified (the hook's fast path); the engine otherwise
            data = shim.fetch_small(res, sha256, entry.size, options=shim.options,
                                    on_attempt=attempt)
            if data is not None:
                sink.set_size(len(data))
                sink.write(data)
                shim.log(str(served["url"]), 200, len(data),
                         time.monotonic() - float(served["started"]))  # type: ignore[arg-type]
                return
        stream = open_()
        retried = False
        written = 0
        try:
            size = entry.size
            for _ in range(7200):  # at most an hour: the engine times each source out
                if size is not None or sink.cancelled():
                    break
                size = stream.wait_size(0.5)
                if stream.wait(0):
                    break
            sink.set_size(size if size is not None else stream.size)
            while True:
                if sink.cancelled():
                    raise DownloadFailed(entry.filename, [])
                try:
                    data = stream.read(_CHUNK)
                except DownloadFailed:
                    if stream.path is not None:  # verified, but bytes written changed
                        sink.replace_with(stream.path)
                        break
                    if retried:
                        raise
                    retried = True  # once: read every mirror's page again, then go on
                    if not shim.more_copies(res):
                        raise
                    stream.close()
                    stream = open_()
                    stream.skip(written, sink.digest())
                    continue
                if not data:
                    break
                written += len(data)
                sink.write(data)
        finally:
            stream.close()
        if served:
            shim.log(str(served["url"]), 200, written,
                     time.monotonic() - float(served["started"]))  # type: ignore[arg-type]

    def unhashed(self, project: str, entry: Entry) -> Fetched:
        """A file whose page named no sha256: the chain's answer (whole, not verifiable,
        not cached). Mirrors of PyPI name every hash; this is for small private ones."""
        res = Resource(KIND_FILE, project=project, filename=entry.filename)
        ask = Ask(f"http://pip-91n-serve.invalid/files/{project}/-/{entry.filename}",
                  [("user-agent", USER_AGENT)])
        return self.chain.failover.serve(res, ask)

    # -- metadata --------------------------------------------------------------------------

    def prefetch_metadata(self, project: str, page: Page) -> None:
        """Fetch, in the background, the metadata of the newest version's files of ``page``
        (at most ``PREFETCH`` of them, not yanked, metadata hash named, not cached yet): a
        resolver asks for it right after the page, and then finds it here."""
        by_version: dict[Any, list[Entry]] = {}
        for e in page.entries:
            version = _version_of(e.filename)
            if version is not None and e.metadata and not e.yanked:
                by_version.setdefault(version, []).append(e)
        if not by_version:
            return
        newest = by_version[max(by_version)]
        if len(newest) > PREFETCH:
            return
        now = time.monotonic()
        for e in newest:
            if not e.metadata or self.cache.has(e.metadata):
                continue
            with self._lock:  # once a minute at most (a cache too small keeps nothing)
                if now - self._prefetched.get(e.metadata, -60.0) < 60.0:
                    continue
                self._prefetched[e.metadata] = now
                while len(self._prefetched) > 4096:
                    self._prefetched.popitem(last=False)
            self._prefetch.submit(self._quietly, project, e)

    def _quietly(self, project: str, entry: Entry) -> None:
        try:
            self.metadata(project, entry)
        except Exception as exc:  # a guess that failed: the client's own request says why
            log.debug("pip-91n serve: prefetching %s.metadata: %s", entry.filename, exc)

    def metadata(self, project: str, entry: Entry) -> bytes:
        """The PEP 658 metadata of ``entry`` (which names one), verified and kept; one
        upstream request however many callers ask at once."""
        assert entry.metadata is not None
        want = entry.metadata
        if want:
            got = self.cache.open(want)
            if got is not None:
                fd, size = got
                try:
                    return os.pread(fd, size, 0)
                finally:
                    os.close(fd)
        return self._metadata_flights.run(want or f"{project}/{entry.filename}",
                                          lambda: self._fetch_metadata(project, entry))

    def _fetch_metadata(self, project: str, entry: Entry) -> bytes:
        want = entry.metadata
        res = Resource(KIND_METADATA, project=project, filename=entry.filename)
        ask = Ask(f"http://pip-91n-serve.invalid/files/{project}/{entry.filename}.metadata",
                  [("user-agent", USER_AGENT)])
        fetched = self.chain.failover.serve(res, ask)
        try:
            if fetched.status == 404:
                raise NotListed(f"{entry.filename}.metadata: not found on any mirror")
            data = fetched.content()
        finally:
            fetched.close()
        if want and hashlib.sha256(data).hexdigest() != want:
            from pip_91n.downloads.files import sha256_mismatch

            raise DownloadFailed(f"{entry.filename}.metadata", []) from ValueError(
                sha256_mismatch(hashlib.sha256(data).hexdigest(), want))
        if want:
            self.cache.put(want, data)
        return data


def _version_of(filename: str) -> Any:
    """The version a wheel or sdist filename names, or None."""
    from pip_91n.index.staleness import versions_in

    return next(iter(versions_in([filename])), None)
