"""``auto``: rank the catalog by a quick parallel probe, remembered in the cache dir for a day.

``resolve_chain`` turns a ``MirrorConfig`` into the chain to use, probing and ranking
(``pip_91n.chain.probe``) only when no ranking younger than a day is remembered. Mirrors that
did not answer are kept, after the ones that did (the health memory skips them quickly), so
pypi, ranked like the others, is always in the chain. The probe is a parameter: tests give
loopback mirrors and never probe real hosts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pip_91n._statefile import locked, read_json, write_json_atomic
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["RANKING_FILE", "RANKING_TTL", "Probe", "cached_ranking", "resolve_chain",
           "save_ranking"]

RANKING_TTL = 24 * 3600.0
RANKING_FILE = "auto-ranking.json"

#: ``probe(mirrors, budget) -> {name: seconds or None}``
Probe = Callable[[Sequence[Mirror], float], Mapping[str, "float | None"]]


def cached_ranking(config: MirrorConfig, now: float | None = None
                   ) -> tuple[list[str], float, dict[str, Any]] | None:
    """(ranked names, when, latencies) of the remembered ranking, when it is younger than a
    day and ranks exactly the mirrors of ``config``'s chain."""
    data = read_json(config.cache_dir / RANKING_FILE)
    at, order = data.get("at"), data.get("order")
    t = time.time() if now is None else now
    if not isinstance(at, (int, float)) or not isinstance(order, list):
        return None
    names = sorted(m.name for m in config.chain)
    if not 0 <= t - at < RANKING_TTL or sorted(map(str, order)) != names:
        return None
    latency = data.get("latency")
    return [str(n) for n in order], float(at), latency if isinstance(latency, dict) else {}


def save_ranking(path: Path, latencies: Mapping[str, float | None], order: Sequence[str],
                 now: float | None = None) -> None:
    """Remember a ranking (a read-only cache dir just means it is not remembered)."""
    with contextlib.suppress(OSError):
        write_json_atomic(path, {"at": time.time() if now is None else now,
                                 "order": list(order), "latency": dict(latencies)})


def _ranked(config: MirrorConfig, probe: Probe | None) -> tuple[list[str], dict[str, Any]]:
    from pip_91n.chain.probe import PROBE_BUDGET, probe_mirrors, rank

    latencies = dict((probe or probe_mirrors)(config.chain, PROBE_BUDGET))
    return [m.name for m in rank(config.chain, latencies)], latencies


def resolve_chain(
    config: MirrorConfig, *, probe: Probe | None = None, now: float | None = None,
    network: bool = True,
) -> tuple[Mirror, ...]:
    """The chain to use: an explicit list as given; ``auto`` ranked (cached for a day), with
    pip's own index (``config.head``) first. Without ``network`` an ``auto`` chain that has
    no ranking yet stays in catalog order."""
    if not config.auto:
        return config.chain
    t = time.time() if now is None else now
    by_name = {m.name: m for m in config.chain}
    path = config.cache_dir / RANKING_FILE
    cached = cached_ranking(config, t)
    if cached is not None:
        order = cached[0]
    elif not network:
        order = list(by_name)
    else:
        try:
            with locked(path):
                cached = cached_ranking(config, t)  # another process may just have probed
                if cached is not None:
                    order = cached[0]
                else:
                    order, latencies = _ranked(config, probe)
                    save_ranking(path, latencies, order, t)
        except OSError:  # read-only cache dir: rank anyway, just do not remember it
            order, _ = _ranked(config, probe)
    chain = [by_name[n] for n in order]
    if config.head in by_name:
        chain = [by_name[config.head]] + [m for m in chain if m.name != config.head]
    return tuple(chain)
