"""``pip-91n verify [PKG ...]``: installed files against their RECORD sha256.

Exit 1 when any checked distribution has a modified or missing file, 2 when a named
distribution is not installed.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from pip_91n.cli_output import EXIT_FAILED, EXIT_OK, Output, UsageError

__all__ = ["run"]


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.verify import select_distributions, verify_dist

    dists, unknown = select_distributions(args.packages, args.path)
    if unknown:
        raise UsageError(f"not installed: {', '.join(unknown)} (see `pip list`)")
    if out.rich:
        from rich.progress import Progress

        reports = []
        with Progress(console=out.console, transient=True) as progress:
            task = progress.add_task("verifying", total=len(dists))
            for dist in dists:
                progress.update(task, description=f"verifying {dist.metadata['Name']}")
                reports.append(verify_dist(dist))
                progress.advance(task)
    else:
        reports = [verify_dist(d) for d in dists]
    bad = [r for r in reports if not r.ok]
    if out.json_mode:
        out.json({"ok": not bad, "distributions": [
            {**asdict(r), "ok": r.ok} for r in reports]})
        return EXIT_FAILED if bad else EXIT_OK
    rows, styles = [], []
    for r in reports:
        if not r.has_record:
            state, style = "no RECORD: cannot verify", "dim"
        elif r.ok:
            state, style = "ok", "ok"
        else:
            state = ", ".join(p for p in (
                f"{len(r.modified)} modified" if r.modified else "",
                f"{len(r.missing)} missing" if r.missing else "") if p)
            style = "error"
        rows.append([r.name, r.version, str(r.checked), state])
        styles.append(style)
    out.table(["distribution", "version", "files checked", "result"], rows, styles=styles)
    for r in bad:
        out.line()
        out.line(f"{r.name} {r.version} ({r.location}):", "error")
        for p in r.modified:
            out.line(f"  modified: {p}", "error")
        for p in r.missing:
            out.line(f"  missing:  {p}", "error")
    if bad:
        out.line()
        out.line(f"{len(bad)} of {len(reports)} distributions differ from their RECORD; "
                 "reinstall them with: pip install --force-reinstall --no-deps "
                 + " ".join(f"'{r.name}=={r.version}'" for r in bad), "warn")
        return EXIT_FAILED
    checked = sum(r.checked for r in reports)
    out.line(f"{len(reports)} distributions, {checked} files match their RECORD", "ok")
    return EXIT_OK
