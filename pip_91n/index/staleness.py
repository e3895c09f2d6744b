"""Staleness policy, as pure functions.

Mirrors lag PyPI (and filter some projects), so two rules keep a lagging mirror from
changing what pip sees:

1. Serial: a project page whose serial is lower than one already seen for the same project
   in this run is not served; the next mirror is tried. An unknown serial (TUNA sends no
   header) is never treated as stale.
2. Pins: when the caller knows it needs an exact version (``==X``) and the page lacks it, the
   next mirrors are asked before pip is told the version does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # ``packaging`` is imported when a pin is judged, not with every page
    from packaging.version import Version

__all__ = [
    "PageVerdict",
    "is_stale",
    "judge_page",
    "newer_serial",
    "pinned_version",
    "versions_in",
]


def is_stale(seen: int | None, serial: int | None) -> bool:
    """True only when both serials are known and ``serial`` is older than ``seen``."""
    return seen is not None and serial is not None and serial < seen


def newer_serial(seen: int | None, serial: int | None) -> int | None:
    """The serial to remember after accepting a page with ``serial``."""
    if seen is None:
        return serial
    if serial is None:
        return seen
    return max(seen, serial)


def pinned_version(specifiers: Iterable[Any]) -> str | None:
    """The version of an exact pin: exactly one ``==X`` / ``===X`` specifier, no wildcard;
    else None. ``specifiers`` are ``packaging`` specifiers (pip's vendored copy or the
    standalone one): anything with ``operator`` and ``version``."""
    specs = list(specifiers)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
        return None
    return str(specs[0].version)


def versions_in(filenames: Iterable[str]) -> frozenset[Version]:
    """Versions named by wheel and sdist filenames (others ignored)."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion

    out: set[Version] = set()
    for name in filenames:
        try:
            if name.endswith(".whl"):
                out.add(parse_wheel_filename(name)[1])
            else:
                out.add(parse_sdist_filename(name)[1])
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
    return frozenset(out)


class PageVerdict(NamedTuple):
    """Whether to serve a page, and why not."""

    serve: bool
    reason: str = ""


def judge_page(
    *,
    seen_serial: int | None,
    serial: int | None,
    filenames: Iterable[str] = (),
    pin: Version | str | None = None,
    last_mirror: bool = False,
) -> PageVerdict:
    """Serve this page, or move on to the next mirror?

    ``pin`` is the exact version the caller needs (a ``packaging`` Version or its text; an
    invalid one is ignored). The last mirror's page is served even when it lacks the pin (pip
    then says the version does not exist), but a stale page is never served.
    """
    if is_stale(seen_serial, serial):
        return PageVerdict(False, f"stale page (serial {serial} < {seen_serial} seen this run)")
    version = _version(pin) if pin is not None and not last_mirror else None
    if version is not None and version not in versions_in(filenames):
        return PageVerdict(False, f"pinned version {version} not on this mirror")
    return PageVerdict(True)


def _version(pin: Version | str) -> Version | None:
    from packaging.version import InvalidVersion, Version

    if isinstance(pin, Version):
        return pin
    try:
        return Version(str(pin))
    except InvalidVersion:
        return None
