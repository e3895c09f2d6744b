"""``Agreement``: no file on the word of one mirror (``PIP_91N_VERIFY``).

A project page served by the chain comes from one mirror. While the race for it runs, the
same project's page is read from a second, independent source, the witness: pypi.org when it
is in the chain, else the next live mirror of another failure domain (a witness that has not
answered after the hedge delay gets a second one beside it). A healthy install thus pays no
round trip in series, only one more page request per project. When the page is in, every
file it names is put to the vote (``pip_91n.chain.quorum``):

- agreed: served as it is;
- outvoted (pypi.org, or a majority of failure domains, names another hash): the mirror is
  skipped for the rest of the run, rests in the health memory, is named on stderr with both
  hashes, and the page comes from the next mirror instead; a witness outvoted the same way is
  treated alike;
- split (two sources, no authority, no majority): the other live mirrors are asked too; if
  that does not settle it, the page is served but the file is refused when pip asks for it;
- single (no other source lists the file, e.g. a release younger than the witness's lag):
  when pip asks for the file, the other mirrors' pages are read; if still alone, ``quorum``
  warns once and proceeds, ``strict`` refuses. A chain of one operator has no second source
  by construction: ``quorum`` then serves as pip with ``-i`` would (``doctor`` warns),
  ``strict`` refuses.

``check_file`` is that last gate, used for every file the chain hands out (the hook, ``pip-91n
serve``). Hashes the user pinned (``--require-hashes``, ``--hash``) win over every vote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from pip_91n._startup import report
from pip_91n.chain.attempt import Fetched
from pip_91n.chain.health import HealthStore, split_by_health
from pip_91n.chain.memory import KnownFiles
from pip_91n.chain.quorum import AUTHORITY, Vote, vote
from pip_91n.chain.requestlog import RequestLog
from pip_91n.chain.workers import Workers
from pip_91n.errors import HashNotConfirmed
from pip_91n.index.routing import KIND_PAGE, Resource, resource_url
from pip_91n.settings.catalog import Mirror

__all__ = ["Agreement"]

log = logging.getLogger("pip_91n")

#: A page read: (mirror, project) -> why it failed, or None.
ReadPage = Callable[[Mirror, str], "str | None"]


class Agreement:
    """The vote of one run. ``policy`` is ``quorum`` or ``strict`` (``off`` builds none);
    ``read_page`` reads one mirror's project page into ``files``; ``timeout`` bounds the wait
    for a second source, ``hedge_delay`` is a witness's head start before the next one."""

    def __init__(self, policy: str, *, chain: Sequence[Mirror], files: KnownFiles,
                 health: HealthStore, request_log: RequestLog, read_page: ReadPage,
                 workers: Workers, timeout: float, hedge_delay: float) -> None:
        self.policy = policy
        self.chain = tuple(chain)
        self.files, self.health, self.log = files, health, request_log
        self._read_page, self._workers = read_page, workers
        self.timeout = timeout
        self.hedge_delay = hedge_delay if hedge_delay > 0 else 0.75
        self.domains = {m.name: m.failure_domain for m in self.chain}
        #: one operator only: no second source can exist, so none is looked for (``quorum``
        #: then serves as stock pip with ``-i`` would, ``strict`` refuses; doctor says so)
        self.lone = len(set(self.domains.values())) < 2
        self.distrusted: dict[str, str] = {}  # mirror -> why it is skipped this run
        #: seconds a page read stays current (None: the whole run, as for one pip run; a
        #: server that lives for weeks reads the witnesses again when it refreshes a page)
        self.refresh: float | None = None
        self._cond = threading.Condition()
        # (mirror, project) -> (done, when it started, monotonic)
        self._reads: dict[tuple[str, str], tuple[bool, float]] = {}
        self._pins: dict[str, list[object]] = {}  # project -> pip's Hashes objects
        self._warned = False

    # -- pages -----------------------------------------------------------------------------

    def page(self, res: Resource, race: Callable[[frozenset[str]], Fetched],
             skip: frozenset[str] = frozenset()) -> Fetched:
        """The page of ``res`` from ``race(lost)``, raced again without any mirror whose page
        lost a vote (``skip``: mirrors the race does not ask anyway)."""
        if self.lone:
            return race(frozenset(self.distrusted))
        project = res.project or ""
        head = next((m for m in self._live() if m.name not in skip), None)
        witnesses = self._witnesses(head)
        if witnesses:
            self._start(witnesses[0], project)
        while True:
            got = race(frozenset(self.distrusted))
            served = got.mirror
            if got.status != 200 or self.files.page_files(served, project) is None:
                return got
            if not self._settle(project, served, [w for w in witnesses if w.name != served]):
                return got
            got.close()

    def _settle(self, project: str, served: str, witnesses: list[Mirror]) -> bool:
        """Vote on every file of ``served``'s page, waiting (bounded) for the witnesses.
        True when ``served`` lost the vote and its page must not be used."""
        deadline = time.monotonic() + self.timeout
        hedge_at = time.monotonic() + self.hedge_delay
        started = [w for w in witnesses if self._current(w.name, project)]
        if not started and witnesses:
            self._start(witnesses[0], project)
            started = [witnesses[0]]
        asked_all = False
        with self._cond:  # state read and wait under one lock: no wake-up is lost
            while True:
                votes = self._page_votes(project, served)
                split = any(v.kind == "split" for v in votes.values())
                answered = self._other_domain_read(project, served)
                running = [w for w in self._all_started(project) if not self._done(w, project)]
                now = time.monotonic()
                if split and not asked_all:
                    asked_all = True
                    for m in self._live():
                        if m.name != served:
                            self._start(m, project)
                    continue
                if (answered and not split) or now >= deadline or (not running and (
                        asked_all or len(started) >= len(witnesses))):
                    break
                if not answered and (now >= hedge_at or not running) and len(started) < len(
                        witnesses):
                    nxt = witnesses[len(started)]
                    self._start(nxt, project)
                    started.append(nxt)
                    hedge_at = now + self.hedge_delay
                    continue
                self._cond.wait(max(0.005, min(deadline, hedge_at) - now))
        for filename, v in votes.items():
            if v.kind in ("agreed", "outvoted") and v.winner:
                self.files.decide(filename, v.winner)
                listings = self.files.listings(filename)
                for mirror in {*v.dissent, *([served] if v.kind == "outvoted" else [])}:
                    self._demote(mirror, filename, listings.get(mirror, ""), v)
        # lost this vote, or another one running beside it (a concurrent page of the project)
        return served in self.distrusted

    def _page_votes(self, project: str, served: str) -> dict[str, Vote]:
        out: dict[str, Vote] = {}
        for filename in self.files.page_files(served, project) or ():
            listings = self.files.listings(filename)
            mine = listings.get(served)
            if mine:
                out[filename] = self._vote(project, mine, listings)
        return out

    # -- files -----------------------------------------------------------------------------

    def note_pins(self, project: str, hashes: object) -> None:
        """pip's ``Hashes`` for ``project`` (the user's ``--hash`` pins): they win."""
        if hashes:
            with self._cond:
                self._pins.setdefault(project, []).append(hashes)

    def _pinned(self, project: str | None, sha256: str) -> bool:
        for h in self._pins.get(project or "", ()):
            try:
                if h.is_hash_allowed("sha256", hex_digest=sha256):  # type: ignore[attr-defined]
                    return True
            except Exception:  # an unknown Hashes shape: pip checks its pins itself
                continue
        return False

    def check_file(self, project: str | None, filename: str, sha256: str) -> None:
        """Raise ``HashNotConfirmed`` unless ``filename`` with ``sha256`` may be handed out:
        a pin of the user's, or a second source's agreement (waiting, bounded, for the other
        mirrors' pages when none has spoken yet). Files no page named are not the chain's to
        judge (a URL the user gave)."""
        if self._pinned(project, sha256):
            return
        listings = self.files.listings(filename)
        if not listings:
            return
        v = self._vote(project, sha256, listings)
        if v.kind in ("single", "split") and project and not self.lone:
            self._ask_everyone(project)
            listings = self.files.listings(filename)
            v = self._vote(project, sha256, listings)
        if v.kind == "agreed":
            return
        if v.kind == "outvoted":
            for mirror in v.dissent:
                self._demote(mirror, filename, listings.get(mirror, ""), v)
        if v.kind == "single" and self.policy != "strict":
            self._warn_single(filename, sha256, listings)
            return
        raise HashNotConfirmed(filename, sha256, listings, v.kind, v.winner, self.policy)

    def _ask_everyone(self, project: str) -> None:
        """Read every live mirror's page of ``project`` and wait (bounded) for those reads;
        a read of a mirror that has started to rest meanwhile (black-holed, failing) is not
        waited for."""
        for m in self._live():
            self._start(m, project)
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while any(not self._done(m, project) for m in self._live()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _warn_single(self, filename: str, sha256: str, listings: dict[str, str]) -> None:
        log.info("pip-91n: only %s lists %s (sha256 %s)", ", ".join(listings), filename,
                 sha256[:16])
        with self._cond:
            if self._warned or self.lone:
                return
            self._warned = True
        report(f"no second source confirmed {filename} (sha256 {sha256[:16]}...) in time; "
               f"using it on the word of {', '.join(listings)} (PIP_91N_VERIFY=quorum). Add a "
               "mirror of another operator to PIP_91N_MIRRORS, or set PIP_91N_VERIFY=strict "
               "to refuse such files")

    # -- sources ---------------------------------------------------------------------------

    def _vote(self, project: str | None, sha256: str, listings: dict[str, str]) -> Vote:
        trusted = {m: h for m, h in listings.items() if m not in self.distrusted}
        pinned = [h for h in set(trusted.values()) if self._pinned(project, h)]
        return vote(sha256, trusted, self.domains, pinned=pinned)

    def _live(self) -> list[Mirror]:
        live, _ = split_by_health(self.chain, self.health.snapshot(), time.time())
        return [m for m in live if m.name not in self.distrusted]

    def _witnesses(self, head: Mirror | None) -> list[Mirror]:
        """Second sources for a page ``head`` will probably serve: the authority first, then
        other failure domains, then the rest, in chain order."""
        others = [m for m in self._live() if head is None or m.name != head.name]
        domain = head.failure_domain if head else ""
        return sorted(others, key=lambda m: (m.name != AUTHORITY, m.failure_domain == domain))

    def _other_domain_read(self, project: str, served: str) -> bool:
        domain = self.domains.get(served, served)
        return any(self.files.page_read(m.name, project, self.refresh) for m in self.chain
                   if m.name != served and m.name not in self.distrusted
                   and (m.failure_domain != domain or m.name == AUTHORITY))

    def _all_started(self, project: str) -> Iterable[Mirror]:
        return [m for m in self.chain if self._current(m.name, project)]

    def _done(self, mirror: Mirror, project: str) -> bool:
        return self._reads.get((mirror.name, project), (True, 0.0))[0]

    def _current(self, mirror: str, project: str) -> bool:
        """A read of ``mirror``'s page is running, or one is done and still current."""
        read = self._reads.get((mirror, project))
        return read is not None and (not read[0] or self.refresh is None
                                     or time.monotonic() - read[1] < self.refresh)

    def _start(self, mirror: Mirror, project: str) -> None:
        """Read ``mirror``'s page of ``project`` in a worker (once per run, or once per
        ``refresh`` seconds)."""
        key = (mirror.name, project)
        with self._cond:
            if self._current(mirror.name, project) or self.files.page_read(
                    mirror.name, project, self.refresh):
                return
            self._reads[key] = (False, time.monotonic())
        self._workers.submit(lambda: self._read(mirror, project))

    def _read(self, mirror: Mirror, project: str) -> None:
        t0 = time.monotonic()
        try:
            reason = self._read_page(mirror, project)
        except Exception as exc:  # one witness: never the install
            reason = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - t0
        url = resource_url(Resource(KIND_PAGE, project=project), mirror) or mirror.simple_url
        self.log.write(mirror.name, url, None if reason else 200, 0, seconds,
                       f"second source: {reason}" if reason else "")
        if reason and not reason.startswith(("HTTP 404", "HTTP 410")):
            self.health.record_failure(mirror.name, reason)
        with self._cond:
            self._reads[(mirror.name, project)] = (True, self._reads[(mirror.name, project)][1])
            self._cond.notify_all()

    def _demote(self, mirror: str, filename: str, theirs: str, v: Vote) -> None:
        """``mirror`` named ``theirs`` for ``filename`` where ``v`` settled on another hash:
        skipped for this run, resting in the health memory, named once on stderr."""
        with self._cond:
            if mirror in self.distrusted:
                return
            why = (f"lists {filename} with sha256 {theirs}, but {', '.join(v.backers)} "
                   f"list{'s' if len(v.backers) == 1 else ''} {v.winner}")
            self.distrusted[mirror] = why
        self.health.record_failure(mirror, f"hash disagreement: {why}")
        report(f"{mirror} {why}; using the latter and skipping {mirror} for this run "
               "(it rests in the health memory too)")
