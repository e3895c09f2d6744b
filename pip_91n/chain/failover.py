"""``Failover``: serve PyPI pages and files from the first good mirror of a chain.

For each request that belongs to the chain (see ``pip_91n.routing``) it tries the mirrors in
order, hedged: after a short head start (``hedge_delay``) the next mirror is raced and the
first good answer wins; the others are cancelled and closed. A mirror is left for the next
one on a DNS, connect or TLS failure, a connect or first-byte timeout, 5xx, 429 (and other
unexpected statuses), 404 when another mirror has the resource, a wrong Content-Type, a body
cut short, a sha256 mismatch, or a stale page. Bodies are read and verified before they are
handed on (files spill to a temporary file above 16 MiB), so nothing unverified reaches the
caller.

When every mirror fails, ``AllMirrorsFailed`` lists each one and why; when every mirror
answers 404 the caller gets a 404. Requests go out through ``Wire``s (``pip_91n.net.wire``),
so this module loads no HTTP library: ``pip_91n.chain.transport.FailoverTransport`` serves
the same race as an httpx transport, and inside pip the wire is pip's own pools. The attempt
logic lives in ``pip_91n.chain.attempt``.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pip_91n._urls import redact, split_sha256
from pip_91n.chain.agreement import Agreement
from pip_91n.chain.attempt import Ask, Attempter, AttemptState, Fetched, Outcome
from pip_91n.chain.health import HealthStore, split_by_health
from pip_91n.chain.memory import KnownFiles, Serials
from pip_91n.chain.requestlog import RequestLog
from pip_91n.chain.workers import Workers
from pip_91n.errors import AllMirrorsFailed, Attempt
from pip_91n.index.pages import ProjectPage
from pip_91n.index.routing import KIND_FILE, KIND_PAGE, Resource
from pip_91n.net.wire import Wire
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig
from pip_91n.settings.values import DEFAULT_HEDGE_DELAY, DEFAULT_TIMEOUT

__all__ = ["MAX_PARALLEL", "Failover", "demote_domain", "settings_of"]

log = logging.getLogger("pip_91n")

#: At most this many mirrors are raced at once for one request.
MAX_PARALLEL = 3


def demote_domain(pending: Sequence[Mirror], domain: str) -> list[Mirror]:
    """``pending`` with mirrors of the failed ``domain`` moved behind the others (stable)."""
    return [m for m in pending if m.failure_domain != domain] + [
        m for m in pending if m.failure_domain == domain
    ]


def settings_of(config: MirrorConfig) -> dict[str, Any]:
    """The keyword arguments of a ``Failover`` (or ``FailoverTransport``) that ``config``
    sets: shared health memory, timeout, hedge delay, request log, verification policy."""
    return {"health": HealthStore.in_cache_dir(config.cache_dir), "timeout": config.timeout,
            "hedge_delay": config.hedge_delay,
            "request_log": RequestLog(config.log, str(config.source("log"))),
            "verify": config.verify}


class _Race:
    """The shared state of one request's attempts."""

    __slots__ = ("done", "lock", "results")

    def __init__(self) -> None:
        self.results: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.done = False


