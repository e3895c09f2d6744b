"""``pip-91n cache list|purge``: partial downloads, mirror health and the auto ranking."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from pip_91n.cli.output import EXIT_OK, Output
from pip_91n.cli.status import ago, health_rows, health_text
from pip_91n.settings.values import size_text

__all__ = ["run"]


def _partials(cache_dir: Path) -> list[dict[str, Any]]:
    from pip_91n.downloads.partials import PartialStore

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


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.chain.health import HEALTH_FILE
    from pip_91n.chain.ranking import RANKING_FILE, cached_ranking
    from pip_91n.settings.config import load_config

    config = load_config()
    cache = config.cache_dir
    if args.action == "purge":
        both = not args.partials and not args.health
        report: dict[str, Any] = {"dir": str(cache)}
        if args.partials or both:
            from pip_91n.downloads.api import purge

            res = purge(cache)
            report.update(partials_removed=len(res.removed), freed_bytes=res.freed_bytes,
                          partials_in_use=res.kept)
        if args.health or both:
            removed = []
            for name in (HEALTH_FILE, RANKING_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (cache / name).unlink()
                    removed.append(name)
                with contextlib.suppress(OSError):  # the state file's lock goes with it
                    (cache / f"{name}.lock").unlink()
            report["state_removed"] = removed
        if out.json_mode:
            out.json(report)
        else:
            if "partials_removed" in report:
                kept = report["partials_in_use"]
                out.line(f"removed {report['partials_removed']} partial downloads "
                         f"({size_text(report['freed_bytes'])})"
                         + (f"; {kept} in use by another process kept" if kept else ""), "ok")
            if "state_removed" in report:
                out.line("removed mirror health state and auto ranking" if report[
                    "state_removed"] else "no mirror health state to remove", "ok")
        return EXIT_OK
    partials = _partials(cache)
    chain = tuple(config.chain)
    health = [r for r in health_rows(config, chain) if r["failures"] or r["last_success"]]
    order, at, _ = cached_ranking(config) or (None, None, None)
    if out.json_mode:
        out.json({"dir": str(cache), "partials": partials, "health": health,
                  "ranking": {"order": order, "at": at}})
        return EXIT_OK
    out.heading(f"cache dir: {cache}")
    if partials:
        out.table(["file", "progress", "on disk", "sha256"], [
            [p["filename"] or "?", _progress(p), size_text(p["disk_bytes"]), p["sha256"][:16]]
            for p in partials], title="partial downloads")
    else:
        out.line("no partial downloads")
    if health:
        rows = []
        for r in health:
            lat, fails, state, _ = health_text(r)
            rows.append([r["name"], lat, fails, state])
        out.table(["mirror", "latency", "failures", "health"], rows, title="mirror health")
    else:
        out.line("no mirror health recorded")
    if order:
        out.line(f"auto ranking: {', '.join(order)} ({ago(time.time() - (at or 0))} ago)")
    return EXIT_OK


def _progress(p: dict[str, Any]) -> str:
    if p["complete"]:
        return "complete"
    if p["size"] and p["done"] is not None:
        return f"{100 * p['done'] / p['size']:.0f}% of {size_text(p['size'])}"
    return "unknown"


