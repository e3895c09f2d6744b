"""``pip-91n verify [PKG ...]``: installed files against their RECORD sha256.

Every installer writes ``<name>.dist-info/RECORD`` (PEP 376 / PEP 627): one CSV row per
installed file with ``sha256=<urlsafe base64, no padding>`` and the size. ``verify_dist``
re-hashes each file and reports what differs. Rows without a hash (RECORD itself, ``.pyc``
files compiled at install time) cannot be checked and are only counted. Paths are relative
to the directory holding the ``.dist-info`` (``../../bin/tool`` for scripts).

Exit 1 when any checked distribution has a modified or missing file, 2 when a named
distribution is not installed.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from pip_91n.cli.output import EXIT_FAILED, EXIT_OK, Output, UsageError

__all__ = ["DistReport", "run", "select_distributions", "verify_dist", "verify_installed"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DistReport:
    name: str
    version: str
    location: str
    has_record: bool
    checked: int = 0
    unhashed: int = 0
    modified: tuple[str, ...] = field(default=())
    missing: tuple[str, ...] = field(default=())
    unsupported: tuple[str, ...] = field(default=())  # rows with a hash other than sha256

    @property
    def ok(self) -> bool:
        return not self.modified and not self.missing


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii"), size


def verify_dist(dist: metadata.Distribution) -> DistReport:
    """Re-hash every file ``dist``'s RECORD lists."""
    name = dist.metadata["Name"] or "?"
    version = dist.version
    base = Path(str(dist.locate_file("")))
    text = dist.read_text("RECORD")
    if text is None:
        return DistReport(name, version, str(base), False)
    checked = unhashed = 0
    modified: list[str] = []
    missing: list[str] = []
    unsupported: list[str] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        rel = row[0]
        hash_field = row[1] if len(row) > 1 else ""
        path = base / rel
        if not hash_field:
            unhashed += 1
            if not path.exists() and not rel.endswith(".pyc") and "RECORD" not in rel:
                missing.append(rel)
            continue
        algo, _, want = hash_field.partition("=")
        if algo != "sha256":
            unsupported.append(rel)
            continue
        try:
            got, size = _digest(path)
        except FileNotFoundError:
            missing.append(rel)
            continue
        except IsADirectoryError:
            modified.append(rel)
            continue
        checked += 1
        want_size = row[2] if len(row) > 2 else ""
        if got != want or (want_size.isdigit() and int(want_size) != size):
            modified.append(rel)
    return DistReport(name, version, str(base), True, checked, unhashed, tuple(modified),
                      tuple(missing), tuple(unsupported))


def find_distributions(paths: Sequence[str] | None = None) -> list[metadata.Distribution]:
    """Installed distributions on ``paths`` (default ``sys.path``), first of each name."""
    found = (metadata.distributions(path=list(paths)) if paths is not None
             else metadata.distributions())
    seen: set[str] = set()
    out = []
    for dist in found:
        key = _canonical(dist.metadata["Name"] or "")
        if key and key not in seen:
            seen.add(key)
            out.append(dist)
    return sorted(out, key=lambda d: _canonical(d.metadata["Name"] or ""))


def select_distributions(names: Iterable[str] = (), paths: Sequence[str] | None = None
                         ) -> tuple[list[metadata.Distribution], list[str]]:
    """(distributions to check, names not installed); all distributions when ``names`` is
    empty. Names are compared normalized (``Foo_Bar`` is ``foo-bar``)."""
    names = list(names)
    dists = find_distributions(paths)
    if not names:
        return dists, []
    by_name = {_canonical(d.metadata["Name"] or ""): d for d in dists}
    wanted = [_canonical(n) for n in names]
    unknown = [n for n, key in zip(names, wanted) if key not in by_name]
    return [by_name[k] for k in dict.fromkeys(wanted) if k in by_name], unknown


def verify_installed(names: Iterable[str] = (), paths: Sequence[str] | None = None
                     ) -> tuple[list[DistReport], list[str]]:
    """(reports, names not installed) for ``names`` (all distributions when empty)."""
    dists, unknown = select_distributions(names, paths)
    return [verify_dist(d) for d in dists], unknown


def run(args: argparse.Namespace, out: Output) -> int:
    for path in args.path or ():
        if not Path(path).is_dir():
            raise UsageError(f"--path {path}: no such directory (give a site-packages "
                             "directory, e.g. the output of `python -m site`)")
    dists, unknown = select_distributions(args.packages, args.path)
    if unknown:
        raise UsageError(f"not installed: {', '.join(unknown)} (see `pip list`)")
    if not dists:
        out.error("no installed distributions found" + (
            f" in {', '.join(args.path)}" if args.path else "") + "; nothing was verified")
        return EXIT_FAILED
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