class Failover:
    """Serve chain resources from the first good mirror of ``chain``.

    ``wire`` reaches every mirror (``wires`` may give one per mirror name). ``health``
    remembers failures across processes (default: in memory only). ``timeout`` bounds
    connect and first byte per mirror; ``hedge_delay`` is the head start before the next
    mirror is raced (0 turns hedging off). ``verify`` is the policy of the sources' vote on
    every file a page names (``pip_91n.chain.agreement``): quorum, strict, or off.
    """

    def __init__(
        self,
        chain: Sequence[Mirror],
        *,
        wire: Wire,
        wires: Mapping[str, Wire] | None = None,
        health: HealthStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        hedge_delay: float = DEFAULT_HEDGE_DELAY,
        request_log: RequestLog | None = None,
        verify: str = "off",
    ) -> None:
        if not chain:
            raise ValueError("the mirror chain is empty")
        self.chain = tuple(chain)
        self._wire = wire
        self._wires = dict(wires or {})
        self.health = health if health is not None else HealthStore(None)
        self.timeout = timeout
        self.hedge_delay = hedge_delay
        self.log = request_log or RequestLog(None)
        self.files = KnownFiles()
        self.serials = Serials()
        self._attempter = Attempter(self.files, self.serials, self.wire_for, timeout)
        self._workers = Workers()
        #: told of every page read beside a race (a witness, a look for more copies):
        #: (mirror, project, page); ``pip-91n serve`` takes a newer one as its second opinion
        self.on_page: Callable[[str, str, ProjectPage], None] | None = None
        self.agreement: Agreement | None = None
        if verify != "off":
            self.agreement = Agreement(
                verify, chain=self.chain, files=self.files, health=self.health,
                request_log=self.log, read_page=self.read_page, workers=self._workers,
                timeout=timeout, hedge_delay=hedge_delay)

    @classmethod
    def from_config(cls, config: MirrorConfig, *, wire: Wire,
                    chain: Sequence[Mirror] | None = None) -> Failover:
        """One for ``config`` (``chain`` overrides it, e.g. after ``auto`` ranking)."""
        return cls(chain or config.chain, wire=wire, **settings_of(config))

    def wire_for(self, mirror: Mirror | None) -> Wire:
        if mirror is not None and mirror.name in self._wires:
            return self._wires[mirror.name]
        return self._wire

    def read_page(self, mirror: Mirror, project: str) -> str | None:
        """Read ``mirror``'s page of ``project`` into ``files`` (and hand it to ``on_page``):
        None, or why it failed."""
        page, reason = self._attempter.read_page(mirror, project)
        if page is not None and self.on_page is not None:
            self.on_page(mirror.name, project, page)
        return reason

    def check_file(self, res: Resource, url: str) -> None:
        """Raise ``HashNotConfirmed`` unless the sources vouch for the file ``res`` asked for
        at ``url``, with the sha256 that the page the caller read named (its ``#sha256=``,
        else the page of the mirror ``url`` belongs to). Nothing when verification is off."""
        if self.agreement is None or res.kind != KIND_FILE or res.filename is None:
            return
        _, sha = split_sha256(url)
        if not sha and res.mirror is not None:
            sha = self.files.listings(res.filename).get(res.mirror)
        known = self.files.get(res.filename)
        sha = sha or (known.sha256 if known else None)
        if sha:
            self.agreement.check_file(res.project, res.filename, sha)

    def close(self) -> None:
        seen: set[int] = set()
        for w in (self._wire, *self._wires.values()):
            if id(w) not in seen:
                seen.add(id(w))
                w.close()
        self.log.close()
        self._workers.close()

    # -- the race --------------------------------------------------------------------------

    def serve(self, resource: Resource, ask: Ask, *, skip: frozenset[str] = frozenset()
              ) -> Fetched:
        """The first good mirror's verified answer to ``ask`` (a chain ``resource``); a
        project page must also win the sources' vote (``agreement``). ``skip`` names mirrors
        not to ask (``pip-91n serve`` asks the mirrors behind the head for a second opinion
        on a page)."""
        if self.agreement is not None and resource.kind == KIND_PAGE and resource.project:
            return self.agreement.page(
                resource, lambda lost: self._race(resource, ask, lost | skip), skip)
        return self._race(resource, ask, skip)

    def _race(self, resource: Resource, ask: Ask, skip: frozenset[str]) -> Fetched:
        chain = [m for m in self.chain if m.name not in skip]
        if not chain:
            why = self.agreement.distrusted if self.agreement is not None else {}
            raise AllMirrorsFailed(redact(ask.url), [
                Attempt(m.name, redact(m.simple_url), f"skipped: it {why.get(m.name, '')}")
                for m in self.chain])
        live, resting = split_by_health(chain, self.health.snapshot(), time.time())
        pending = list(live)
        resting_left = list(resting)
        race = _Race()
        running: dict[str, tuple[Mirror, AttemptState, float]] = {}
        outcomes: list[Outcome] = []
        faulted = not live

        def launch() -> None:
            mirror = pending.pop(0)
            state = AttemptState()
            running[mirror.name] = (mirror, state, time.monotonic())
            if (not pending and len(running) == 1) or self.hedge_delay <= 0:
                # Nothing could be raced against it: run it here, no thread hand-off.
                self._run_attempt(race, mirror, resource, ask, state)
            else:
                self._workers.submit(
                    lambda: self._run_attempt(race, mirror, resource, ask, state))

        if not pending:
            pending, resting_left = resting_left, []
        launch()
        hedge_at = time.monotonic() + self.hedge_delay
        result: Fetched | None = None
        try:
            while True:
                if not running and not pending and resting_left and faulted:
                    pending, resting_left = resting_left, []
                if not running and not pending:
                    result = self._give_up(resource, ask, outcomes)
                    return result
                if not running:
                    launch()
                    hedge_at = time.monotonic() + self.hedge_delay
                    continue
                can_hedge = bool(pending) and self.hedge_delay > 0 and len(running) < MAX_PARALLEL
                wait = max(0.0, hedge_at - time.monotonic()) if can_hedge else None
                try:
                    outcome = race.results.get(timeout=wait)
                except queue.Empty:
                    launch()
                    hedge_at = time.monotonic() + self.hedge_delay
                    continue
                running.pop(outcome.mirror.name, None)
                outcomes.append(outcome)
                self._note(outcome)
                if outcome.kind == "ok":
                    self._penalise_losers(outcome, running)
                    result = outcome.fetched
                    assert result is not None
                    return result
                if outcome.kind == "fault":
                    faulted = True
                    pending = demote_domain(pending, outcome.mirror.failure_domain)
                if pending and len(running) < MAX_PARALLEL:
                    launch()
                    hedge_at = time.monotonic() + self.hedge_delay
        finally:
            with race.lock:
                race.done = True
                for _, state, _ in running.values():
                    state.cancel.set()
                while not race.results.empty():
                    outcomes.append(race.results.get_nowait())
            for o in outcomes:
                if o.fetched is not None and o.fetched is not result:
                    o.fetched.close()

    def _run_attempt(
        self, race: _Race, mirror: Mirror, resource: Resource, ask: Ask,
        state: AttemptState,
    ) -> None:
        outcome = self._attempter.attempt(mirror, resource, ask, state)
        with race.lock:
            if not race.done:
                race.results.put(outcome)
                return
        if outcome.fetched is not None:
            outcome.fetched.close()

    def _note(self, o: Outcome) -> None:
        self.log.write(o.mirror.name, o.url, o.status, o.nbytes, o.seconds,
                       "" if o.kind == "ok" else o.reason)
        if o.kind == "ok":
            self.health.record_success(o.mirror.name, o.latency)
        elif o.kind == "fault":
            log.info("pip-91n: %s failed for %s: %s", o.mirror.name, redact(o.url), o.reason)
            self.health.record_failure(o.mirror.name, o.reason)

    def _penalise_losers(
        self, winner: Outcome, running: Mapping[str, tuple[Mirror, AttemptState, float]]
    ) -> None:
        """A mirror that had not even answered with headers when a later one finished is
        slow or dead: it backs off like a failed one (it is re-probed when that expires)."""
        for mirror, state, started in running.values():
            if not state.headers:
                waited = time.monotonic() - started
                reason = f"no answer after {waited:.1f}s while {winner.mirror.name} answered"
                self.log.write(mirror.name, state.url, None, 0, waited, reason)
                self.health.record_failure(mirror.name, reason)

    def _give_up(self, resource: Resource, ask: Ask, outcomes: Sequence[Outcome]) -> Fetched:
        order = {m.name: i for i, m in enumerate(self.chain)}
        ranked = sorted(outcomes, key=lambda o: order.get(o.mirror.name, 0))
        for o in ranked:  # a page without the pin, from the first mirror that had the page
            if o.kind == "pin" and o.fetched is not None:
                return o.fetched
        if outcomes and all(o.kind == "missing" for o in outcomes):
            text = f"{resource.key}: not found on any mirror".encode()
            return Fetched(404, {"content-type": "text/plain; charset=utf-8",
                                 "content-length": str(len(text))}, io.BytesIO(text),
                           reason="Not Found", mirror=ranked[0].mirror.name, nbytes=len(text))
        attempts = [Attempt(o.mirror.name, redact(o.url), o.reason, o.seconds) for o in ranked]
        raise AllMirrorsFailed(redact(ask.url), attempts)
