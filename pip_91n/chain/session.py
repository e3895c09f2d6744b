"""``ChainSession``: one process's view of the chain, for whatever hands files out (the pip
hook, ``pip-91n serve``).

It holds the resolved configuration, the mirror chain, one ``Failover`` (pages, PEP 658
metadata, files whose sha256 is unknown, the sources' vote) over a ``Wire``, and the download
options (files whose sha256 a page named go through ``pip_91n.downloads``: resume across
runs and mirrors, segments, nothing handed out before its sha256 matched). It knows each
file's copies on every mirror (``candidates``), reads the pages of mirrors that have not
named a file yet (``look_up_file``), and feeds the health memory and the request log with
the download engine's attempts. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pip_91n._urls import split_credentials, split_sha256
from pip_91n.chain.failover import Failover
from pip_91n.chain.health import health_reporter, split_by_health
from pip_91n.chain.memory import KnownFile
from pip_91n.downloads.options import DownloadOptions
from pip_91n.downloads.small import fetch_small
from pip_91n.errors import DownloadFailed
from pip_91n.index.routing import KIND_FILE, KIND_PAGE, Resource, mirror_for_url, resource_url
from pip_91n.net.wire import Wire
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

if TYPE_CHECKING:
    from pip_91n.downloads.state import OnAttempt
    from pip_91n.downloads.stream import DownloadStream

__all__ = ["ChainSession"]


class ChainSession:
    """The chain, its memory and the download options of one process."""

    def __init__(self, config: MirrorConfig, chain: Sequence[Mirror], wire: Wire) -> None:
        self.config = config
        self.chain = tuple(chain)
        self.wire = wire
        self.failover = Failover.from_config(config, chain=self.chain, wire=wire)
        self.options = DownloadOptions.from_config(config)
        self._report_health = health_reporter(self.failover.health, self.chain)

    def options_for(self, *, keep_partials: bool) -> DownloadOptions:
        """The download options, keeping unfinished downloads for the next run or not (pip's
        ``--no-cache-dir``)."""
        if keep_partials == self.options.keep_partials:
            return self.options
        return replace(self.options, keep_partials=keep_partials)

    def known_file(self, filename: str) -> KnownFile | None:
        return self.failover.files.get(filename)

    def expected_sha256(self, res: Resource, url: str) -> str | None:
        """The sha256 the file ``res`` must have: the ``#sha256=`` of ``url``, else the one
        the pages named (None when unknown, or when mirrors disagree and no vote settled
        it)."""
        if res.kind != KIND_FILE or res.filename is None:
            return None
        _, named = split_sha256(url)
        if named:
            return named
        known = self.known_file(res.filename)
        return known.sha256 if known and not known.conflict else None

    def ordered(self) -> list[Mirror]:
        """The chain, healthiest first, without the mirrors that lost a vote this run."""
        agreement = self.failover.agreement
        skip = agreement.distrusted if agreement is not None else {}
        live, resting = split_by_health([m for m in self.chain if m.name not in skip],
                                        self.failover.health.snapshot(), time.time())
        return [*live, *resting]

    def candidates(self, res: Resource, request_url: str = "") -> list[str]:
        """The URLs of ``res`` on each chain mirror that can name it, healthiest first
        (``request_url``, the URL a client asked for, comes last when no layout names it)."""
        known = self.known_file(res.filename or "")
        urls = known.urls if known else {}
        out: list[str] = []
        for mirror in self.ordered():
            url = resource_url(res, mirror, urls)
            if url is not None:
                out.append(url)
        if res.mirror is not None and request_url and request_url not in out:
            out.append(request_url.split("#", 1)[0])
        return list(dict.fromkeys(out))

    def look_up_file(self, res: Resource, *, again: bool = False) -> None:
        """Read the project page of every live mirror that does not know ``res`` yet, so
        its copy of the file becomes a candidate (mirrors with their own layout). A mirror
        whose layout already names the file, or whose page was read, is not asked
        (``again``: resting mirrors and re-reads too, after a failure)."""
        if res.project is None or res.filename is None:
            return
        known = self.known_file(res.filename)
        urls = known.urls if known else {}
        live, resting = split_by_health(self.chain, self.failover.health.snapshot(),
                                        time.time())
        todo = [m for m in (live + resting if again else live)
                if resource_url(res, m, urls) is None
                and (again or not self.failover.files.page_read(m.name, res.project))]
        threads = [threading.Thread(target=self._read_page, args=(m, res.project), daemon=True)
                   for m in todo]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.config.timeout * 2 + 1)

    def fetch_small(self, res: Resource, sha256: str, size: int, *, options: DownloadOptions,
                    on_attempt: OnAttempt, request_url: str = "") -> bytes | None:
        """A small file of known ``size``: one GET from its first candidate into memory,
        verified (``pip_91n.downloads.small``); None when the engine has to do it."""
        urls = self.candidates(res, request_url)
        if not urls:
            return None
        return fetch_small(urls[0], sha256, size, wire=self.wire, filename=res.filename,
                           options=options, on_attempt=on_attempt)

    def open_file(self, res: Resource, sha256: str, *, options: DownloadOptions,
                  on_attempt: OnAttempt, request_url: str = "", size: int | None = None
                  ) -> DownloadStream:
        """The download of ``res`` from every copy the chain knows (``candidates``): the
        engine's segments, resume and failover; ``DownloadFailed`` when none is known."""
        from pip_91n.downloads.api import open_stream

        urls = self.candidates(res, request_url)
        if not urls:
            raise DownloadFailed(res.filename or request_url, [])
        return open_stream(urls, sha256, size=size, filename=res.filename, options=options,
                           wire=self.wire, on_attempt=on_attempt)

    def more_copies(self, res: Resource, request_url: str = "") -> bool:
        """After a failure: read every mirror's page again (resting ones too); True when
        that turned up copies of ``res`` not tried yet."""
        before = self.candidates(res, request_url)
        self.look_up_file(res, again=True)
        return self.candidates(res, request_url) != before

    def _read_page(self, mirror: Mirror, project: str) -> None:
        t0 = time.monotonic()
        reason = self.failover.read_page(mirror, project)
        if reason is not None:
            url = resource_url(Resource(KIND_PAGE, project=project), mirror) or ""
            self.on_attempt(split_credentials(url)[0], reason, time.monotonic() - t0)

    def on_attempt(self, url: str, reason: str | None, seconds: float, *,
                   log: bool = True) -> None:
        """A request of the download engine: feeds the health memory (a 404 is not held
        against a mirror) and, with ``log``, the request log."""
        if log:
            self.log(url, None if reason else 200, 0, seconds, reason or "")
        self._report_health(url, reason, seconds)

    def log(self, url: str, status: int | None, nbytes: int, seconds: float,
            reason: str = "") -> None:
        """One line of ``PIP_91N_LOG`` for a request to ``url``."""
        mirror = mirror_for_url(url, self.chain)
        self.failover.log.write(mirror.name if mirror else "-", url, status, nbytes, seconds,
                                reason)

    def close(self) -> None:
        self.failover.close()
