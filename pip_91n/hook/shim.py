"""``ChainShim``: what one pip process needs of the chain, behind the methods the adapter and
the response bodies call.

It holds the resolved configuration, the mirror chain, one ``Failover`` over pip's own pools
(pages, PEP 658 metadata, files whose sha256 is unknown), the download options (files whose
sha256 a page named go through ``pip_91n.downloads``: resume across runs and mirrors,
segments, and nothing reaches pip before its sha256 matched) and the exact pins pip asked
for. Thread-safe; built once, at the first PipSession.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pip_91n._startup import report
from pip_91n._urls import split_credentials, split_sha256
from pip_91n.chain.attempt import Ask, Fetched
from pip_91n.chain.failover import Failover
from pip_91n.chain.health import health_reporter, split_by_health
from pip_91n.chain.memory import KnownFile
from pip_91n.downloads.options import DownloadOptions
from pip_91n.index.routing import KIND_FILE, KIND_PAGE, Resource, mirror_for_url, resource_url
from pip_91n.net.wire import Wire
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["ChainShim"]


class ChainShim:
    """One process's view of the chain. ``stream_from``: files this large stream to pip;
    smaller ones (all, when None) arrive verified."""

    def __init__(self, config: MirrorConfig, chain: Sequence[Mirror], wire: Wire, *,
                 stream_from: int | None) -> None:
        self.config = config
        self.stream_from = stream_from
        self.chain = tuple(chain)
        self.wire = wire
        self.failover = Failover.from_config(config, chain=self.chain, wire=wire)
        self.options = DownloadOptions.from_config(config)
        self._pins: dict[str, str] = {}  # project -> exact version pip asked for
        self._reported: set[str] = set()  # projects whose failure was reported on stderr
        self._bodies: weakref.WeakSet[Any] = weakref.WeakSet()  # file bodies not closed yet
        atexit.register(self._close_bodies)
        self._lock = threading.Lock()
        self._report_health = health_reporter(self.failover.health, self.chain)

    # -- pages, metadata, unverified files -------------------------------------------------

    def note_pin(self, project: str, version: str | None, hashes: Any = None) -> None:
        """What pip is looking for in ``project``: an exact ``version`` and the user's
        ``--hash`` pins (pip's ``Hashes``), which win over the sources' vote."""
        if version is not None:
            with self._lock:
                self._pins.setdefault(project, version)
        if hashes and self.failover.agreement is not None:
            self.failover.agreement.note_pins(project, hashes)

    def serve(self, res: Resource, url: str, headers: Sequence[tuple[str, str]]) -> Fetched:
        """The chain's verified answer for ``res`` (raises ``AllMirrorsFailed``)."""
        pin = self._pins.get(res.project or "") if res.kind == KIND_PAGE else None
        return self.failover.serve(res, Ask(url, headers, pin))

    # -- files -----------------------------------------------------------------------------

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
        the pages named (None when unknown, or when two mirrors disagreed)."""
        if res.kind != KIND_FILE or res.filename is None:
            return None
        _, named = split_sha256(url)
        if named:
            return named
        known = self.known_file(res.filename)
        return known.sha256 if known and not known.conflict else None

    def ordered(self) -> list[Mirror]:
        agreement = self.failover.agreement
        skip = agreement.distrusted if agreement is not None else {}
        live, resting = split_by_health([m for m in self.chain if m.name not in skip],
                                        self.failover.health.snapshot(), time.time())
        return [*live, *resting]

    def candidates(self, res: Resource, request_url: str) -> list[str]:
        """The URLs of ``res`` on each chain mirror that can name it, healthiest first."""
        known = self.known_file(res.filename or "")
        urls = known.urls if known else {}
        out: list[str] = []
        for mirror in self.ordered():
            url = resource_url(res, mirror, urls)
            if url is not None:
                out.append(url)
        if res.mirror is not None and request_url not in out:
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

    def _read_page(self, mirror: Mirror, project: str) -> None:
        t0 = time.monotonic()
        reason = self.failover.read_page(mirror, project)
        if reason is not None:
            url = resource_url(Resource(KIND_PAGE, project=project), mirror) or ""
            self.on_attempt(split_credentials(url)[0], reason, time.monotonic() - t0)

    # -- what happened ---------------------------------------------------------------------

    def report_failure(self, res: Resource, exc: Exception) -> None:
        """Say once per project (or file) on stderr why the chain could not serve it: each
        mirror, why it failed, and the fix. pip itself would only say that the package does
        not exist."""
        key = res.project or res.filename or res.key
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        report(str(exc))

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

    def track(self, body: Any) -> None:
        """Remember a file body until it is closed: one pip leaves open when it exits (an
        interrupted install) is closed then, so its download stops cleanly."""
        with self._lock:
            self._bodies.add(body)

    def _close_bodies(self) -> None:
        with self._lock:
            bodies = list(self._bodies)
        for body in bodies:
            with contextlib.suppress(Exception):
                body.close()

    def close(self) -> None:
        atexit.unregister(self._close_bodies)
        self._close_bodies()
        self.failover.close()
