"""``pip-91n status`` and ``pip-91n cache list|purge``.

``status`` never probes the network: an ``auto`` chain is shown in the order of the cached
ranking (``<cache_dir>/auto-ranking.json``), or in catalog order when there is none yet.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from pip_91n.catalog import Mirror
from pip_91n.cli_output import EXIT_OK, Output
from pip_91n.config import MirrorConfig

__all__ = ["cached_ranking", "effective_chain", "health_rows", "run"]

HEALTH_FILE = "health.json"


def cached_ranking(config: MirrorConfig, now: float | None = None
                   ) -> tuple[list[str] | None, float | None]:
    """(ranked names, when) from the auto ranking in the cache dir, if valid for the chain."""
    from pip_91n._statefile import read_json
    from pip_91n.ranking import RANKING_FILE, RANKING_TTL

    data = read_json(config.cache_dir / RANKING_FILE)
    at, order = data.get("at"), data.get("order")
    t = time.time() if now is None else now
    names = sorted(m.name for m in config.chain)
    if not isinstance(at, (int, float)) or not isinstance(order, list):
        return None, None
    if not 0 <= t - at < RANKING_TTL or sorted(map(str, order)) != names:
        return None, None
    return [str(n) for n in order], float(at)


def effective_chain(config: MirrorConfig, *, probe: bool = False
                    ) -> tuple[tuple[Mirror, ...], str]:
    """The chain pip would use now and how its order was decided (no network unless
    ``probe``)."""
    if not config.auto:
        return config.chain, "as configured"
    if probe:
        from pip_91n.ranking import resolve_chain

        return resolve_chain(config), "auto, ranked by a probe just now"
    order, at = cached_ranking(config)
    if order is None or at is None:
        return config.chain, "auto, not ranked yet: the first pip run probes, or `pip-91n probe`"
    by_name = {m.name: m for m in config.chain}
    chain = [by_name[n] for n in order]
    if config.head in by_name:
        chain = [by_name[config.head]] + [m for m in chain if m.name != config.head]
    return tuple(chain), f"auto, ranked {_ago(time.time() - at)} ago"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def health_rows(config: MirrorConfig, chain: tuple[Mirror, ...]) -> list[dict[str, Any]]:
    from pip_91n.health import HealthStore, MirrorHealth, is_backing_off
    from pip_91n.routing import redact

    snap = HealthStore(config.cache_dir / HEALTH_FILE).snapshot()
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


def _health_text(row: dict[str, Any]) -> tuple[str, str, str, str]:
    lat = f"{row['latency'] * 1000:.0f} ms" if row["latency"] is not None else "-"
    if row["skipped_until"]:
        left = row["skipped_until"] - time.time()
        state, style = f"skipped for {_ago(max(0.0, left))}: {row['last_reason']}", "error"
    elif row["failures"]:
        state, style = f"{row['failures']} failures: {row['last_reason']}", "warn"
    elif row["last_success"]:
        state, style = f"ok {_ago(time.time() - row['last_success'])} ago", "ok"
    else:
        state, style = "not used yet", "dim"
    return lat, str(row["failures"]), state, style


def run_status(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.catalog import load_catalog
    from pip_91n.cli_config import settings, value_text
    from pip_91n.cli_hook import describe, hook_state
    from pip_91n.config import load_config
    from pip_91n.partials import PartialStore

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
        lat, _fails, state, style = _health_text(r)
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
             f"{_size(sum(usage.values()))})", "dim")
    if config.disabled:
        out.line("PIP_91N_DISABLE is set: pip runs as if pip-91n were not installed", "warn")
    return EXIT_OK


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def _partials(cache_dir: Path) -> list[dict[str, Any]]:
    from pip_91n.partials import PartialStore

    store = PartialStore(cache_dir)
    out = []
    for sha, used in sorted(store.usage().items()):
        meta = store.load_meta(sha)
        complete = store.path(sha, ".complete").exists()
        size = meta.size if meta is not None else None
        done = size if complete else store.done_ranges(sha, size).total()
        out.append({"sha256": sha, "filename": meta.filename if meta else None,
                    "size": size, "done": done, "disk_bytes": used, "complete": complete})
    return out


def run_cache(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.config import load_config
    from pip_91n.ranking import RANKING_FILE

    config = load_config()
    cache = config.cache_dir
    if args.action == "purge":
        both = not args.partials and not args.health
        report: dict[str, Any] = {"dir": str(cache)}
        if args.partials or both:
            from pip_91n.download import purge

            res = purge(cache)
            report.update(partials_removed=len(res.removed), freed_bytes=res.freed_bytes,
                          partials_in_use=res.kept)
        if args.health or both:
            removed = []
            for name in (HEALTH_FILE, RANKING_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (cache / name).unlink()
                    removed.append(name)
            report["state_removed"] = removed
        if out.json_mode:
            out.json(report)
        else:
            if "partials_removed" in report:
                kept = report["partials_in_use"]
                out.line(f"removed {report['partials_removed']} partial downloads "
                         f"({_size(report['freed_bytes'])})"
                         + (f"; {kept} in use by another process kept" if kept else ""), "ok")
            if "state_removed" in report:
                out.line("removed mirror health state and auto ranking" if report[
                    "state_removed"] else "no mirror health state to remove", "ok")
        return EXIT_OK
    partials = _partials(cache)
    chain = tuple(config.chain)
    health = [r for r in health_rows(config, chain) if r["failures"] or r["last_success"]]
    order, at = cached_ranking(config)
    if out.json_mode:
        out.json({"dir": str(cache), "partials": partials, "health": health,
                  "ranking": {"order": order, "at": at}})
        return EXIT_OK
    out.heading(f"cache dir: {cache}")
    if partials:
        out.table(["file", "progress", "on disk", "sha256"], [
            [p["filename"] or "?", _progress(p), _size(p["disk_bytes"]), p["sha256"][:16]]
            for p in partials], title="partial downloads")
    else:
        out.line("no partial downloads")
    if health:
        rows = []
        for r in health:
            lat, fails, state, _ = _health_text(r)
            rows.append([r["name"], lat, fails, state])
        out.table(["mirror", "latency", "failures", "health"], rows, title="mirror health")
    else:
        out.line("no mirror health recorded")
    if order:
        out.line(f"auto ranking: {', '.join(order)} ({_ago(time.time() - (at or 0))} ago)")
    return EXIT_OK


def _progress(p: dict[str, Any]) -> str:
    if p["complete"]:
        return "complete"
    if p["size"] and p["done"] is not None:
        return f"{100 * p['done'] / p['size']:.0f}% of {_size(p['size'])}"
    return "unknown"


def run(args: argparse.Namespace, out: Output) -> int:
    if args.command == "cache":
        return run_cache(args, out)
    return run_status(args, out)
