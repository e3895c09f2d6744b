"""``ChainShim``: the chain session (``pip_91n.chain.session``) with what pip adds, behind
the methods the adapter and the response bodies call.

On top of the session it keeps the exact pins and ``--hash`` pins pip asked for (a lagging
mirror's page without the pinned version is not served; the user's hashes win over the
sources' vote), says once per project on stderr why the chain could not serve it, and closes
the file bodies pip leaves open when it exits. Thread-safe; built once, at the first
PipSession.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from pip_91n._startup import report
from pip_91n.chain.attempt import Ask, Fetched
from pip_91n.chain.session import ChainSession
from pip_91n.index.routing import KIND_PAGE, Resource
from pip_91n.net.wire import Wire
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["ChainShim"]


class ChainShim(ChainSession):
    """One pip process's view of the chain. ``stream_from``: files this large stream to pip;
    smaller ones (all, when None) arrive verified."""

    def __init__(self, config: MirrorConfig, chain: Sequence[Mirror], wire: Wire, *,
                 stream_from: int | None) -> None:
        super().__init__(config, chain, wire)
        self.stream_from = stream_from
        self._pins: dict[str, str] = {}  # project -> exact version pip asked for
        self._reported: set[str] = set()  # projects whose failure was reported on stderr
        self._bodies: weakref.WeakSet[Any] = weakref.WeakSet()  # file bodies not closed yet
        atexit.register(self._close_bodies)
        self._lock = threading.Lock()

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
        super().close()
