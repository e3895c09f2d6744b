"""``auto``: rank the catalog by a quick parallel probe, remembered in the cache dir for a day.

``rank`` is pure; ``probe_mirrors`` asks each mirror for one small project page in parallel,
bounded to ``budget`` seconds in all; ``resolve_chain`` turns a ``MirrorConfig`` into the chain
to use. Mirrors that did not answer are kept, after the ones that did (the health memory skips
them quickly), so pypi, ranked like the others, is always in the chain. The probe function is
a parameter: tests give loopback mirrors and never probe real hosts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pip_91n._statefile import locked, read_json, write_json_atomic
from pip_91n.catalog import Mirror
from pip_91n.config import MirrorConfig

__all__ = [
    "PROBE_BUDGET",
    "RANKING_FILE",
    "RANKING_TTL",
    "Probe",
    "probe_mirrors",
    "rank",
    "resolve_chain",
]

PROBE_BUDGET = 2.0
RANKING_TTL = 24 * 3600.0
RANKING_FILE = "auto-ranking.json"
PROBE_PROJECT = "pip"

#: ``probe(mirrors, budget) -> {name: seconds or None}``
Probe = Callable[[Sequence[Mirror], float], Mapping[str, "float | None"]]


def rank(mirrors: Sequence[Mirror], latencies: Mapping[str, float | None]) -> tuple[Mirror, ...]:
    """Responders fastest first (ties keep catalog order), then the silent ones in order."""
    pos = {m.name: i for i, m in enumerate(mirrors)}
    fast = [m for m in mirrors if latencies.get(m.name) is not None]
    fast.sort(key=lambda m: (latencies[m.name], pos[m.name]))
    return tuple(fast) + tuple(m for m in mirrors if latencies.get(m.name) is None)


def probe_mirrors(
    mirrors: Sequence[Mirror], budget: float = PROBE_BUDGET, *, project: str = PROBE_PROJECT,
    transport: object | None = None,
) -> dict[str, float | None]:
    """Time one project page from every mirror at once; None for any that failed or did not
    finish within ``budget`` seconds. Never raises."""
    import httpx

    from pip_91n.pages import is_page_content_type
    from pip_91n.routing import split_credentials

    results: dict[str, float | None] = {m.name: None for m in mirrors}
    lock = threading.Lock()

    def one(m: Mirror) -> None:
        url, creds = split_credentials(m.simple_url + project + "/")
        t0 = time.monotonic()
        try:
            kwargs: dict[str, object] = {"timeout": budget, "follow_redirects": True}
            if isinstance(transport, httpx.BaseTransport):
                kwargs["transport"] = transport
            with httpx.Client(**kwargs) as client:  # type: ignore[arg-type]
                r = client.get(url, auth=creds, headers={"accept": "text/html"})
            ok = r.status_code == 200 and is_page_content_type(r.headers.get("content-type"))
        except Exception:
            ok = False
        if ok:
            with lock:
                results[m.name] = time.monotonic() - t0

    threads = [threading.Thread(target=one, args=(m,), daemon=True) for m in mirrors]
    deadline = time.monotonic() + budget
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return dict(results)


def _cached(path: Path, names: Sequence[str], now: float) -> list[str] | None:
    data = read_json(path)
    at, order = data.get("at"), data.get("order")
    if not isinstance(at, (int, float)) or not isinstance(order, list):
        return None
    if not 0 <= now - at < RANKING_TTL or sorted(map(str, order)) != sorted(names):
        return None
    return [str(n) for n in order]


def _probe_and_store(config: MirrorConfig, probe: Probe | None, path: Path, t: float
                     ) -> list[str]:
    latencies = (probe or probe_mirrors)(config.chain, PROBE_BUDGET)
    order = [m.name for m in rank(config.chain, latencies)]
    with contextlib.suppress(OSError):
        write_json_atomic(path, {"at": t, "order": order, "latency": dict(latencies)})
    return order


def resolve_chain(
    config: MirrorConfig, *, probe: Probe | None = None, now: float | None = None
) -> tuple[Mirror, ...]:
    """The chain to use: an explicit list as given; ``auto`` ranked (cached for a day), with
    pip's own index (``config.head``) first."""
    if not config.auto:
        return config.chain
    t = time.time() if now is None else now
    by_name = {m.name: m for m in config.chain}
    path = config.cache_dir / RANKING_FILE
    order = _cached(path, list(by_name), t)
    if order is None:
        try:
            with locked(path):
                order = _cached(path, list(by_name), t)  # another process may just have probed
                if order is None:
                    order = _probe_and_store(config, probe, path, t)
        except OSError:  # read-only cache dir: rank anyway, just do not remember it
            order = [m.name for m in rank(config.chain, (probe or probe_mirrors)(
                config.chain, PROBE_BUDGET))]
    chain = [by_name[n] for n in order]
    if config.head in by_name:
        chain = [by_name[config.head]] + [m for m in chain if m.name != config.head]
    return tuple(chain)
