"""The chain behind the local index: project pages and the ``/simple/`` root.

Pages come through a ``ChainSession`` and its ``Failover`` (the same failover, hedging,
health, staleness and hash-agreement rules as inside pip), are kept fresh for ``PAGE_FRESH``
seconds (one upstream request per project however many clients ask, single flight), and
the last good copy is kept on disk: when every mirror fails it is served instead, marked
stale.

A server sees no exact pins (a client asks for ``/simple/<project>/`` and decides alone),
so the pin rule (a lagging mirror must not hide a version a later one has) takes its server
form here: a second opinion on each page. With hash agreement on, the witnesses' pages
(read beside the race anyway: pypi.org, or the next mirror of another operator) are that
second opinion, so it costs no request of its own. Otherwise (``PIP_91N_VERIFY=off``, or a
chain of one operator) a second race over the mirrors behind the head runs beside the
first, and waits at most ``SECOND_OPINION_GRACE`` after it. A second page that is newer
(``simple.fresher``: a higher serial, or more versions) is served instead and its serial is
remembered, so the lagging mirror's pages count as stale from then on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from pip_91n import __version__
from pip_91n._urls import redact, redact_text
from pip_91n.chain.attempt import Ask, Fetched
from pip_91n.chain.session import ChainSession
from pip_91n.errors import AllMirrorsFailed, Attempt
from pip_91n.index.pages import JSON_TYPE, ProjectPage
from pip_91n.index.routing import KIND_INDEX, KIND_PAGE, Resource
from pip_91n.net.wire import Wire
from pip_91n.serve.flights import Once
from pip_91n.serve.http import PAGE_FRESH, ROOT_FRESH
from pip_91n.serve.simple import (
    Page,
    fresher,
    from_parsed,
    parse_upstream,
    render_html,
    render_json,
)
from pip_91n.serve.store import PageStore, SavedPage
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["SECOND_OPINION_GRACE", "USER_AGENT", "Chain", "Published", "RootCopy"]

log = logging.getLogger("pip_91n")

USER_AGENT = f"pip-91n/{__version__} (serve)"
#: Seconds the second race may finish after the first before the first page is served.
SECOND_OPINION_GRACE = 0.5
_PAGE_ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_MEMORY = 2048  # project pages kept in memory (rendered), least recently used out


class Published:
    """A project page as the server publishes it. ``stale``: why it is the last good copy
    rather than a fresh one ("" when fresh); ``missing``: every mirror said 404."""

    def __init__(self, project: str, page: Page | None, *, mirror: str = "",
                 fetched: float = 0.0, stale: str = "", missing: str = "") -> None:
        self.project, self.page, self.mirror = project, page, mirror
        self.fetched, self.stale, self.missing = fetched, stale, missing
        self.born = time.monotonic()
        self._rendered: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def fresh(self, now: float) -> bool:
        return not self.stale and now - self.born < PAGE_FRESH

    def rendered(self, content_type: str) -> tuple[bytes, str]:
        """(body, ETag) of the page as ``content_type``."""
        import hashlib

        assert self.page is not None
        with self._lock:
            if content_type not in self._rendered:
                body = (render_json if content_type == JSON_TYPE else render_html)(
                    self.page, self.project)
                tag = hashlib.sha256(body).hexdigest()[:32]
                self._rendered[content_type] = (body, f'"{tag}"')
            return self._rendered[content_type]


class RootCopy:
    """The ``/simple/`` root as a mirror sent it, on disk: ``path``, whether it is JSON,
    and why it is the last good copy ("" when fresh)."""

    def __init__(self, path: Path, *, is_json: bool, stale: str = "") -> None:
        self.path, self.is_json, self.stale = path, is_json, stale


class Chain:
    """The mirror chain as the server uses it. Thread-safe; the blocking calls run in the
    app's worker pool."""

    def __init__(self, config: MirrorConfig, chain: Sequence[Mirror], wire: Wire,
                 root: Path, *, note: Callable[[str], None] | None = None) -> None:
        self.shim = ChainSession(config, chain, wire)
        self.failover = self.shim.failover
        agreement = self.failover.agreement
        if agreement is not None:  # a page refreshed after PAGE_FRESH reads witnesses again
            agreement.refresh = PAGE_FRESH
        #: the second opinion on a page: the witnesses' pages, or else a race over the
        #: mirrors behind the head
        self.witnessed = agreement is not None and not agreement.lone
        self.behind_head = (frozenset({chain[0].name}) if len(chain) > 1 and not self.witnessed
                            else None)
        self.failover.on_page = self._witness_page
        self._beside: dict[str, list[tuple[Page, str]]] = {}  # project -> pages read beside
        self.store = PageStore(root)
        self.note = note or (lambda text: log.warning("%s", text))
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, Published] = OrderedDict()
        self._fetches: Once[Published] = Once()
        self._root_lock = threading.Lock()

    def close(self) -> None:
        self.shim.close()

    # -- project pages ---------------------------------------------------------------------

    def page(self, project: str) -> Published:
        """``project``'s page: from memory while fresh, else from the chain (one request
        upstream for every concurrent caller), else the last good copy. Raises
        ``AllMirrorsFailed`` when the chain fails and no copy was ever kept."""
        with self._lock:
            known = self._pages.get(project)
            if known is not None and known.fresh(time.monotonic()):
                self._pages.move_to_end(project)
                return known
        return self._fetches.run(project, lambda: self._fetch_page(project))

    def published(self, project: str) -> Published | None:
        """The page last published for ``project`` (memory, else disk), without a request."""
        with self._lock:
            known = self._pages.get(project)
        if known is not None and known.page is not None:
            return known
        saved = self.store.load(project)
        if saved is None:
            return None
        return Published(project, saved.page, mirror=saved.mirror, fetched=saved.fetched,
                         stale="kept copy")

    def _remember(self, result: Published) -> None:
        with self._lock:
            self._pages[result.project] = result
            self._pages.move_to_end(result.project)
            while len(self._pages) > _MEMORY:
                self._pages.popitem(last=False)

    def _ask(self, path: str, accept: str) -> Ask:
        return Ask(f"http://pip-91n-serve.invalid{path}",
                   [("accept", accept), ("user-agent", USER_AGENT)])

    def _race(self, project: str, skip: frozenset[str] = frozenset()
              ) -> tuple[Page, str] | None:
        """The page the chain (without ``skip``) serves for ``project``: (page, mirror);
        None for 404."""
        got = self.failover.serve(Resource(KIND_PAGE, project=project),
                                  self._ask(f"/simple/{project}/", _PAGE_ACCEPT), skip=skip)
        try:
            if got.status == 404:
                return None
            try:
                page = parse_upstream(got.content(), got.url, got.headers.get("content-type"),
                                      got.headers, project)
            except ValueError as exc:  # served as a page, unreadable as one
                raise AllMirrorsFailed(f"/simple/{project}/", [Attempt(
                    got.mirror, redact(got.url), f"unreadable page: {exc}")]) from exc
            return page, got.mirror
        finally:
            got.close()

    def _second_opinion(self, project: str) -> Future[tuple[Page, str] | None] | None:
        skip = self.behind_head
        if skip is None:
            return None
        future: Future[tuple[Page, str] | None] = Future()

        def run() -> None:
            try:
                future.set_result(self._race(project, skip))
            except BaseException as exc:  # a failed second race changes nothing
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="pip-91n-serve-second").start()
        return future

    def _witness_page(self, mirror: str, project: str, parsed: ProjectPage) -> None:
        """A page the chain read beside a race of ``project`` (a witness): kept as a second
        opinion while that project's page is being fetched."""
        with self._lock:
            box = self._beside.get(project)
        if box is not None:
            box.append((from_parsed(parsed, project), mirror))

    def _fetch_page(self, project: str) -> Published:
        second = self._second_opinion(project)
        with self._lock:
            beside = self._beside[project] = []
        try:
            first = self._race(project)
        except AllMirrorsFailed as exc:
            return self._last_good(project, exc)
        finally:
            with self._lock:
                self._beside.pop(project, None)
        chosen = first
        if first is not None:
            others = list(beside)
            if second is not None:
                with contextlib.suppress(Exception):
                    other = second.result(timeout=SECOND_OPINION_GRACE)
                    if other is not None:
                        others.append(other)
            chosen = self._freshest(project, first, others)
        if chosen is None:
            return Published(project, None, missing=f"{project}: not found on any mirror")
        page, mirror = chosen
        result = Published(project, page, mirror=mirror, fetched=time.time())
        self._remember(result)
        self.store.save(project, SavedPage(page, result.fetched, mirror))
        return result

    def _freshest(self, project: str, first: tuple[Page, str],
                  others: list[tuple[Page, str]]) -> tuple[Page, str]:
        """``first`` (page, mirror), or a newer page among ``others`` (not from a mirror
        that lost a vote); a newer one is said and its serial remembered."""
        agreement = self.failover.agreement
        distrusted = agreement.distrusted if agreement is not None else {}
        chosen = first
        for other in others:
            if other[1] not in distrusted and fresher(chosen[0], other[0]):
                chosen = other
        if chosen is not first:
            self.note(f"pip-91n serve: {project}: the page from {chosen[1]} (serial "
                      f"{chosen[0].serial}) is newer than {first[1]}'s (serial "
                      f"{first[0].serial}); serving it")
            self.failover.serials.accept(project, chosen[0].serial)
        return chosen

    def _last_good(self, project: str, exc: AllMirrorsFailed) -> Published:
        kept = self.published(project)
        if kept is None or kept.page is None:
            raise exc
        age = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(kept.fetched))
        reason = f"every mirror failed; last good page fetched {age} from {kept.mirror}"
        self.note(f"pip-91n serve: {project}: {reason} ({_why(exc)})")
        result = Published(project, kept.page, mirror=kept.mirror, fetched=kept.fetched,
                           stale=reason)
        self._remember(result)
        return result

    # -- the root --------------------------------------------------------------------------

    def root(self) -> RootCopy:
        """The root page on disk, fetched again when older than ``ROOT_FRESH``."""
        path = self.store.root_path()
        with self._root_lock:
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                age = None
            if age is not None and age < ROOT_FRESH:
                return RootCopy(path, is_json=_looks_json(path))
            try:
                got = self.failover.serve(Resource(KIND_INDEX),
                                          self._ask("/simple/", "text/html, */*;q=0.1"))
            except AllMirrorsFailed as exc:
                if age is None:
                    raise
                reason = "every mirror failed; serving the last good root page"
                self.note(f"pip-91n serve: /simple/: {reason} ({_why(exc)})")
                return RootCopy(path, is_json=_looks_json(path), stale=reason)
            try:
                _save_body(got, path)
            finally:
                got.close()
            return RootCopy(path, is_json=_looks_json(path))


def _save_body(got: Fetched, path: Path) -> None:
    """The body of ``got``, decoded, into ``path`` (atomically), chunk by chunk."""
    import zlib

    encoding = got.headers.get("content-encoding", "identity").strip().lower()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") \
        else zlib.decompressobj() if encoding == "deflate" else None
    try:
        with open(tmp, "wb") as out:
            for chunk in got.chunks():
                out.write(inflate.decompress(chunk) if inflate else chunk)
            if inflate:
                out.write(inflate.flush())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _looks_json(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(256).lstrip()[:1] == b"{"


def _why(exc: AllMirrorsFailed) -> str:
    """Each mirror and why, on one line, with no URL (so no credential) in it."""
    return redact_text("; ".join(f"{a.mirror}: {a.reason}" for a in exc.attempts))
