"""``FailoverTransport``: an httpx transport that serves PyPI pages and files from a chain.

It wraps inner transports (one shared pool, or one per mirror) and, for each request that
belongs to the chain (see ``pip_91n.routing``), tries the mirrors in order, hedged: after a
short head start (``hedge_delay``) the next mirror is raced and the first good answer wins;
the others are cancelled and closed. A mirror is left for the next one on a DNS, connect or
TLS failure, a connect or first-byte timeout, 5xx, 429 (and other unexpected statuses), 404
when another mirror has the resource, a wrong Content-Type, a body cut short, a sha256
mismatch, or a stale page. Bodies are read and verified before they are handed on (files
spill to a temporary file above 16 MiB), so nothing unverified reaches the caller.

When every mirror fails, ``AllMirrorsFailed`` lists each one and why; when every mirror
answers 404 the caller gets a 404. Anything outside the chain is passed to the inner
transport untouched. The attempt logic lives in ``pip_91n._attempt``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from pip_91n._attempt import PIN_EXTENSION, Attempter, AttemptState, Outcome
from pip_91n._proxies import EnvProxyTransport
from pip_91n._workers import Workers
from pip_91n.catalog import Mirror
from pip_91n.config import DEFAULT_HEDGE_DELAY, DEFAULT_TIMEOUT, MirrorConfig
from pip_91n.errors import AllMirrorsFailed, Attempt
from pip_91n.health import HealthStore, split_by_health
from pip_91n.known_files import KnownFiles
from pip_91n.requestlog import RequestLog
from pip_91n.routing import Resource, classify, redact

__all__ = ["MAX_PARALLEL", "PIN_EXTENSION", "FailoverTransport", "chain_transport", "demote_domain"]

log = logging.getLogger("pip_91n")

# PIN_EXTENSION: request extension naming the exact version the caller needs (a
# ``packaging`` Version or a string); a project page without it is not served while another
# mirror may have it.
#: At most this many mirrors are raced at once for one request.
MAX_PARALLEL = 3


def demote_domain(pending: Sequence[Mirror], domain: str) -> list[Mirror]:
    """``pending`` with mirrors of the failed ``domain`` moved behind the others (stable)."""
    return [m for m in pending if m.failure_domain != domain] + [
        m for m in pending if m.failure_domain == domain
    ]


@dataclass
class _Race:
    """The shared state of one request's attempts."""

    results: queue.SimpleQueue[Outcome] = field(default_factory=queue.SimpleQueue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class FailoverTransport(httpx.BaseTransport):
    """Serve chain requests from the first good mirror of ``chain``.

    ``inner`` is the shared transport (default: httpx's pool, through the proxy that
    ``https_proxy``/``no_proxy`` name); ``transports``
    may give one per mirror name. ``health`` remembers failures across processes (default:
    in memory only). ``timeout`` bounds connect and first byte per mirror; ``hedge_delay``
    is the head start before the next mirror is raced (0 turns hedging off).
    """

    def __init__(
        self,
        chain: Sequence[Mirror],
        *,
        inner: httpx.BaseTransport | None = None,
        transports: Mapping[str, httpx.BaseTransport] | None = None,
        health: HealthStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        hedge_delay: float = DEFAULT_HEDGE_DELAY,
        request_log: RequestLog | None = None,
    ) -> None:
        if not chain:
            raise ValueError("the mirror chain is empty")
        self.chain = tuple(chain)
        self._inner = inner if inner is not None else EnvProxyTransport()
        self._transports = dict(transports or {})
        self.health = health if health is not None else HealthStore(None)
        self.timeout = timeout
        self.hedge_delay = hedge_delay
        self.log = request_log or RequestLog(None)
        self.files = KnownFiles()
        self.serials: dict[str, int] = {}
        self._serial_lock = threading.Lock()
        self._attempter = Attempter(self)
        self._workers = Workers()

    @classmethod
    def from_config(
        cls, config: MirrorConfig, *, chain: Sequence[Mirror] | None = None,
        inner: httpx.BaseTransport | None = None,
    ) -> FailoverTransport:
        """A transport for ``config`` (``chain`` overrides it, e.g. after ``auto`` ranking)."""
        return cls(
            chain or config.chain,
            inner=inner,
            health=HealthStore(config.cache_dir / "health.json"),
            timeout=config.timeout,
            hedge_delay=config.hedge_delay,
            request_log=RequestLog(config.log),
        )

    def transport_for(self, mirror: Mirror | None) -> httpx.BaseTransport:
        if mirror is not None and mirror.name in self._transports:
            return self._transports[mirror.name]
        return self._inner

    def seen_serial(self, project: str) -> int | None:
        with self._serial_lock:
            return self.serials.get(project)

    def accept_serial(self, project: str, serial: int | None) -> None:
        if serial is None:
            return
        with self._serial_lock:
            self.serials[project] = max(serial, self.serials.get(project, serial))

    # -- httpx.BaseTransport -------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resource = classify(str(request.url), self.chain)
        if resource is None or request.method != "GET":
            return self.transport_for(None).handle_request(request)
        return self._serve(resource, request)

    def close(self) -> None:
        seen: set[int] = set()
        for t in (self._inner, *self._transports.values()):
            if id(t) not in seen:
                seen.add(id(t))
                t.close()
        self.log.close()
        self._workers.close()

    # -- the race --------------------------------------------------------------------------

    def _serve(self, resource: Resource, request: httpx.Request) -> httpx.Response:
        live, resting = split_by_health(self.chain, self.health.snapshot(), time.time())
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
                self._run_attempt(race, mirror, resource, request, state)
            else:
                self._workers.submit(
                    lambda: self._run_attempt(race, mirror, resource, request, state))

        if not pending:
            pending, resting_left = resting_left, []
        launch()
        hedge_at = time.monotonic() + self.hedge_delay
        result: httpx.Response | None = None
        try:
            while True:
                if not running and not pending and resting_left and faulted:
                    pending, resting_left = resting_left, []
                if not running and not pending:
                    result = self._give_up(resource, request, outcomes)
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
                    result = outcome.response
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
                if o.response is not None and o.response is not result:
                    o.response.close()

    def _run_attempt(
        self, race: _Race, mirror: Mirror, resource: Resource, request: httpx.Request,
        state: AttemptState,
    ) -> None:
        outcome = self._attempter.attempt(mirror, resource, request, state)
        with race.lock:
            if not race.done:
                race.results.put(outcome)
                return
        if outcome.response is not None:
            outcome.response.close()

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
                self.log.write(mirror.name, "", None, 0, waited, reason)
                self.health.record_failure(mirror.name, reason)

    def _give_up(
        self, resource: Resource, request: httpx.Request, outcomes: Sequence[Outcome]
    ) -> httpx.Response:
        order = {m.name: i for i, m in enumerate(self.chain)}
        ranked = sorted(outcomes, key=lambda o: order.get(o.mirror.name, 0))
        for o in ranked:  # a page without the pin, from the first mirror that had the page
            if o.kind == "pin" and o.response is not None:
                return o.response
        if outcomes and all(o.kind == "missing" for o in outcomes):
            return httpx.Response(
                404, text=f"{resource.key}: not found on any mirror",
                extensions={"pip_91n.mirror": ranked[0].mirror.name},
            )
        attempts = [Attempt(o.mirror.name, redact(o.url), o.reason, o.seconds) for o in ranked]
        raise AllMirrorsFailed(redact(str(request.url)), attempts)


def chain_transport(
    environ: Mapping[str, str] | None = None,
    *,
    config: MirrorConfig | None = None,
    inner: httpx.BaseTransport | None = None,
) -> FailoverTransport:
    """Everything in one call: load the configuration (``environ`` defaults to the process
    environment), rank an ``auto`` chain (probe cached for a day), and build the transport."""
    from pip_91n.config import load_config
    from pip_91n.ranking import resolve_chain

    cfg = config if config is not None else load_config(environ)
    return FailoverTransport.from_config(cfg, chain=resolve_chain(cfg), inner=inner)
