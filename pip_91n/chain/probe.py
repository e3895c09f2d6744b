"""The one mirror probe: ``auto``'s ranking, ``pip-91n probe``, ``use --check`` and ``env
--probe`` all use it.

``measure`` sends one GET of a small project page to every mirror at once, bounded in time,
over the same wire and TLS trust as everything else, and reports latency (to the response
headers) and throughput (body bytes after them), best first in the order ``rank`` gives.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from pip_91n._urls import redact, same_origin, split_credentials
from pip_91n.settings.catalog import Mirror

if TYPE_CHECKING:
    from pip_91n.net.wire import Wire

__all__ = ["PROBE_BUDGET", "PROBE_PROJECT", "ProbeResult", "measure", "probe_mirrors", "rank"]

#: Seconds the ``auto`` probe may take in all.
PROBE_BUDGET = 2.0
#: The project page each mirror is asked for (a few hundred KB on PyPI).
PROBE_PROJECT = "pip"


class ProbeResult(NamedTuple):
    """How one mirror answered the probe. ``latency``: seconds to the response headers;
    ``throughput``: body bytes per second after them; ``url`` is redacted."""

    name: str
    url: str
    ok: bool
    status: int | None = None
    latency: float | None = None
    throughput: float | None = None
    nbytes: int = 0
    error: str = ""


def _probe_one(wire: Wire, mirror: Mirror, project: str, deadline: float) -> ProbeResult:
    from pip_91n.index.pages import is_page_content_type
    from pip_91n.net.wire import CONNECT_TIMEOUT, READ_TIMEOUT, WireError, describe, follow

    url, creds = split_credentials(mirror.simple_url + project + "/")
    shown = redact(mirror.simple_url)
    t0 = time.monotonic()
    timeout = max(0.05, deadline - t0)
    nbytes = 0
    try:
        resp, _ = follow(wire, url, [("accept", "text/html")], timeout,
                         credentials=lambda hop: creds if same_origin(hop, url) else None)
    except (WireError, OSError) as exc:
        timed_out = isinstance(exc, WireError) and exc.kind in (CONNECT_TIMEOUT, READ_TIMEOUT)
        return ProbeResult(mirror.name, shown, False,
                           error="timed out" if timed_out else describe(exc, timeout))
    t1 = time.monotonic()
    try:
        if resp.status != 200:
            return ProbeResult(mirror.name, shown, False, resp.status, t1 - t0,
                               error=f"HTTP {resp.status}")
        ctype = resp.headers.get("content-type")
        if not is_page_content_type(ctype):
            return ProbeResult(mirror.name, shown, False, 200, t1 - t0,
                               error=f"not an index page ({ctype})")
        with contextlib.suppress(WireError, OSError):  # the latency is what ranks
            for chunk in resp:
                nbytes += len(chunk)
                if time.monotonic() >= deadline:
                    break
    finally:
        resp.close()
    t2 = time.monotonic()
    rate = nbytes / (t2 - t1) if t2 > t1 and nbytes else None
    return ProbeResult(mirror.name, shown, True, 200, t1 - t0, rate, nbytes)


def measure(mirrors: Sequence[Mirror], *, budget: float = PROBE_BUDGET,
            project: str = PROBE_PROJECT, wire: Wire | None = None,
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Probe ``mirrors`` at once; a result for each within ``budget`` seconds, best first
    (the order ``rank`` gives). Never raises."""
    own = wire is None
    if wire is None:
        from pip_91n.net.httpx_wire import default_wire

        wire = default_wire()
    deadline = time.monotonic() + budget
    results: dict[str, ProbeResult] = {}
    lock = threading.Lock()
    probe_wire = wire

    def work(m: Mirror) -> None:
        try:
            res = _probe_one(probe_wire, m, project, deadline)
        except Exception as exc:  # never let one mirror break the probe
            res = ProbeResult(m.name, redact(m.simple_url), False,
                              error=f"{type(exc).__name__}: {exc}"[:160])
        with lock:
            if m.name in results:
                return
            results[m.name] = res
        if on_result is not None:
            on_result(res)

    threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in mirrors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.2)
    with lock:
        for m in mirrors:
            results.setdefault(m.name, ProbeResult(m.name, redact(m.simple_url), False,
                                                   error=f"no answer within {budget:g} s"))
        snapshot = dict(results)
    if own:
        with contextlib.suppress(Exception):
            wire.close()
    latencies = {n: (r.latency if r.ok else None) for n, r in snapshot.items()}
    return [snapshot[m.name] for m in rank(mirrors, latencies)]


def probe_mirrors(mirrors: Sequence[Mirror], budget: float = PROBE_BUDGET, *,
                  project: str = PROBE_PROJECT) -> dict[str, float | None]:
    """Seconds to the first answer of each mirror (None: none within ``budget``)."""
    return {r.name: r.latency if r.ok else None
            for r in measure(mirrors, budget=budget, project=project)}


def rank(mirrors: Sequence[Mirror], latencies: Mapping[str, float | None]) -> tuple[Mirror, ...]:
    """Responders fastest first (ties keep catalog order), then the silent ones in order."""
    pos = {m.name: i for i, m in enumerate(mirrors)}
    fast = [m for m in mirrors if latencies.get(m.name) is not None]
    fast.sort(key=lambda m: (latencies[m.name], pos[m.name]))
    return tuple(fast) + tuple(m for m in mirrors if latencies.get(m.name) is None)
