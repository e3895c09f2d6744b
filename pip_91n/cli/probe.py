"""``pip-91n probe``: latency and throughput of every mirror, in parallel, bounded in time.

Each mirror gets one GET of a project page (``/simple/pip/`` by default: a few hundred KB
on PyPI, enough to see throughput), through ``pip_91n.chain.probe.measure``, the probe
``auto`` uses. Latency is the time to the response headers; throughput is the body bytes
over the time after them. The whole probe ends after ``--budget`` seconds; a mirror that
has not answered by then is reported as timed out. Results appear live on a terminal, then
as a table best first (the same order ``auto`` uses).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pip_91n.chain.probe import ProbeResult, measure
from pip_91n.cli.output import EXIT_FAILED, EXIT_OK, Output, UsageError
from pip_91n.errors import ConfigError
from pip_91n.settings.catalog import Catalog, Mirror, parse_mirror

__all__ = ["parse_mirrors", "run", "select_mirrors"]


def parse_mirrors(items: Sequence[str], catalog: Catalog) -> list[Mirror]:
    """The mirrors named on the command line (names or URLs, comma-separated): a wrong one
    is a usage error. Measuring a plain-http mirror is allowed (using it is another matter:
    ``pip-91n use`` checks that)."""
    out: list[Mirror] = []
    for item in (i.strip() for n in items for i in n.split(",") if i.strip()):
        host = urlsplit(item).hostname or ""
        try:
            out.append(parse_mirror(item, catalog, "command line", allow_http=(host,)))
        except ConfigError as exc:
            raise UsageError(str(exc).removeprefix("command line: ")) from None
    return out


def select_mirrors(names: Sequence[str], catalog: Catalog, *, every: bool) -> list[Mirror]:
    """The mirrors to probe: those named, every catalog mirror, or the configured chain."""
    from pip_91n.settings.config import load_config

    if names:
        return parse_mirrors(names, catalog)
    if every:
        return list(catalog.mirrors)
    return list(load_config(catalog=catalog).chain)


def _row(r: ProbeResult, rank: int | None) -> list[str]:
    lat = f"{r.latency * 1000:.0f} ms" if r.latency is not None else "-"
    rate = _rate(r.throughput) if r.throughput else "-"
    return [str(rank) if rank else "-", r.name, lat, rate, "ok" if r.ok else r.error, r.url]


def _rate(bps: float) -> str:
    for unit in ("B/s", "KB/s", "MB/s"):
        if bps < 1024 or unit == "MB/s":
            return f"{bps:.0f} {unit}" if unit == "B/s" else f"{bps:.1f} {unit}"
        bps /= 1024
    return ""  # pragma: no cover


_COLUMNS = ["#", "mirror", "latency", "throughput", "result", "index"]


def _save_ranking(chain: Sequence[Mirror], results: list[ProbeResult]) -> None:
    """When the probe covered exactly an ``auto`` chain, refresh the cached auto ranking."""
    from pip_91n.chain.ranking import RANKING_FILE, save_ranking
    from pip_91n.settings.config import load_config

    try:
        config = load_config()
    except ConfigError:
        return
    if not config.auto or sorted(m.name for m in config.chain) != sorted(m.name for m in chain):
        return
    save_ranking(config.cache_dir / RANKING_FILE,
                 {r.name: r.latency if r.ok else None for r in results},
                 [r.name for r in results])


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.settings.catalog import load_catalog

    if args.budget <= 0:
        raise UsageError("--budget must be a positive number of seconds")
    catalog = load_catalog()
    chain = select_mirrors(args.mirrors, catalog, every=args.catalog)
    if out.rich:
        from rich.live import Live

        done: list[ProbeResult] = []

        def render() -> Any:
            rows = [_row(r, None) for r in done]
            waiting = [[" ", m.name, "...", "", "probing", m.simple_url] for m in chain
                       if m.name not in {r.name for r in done}]
            styles = ["ok" if r.ok else "error" for r in done] + ["dim"] * len(waiting)
            return out.rich_table(_COLUMNS, rows + waiting, styles=styles,
                                  title=f"probing {len(chain)} mirrors (at most {args.budget:g} s)")

        with Live(render(), console=out.console, transient=True, refresh_per_second=10) as live:
            def show(r: ProbeResult) -> None:
                done.append(r)
                live.update(render())

            results = measure(chain, budget=args.budget, project=args.project, on_result=show)
    else:
        results = measure(chain, budget=args.budget, project=args.project)
    _save_ranking(chain, results)
    answered = [r for r in results if r.ok]
    saved = None
    if args.save and answered:
        from pip_91n.settings.catalog import mirror_spec
        from pip_91n.settings.config import update_config
        from pip_91n.settings.configfile import config_paths

        by_name = {m.name: m for m in chain}
        value = [mirror_spec(by_name[r.name], catalog) for r in answered]
        path = config_paths(os.environ)[0]
        update_config(path, {"mirrors": value})
        saved = str(path)
    if out.json_mode:
        out.json({"project": args.project, "budget": args.budget, "saved": saved,
                  "results": [r._asdict() for r in results]})
    else:
        rank = 0
        rows = []
        for r in results:
            rank += r.ok
            rows.append(_row(r, rank if r.ok else None))
        out.table(_COLUMNS, rows, styles=["ok" if r.ok else "error" for r in results])
        if saved:
            out.line(f"saved mirrors = {', '.join(r.name for r in answered)} to {saved}", "ok")
    if not answered:
        out.error("no mirror answered" + ("; nothing saved" if args.save else ""))
        return EXIT_FAILED
    if saved and os.environ.get("PIP_91N_MIRRORS", "").strip():
        out.note("PIP_91N_MIRRORS is set in the environment and takes precedence over the "
                 "config file")
    return EXIT_OK
