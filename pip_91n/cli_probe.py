"""``pip-91n probe``: latency and throughput of every mirror, in parallel, bounded in time.

Each mirror gets one GET of a project page (``/simple/pip/`` by default: a few hundred KB
on PyPI, enough to see throughput). Latency is the time to the response headers; throughput
is the body bytes over the time after them. The whole probe ends after ``--budget``
seconds; a mirror that has not answered by then is reported as timed out. Results appear
live on a terminal, then as a table best first (the same order ``auto`` uses).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pip_91n.catalog import Catalog, Mirror
from pip_91n.cli_output import EXIT_FAILED, EXIT_OK, Output, UsageError

__all__ = ["ProbeResult", "measure", "run", "select_mirrors"]


@dataclass(frozen=True)
class ProbeResult:
    name: str
    url: str
    ok: bool
    status: int | None = None
    latency: float | None = None  # seconds to the response headers
    throughput: float | None = None  # body bytes per second after the headers
    nbytes: int = 0
    error: str = ""


def _one(mirror: Mirror, project: str, deadline: float) -> ProbeResult:
    import httpx

    from pip_91n.pages import is_page_content_type
    from pip_91n.routing import redact, split_credentials

    url, creds = split_credentials(mirror.simple_url + project + "/")
    shown = redact(mirror.simple_url)
    t0 = time.monotonic()
    timeout = httpx.Timeout(max(0.05, deadline - t0))
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client, client.stream(
                "GET", url, auth=creds, headers={"accept": "text/html"}) as r:
            t1 = time.monotonic()
            nbytes = 0
            for chunk in r.iter_raw():
                nbytes += len(chunk)
                if time.monotonic() >= deadline:
                    break
            t2 = time.monotonic()
    except httpx.TimeoutException:
        return ProbeResult(mirror.name, shown, False, error="timed out")
    except (httpx.HTTPError, OSError) as exc:
        return ProbeResult(mirror.name, shown, False, error=_reason(exc))
    if r.status_code != 200:
        return ProbeResult(mirror.name, shown, False, r.status_code, t1 - t0,
                           error=f"HTTP {r.status_code}")
    if not is_page_content_type(r.headers.get("content-type")):
        return ProbeResult(mirror.name, shown, False, 200, t1 - t0,
                           error=f"not an index page ({r.headers.get('content-type')})")
    rate = nbytes / (t2 - t1) if t2 > t1 and nbytes else None
    return ProbeResult(mirror.name, shown, True, 200, t1 - t0, rate, nbytes)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "DNS lookup failed"
    return text.splitlines()[0][:120]


def measure(mirrors: Sequence[Mirror], *, budget: float = 5.0, project: str = "pip",
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Probe ``mirrors`` at once; every result within ``budget`` seconds, best first."""
    deadline = time.monotonic() + budget
    results: dict[str, ProbeResult] = {}
    lock = threading.Lock()

    def work(m: Mirror) -> None:
        try:
            res = _one(m, project, deadline)
        except Exception as exc:  # never let one mirror break the probe
            res = ProbeResult(m.name, m.simple_url, False, error=_reason(exc))
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
            results.setdefault(m.name, ProbeResult(m.name, m.simple_url, False,
                                                   error=f"no answer within {budget:g} s"))
        snapshot = dict(results)
    return ordered(mirrors, snapshot)


def ordered(mirrors: Sequence[Mirror], results: dict[str, ProbeResult]) -> list[ProbeResult]:
    """Best first: answering mirrors by latency (ties in chain order), then the others."""
    from pip_91n.ranking import rank

    latencies = {n: (r.latency if r.ok else None) for n, r in results.items()}
    return [results[m.name] for m in rank(mirrors, latencies)]


def select_mirrors(names: Sequence[str], catalog: Catalog, *, every: bool) -> list[Mirror]:
    """The mirrors to probe: those named, every catalog mirror, or the configured chain."""
    from pip_91n.catalog import mirror_from_url
    from pip_91n.config import load_config

    if names:
        out: list[Mirror] = []
        for item in (i.strip() for n in names for i in n.split(",") if i.strip()):
            if "://" in item:
                out.append(catalog.match_url(item) or mirror_from_url(item))
                continue
            found = catalog.get(item)
            if found is None:
                raise UsageError(f"unknown mirror {item!r}; known names: "
                                 f"{', '.join(catalog.names)}, or give a simple-index URL")
            out.append(found)
        return out
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
    from pip_91n._statefile import write_json_atomic
    from pip_91n.config import load_config
    from pip_91n.ranking import RANKING_FILE

    try:
        config = load_config()
    except Exception:
        return
    if not config.auto or sorted(m.name for m in config.chain) != sorted(m.name for m in chain):
        return
    with contextlib.suppress(OSError):
        write_json_atomic(config.cache_dir / RANKING_FILE, {
            "at": time.time(), "order": [r.name for r in results],
            "latency": {r.name: r.latency if r.ok else None for r in results}})


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.catalog import load_catalog

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
        from pip_91n.cli_config import mirror_spec
        from pip_91n.cli_configfile import update_config, user_config_path

        by_name = {m.name: m for m in chain}
        value = [mirror_spec(by_name[r.name], catalog) for r in answered]
        path = user_config_path(os.environ)
        update_config(path, {"mirrors": value})
        saved = str(path)
    if out.json_mode:
        out.json({"project": args.project, "budget": args.budget, "saved": saved,
                  "results": [asdict(r) for r in results]})
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
