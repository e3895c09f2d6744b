"""``pip-91n status``: the chain, where each setting came from, mirror health, the pip hook.

``status`` never probes the network: an ``auto`` chain is shown in the order of the cached
ranking (``<cache_dir>/auto-ranking.json``), or in catalog order when there is none yet.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pip_91n.cli.output import EXIT_OK, Output
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig
from pip_91n.settings.values import size_text

__all__ = ["ago", "effective_chain", "health_rows", "health_text", "run"]


def effective_chain(config: MirrorConfig, *, probe: bool = False
                    ) -> tuple[tuple[Mirror, ...], str]:
    """The chain pip would use now and how its order was decided (no network unless
    ``probe``)."""
    from pip_91n.chain.ranking import cached_ranking, resolve_chain

    if not config.auto:
        return config.chain, "as configured"
    if probe:
        return resolve_chain(config), "auto, ranked by a probe just now"
    cached = cached_ranking(config)
    chain = resolve_chain(config, network=False)
    if cached is None:
        return chain, "auto, not ranked yet: the first pip run probes, or `pip-91n probe`"
    return chain, f"auto, ranked {ago(time.time() - cached[1])} ago"


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def health_rows(config: MirrorConfig, chain: tuple[Mirror, ...]) -> list[dict[str, Any]]:
    from pip_91n._urls import redact
    from pip_91n.chain.health import HealthStore, MirrorHealth, is_backing_off

    snap = HealthStore.in_cache_dir(config.cache_dir).snapshot()
    now = time.time()
    rows = []
    for m in chain:
        h = snap.get(m.name, MirrorHealth())
        rows.append({
            "name": m.name, "url": redact(m.simple_url), "failures": h.failures,
            "latency": h.latency, "last_success": h.last_success,
            "last_failure": h.last_failure, "last_reason": h.last_reason,
            "skipped_until": h.skip_until if is_backing_off(h, now) else None,
        })
    return rows


#: The longest reason a table cell shows (``--json`` has it whole).
_REASON_WIDTH = 60


def _reason(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_WIDTH else line[:_REASON_WIDTH - 3] + "..."


def health_text(row: dict[str, Any]) -> tuple[str, str, str, str]:
    lat = f"{row['latency'] * 1000:.0f} ms" if row["latency"] is not None else "-"
    reason = _reason(row["last_reason"])
    if row["skipped_until"]:
        left = row["skipped_until"] - time.time()
        state, style = f"skipped for {ago(max(0.0, left))}: {reason}", "error"
    elif row["failures"]:
        n = row["failures"]
        state, style = f"{n} failure{'' if n == 1 else 's'}: {reason}", "warn"
    elif row["last_success"]:
        state, style = f"ok {ago(time.time() - row['last_success'])} ago", "ok"
    else:
        state, style = "not used yet", "dim"
    return lat, str(row["failures"]), state, style


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.cli.config import settings, value_text
    from pip_91n.cli.hookstate import describe, hook_state
    from pip_91n.downloads.partials import PartialStore
    from pip_91n.settings.catalog import load_catalog
    from pip_91n.settings.config import load_config

    catalog = load_catalog()
    config = load_config(catalog=catalog)
    chain, how = effective_chain(config)
    health = health_rows(config, chain)
    hook = hook_state(import_pip=not args.no_pip)
    usage = PartialStore(config.cache_dir).usage()
    if out.json_mode:
        out.json({"disabled": config.disabled, "chain_order": how,
                  "chain": health, "settings": settings(config, catalog),
                  "hook": hook.to_json(),
                  "cache": {"dir": str(config.cache_dir), "partials": len(usage),
                            "bytes": sum(usage.values())}})
        return EXIT_OK
    out.heading(f"mirror chain ({how})")
    rows, styles = [], []
    for i, r in enumerate(health, 1):
        lat, _fails, state, style = health_text(r)
        rows.append([str(i), r["name"], lat, state, r["url"]])
        styles.append(style)
    out.table(["#", "mirror", "latency", "health", "index"], rows, styles=styles)
    out.line()
    out.heading("settings")
    rows_s = settings(config, catalog)
    out.table(["setting", "value", "source"],
              [[s["key"], value_text(s["value"]), s["source"]] for s in rows_s],
              styles=[None if s["kind"] == "default" else "ok" for s in rows_s])
    out.line()
    out.heading("pip hook")
    hrows = describe(hook)
    out.table(["", ""], [[a, b] for a, b, _ in hrows], styles=[s for _, _, s in hrows])
    for note in hook.notes:
        out.line(f"note: {note}", "dim")
    out.line()
    out.line(f"cache: {config.cache_dir} ({len(usage)} partial downloads, "
             f"{size_text(sum(usage.values()))})", "dim")
    if config.disabled:
        out.line("PIP_91N_DISABLE is set: pip runs as if pip-91n were not installed", "warn")
    return EXIT_OK
