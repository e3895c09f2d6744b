"""The one exception tree of pip_91n.

::

    Pip91nError
     ├── ConfigError (also ValueError)          a setting is invalid; names its source and the fix
     ├── AllMirrorsFailed (also ConnectionError) every mirror of the chain failed; ``.attempts``
     │    │                                      lists each mirror and why
     │    └── DownloadFailed                     a file could not be fetched whole with its
     │                                           sha256 from any source; the partial is kept
     └── HashNotConfirmed                        the sources do not vouch for a file's sha256
                                                 (they disagree, or strict found no second one)

Third-party errors (httpx, OS errors) are translated into this tree at one boundary each,
with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = ["AllMirrorsFailed", "Attempt", "ConfigError", "DownloadFailed", "HashNotConfirmed",
           "Pip91nError"]


class Pip91nError(Exception):
    """Base class of every error pip_91n raises on purpose."""


class ConfigError(Pip91nError, ValueError):
    """A pip-91n setting is invalid. The message names where it came from and how to fix it."""


class Attempt(NamedTuple):
    """One try of one mirror for one request: where it went and why it was not used.

    ``reason`` is a short phrase (``"connect failed: ..."``, ``"HTTP 503"``,
    ``"sha256 mismatch"``, ``"skipped: backing off for 30s"``); ``url`` is already redacted.
    """

    mirror: str
    url: str
    reason: str
    seconds: float = 0.0


class AllMirrorsFailed(Pip91nError, ConnectionError):
    """Every mirror of the chain failed for one request; ``attempts`` says how each one did."""

    def __init__(self, what: str, attempts: Sequence[Attempt]) -> None:
        self.what = what
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        lines = [f"all {len(self.attempts)} mirrors failed for {what}:"]
        lines += [f"  - {a.mirror}: {a.reason} ({a.url})" for a in self.attempts]
        lines.append(
            "  fix: check the network, or set PIP_91N_MIRRORS to mirrors you can reach "
            "(see `pip-91n --help`)"
        )
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[AllMirrorsFailed], tuple[str, tuple[Attempt, ...]]]:
        return (type(self), (self.what, self.attempts))


class DownloadFailed(AllMirrorsFailed):
    """No source delivered the file whole with the expected sha256 (``pip_91n.download``).

    ``what`` names the file; ``attempts`` lists every source and why it was given up. The
    partial download stays in the cache dir, so the next run resumes it."""

    def __init__(self, what: str, attempts: Sequence[Attempt]) -> None:
        self.what = what
        self.attempts = tuple(attempts)
        lines = [f"could not download {what} whole and verified from any source:"]
        last: dict[str, tuple[Attempt, int]] = {}
        for a in self.attempts:  # one line per source: its last reason, and how often
            last[a.url] = (a, last.get(a.url, (a, 0))[1] + 1)
        for a, count in last.values():
            times = f", {count} failures" if count > 1 else ""
            lines.append(f"  - {a.mirror}: {a.reason} ({a.url}{times})")
        if not self.attempts:
            lines.append("  - no source was usable")
        lines.append("  the partial download is kept; running the same command again resumes it")
        Exception.__init__(self, "\n".join(lines))


class HashNotConfirmed(Pip91nError):
    """A file is not handed out because its sources do not vouch for its sha256
    (``PIP_91N_VERIFY``). ``kind`` says how the vote went: ``outvoted`` (pypi.org or a
    majority names ``winner`` instead), ``split`` (the sources disagree and nothing settles
    it) or ``single`` (no second source lists it, and the policy is ``strict``);
    ``listings`` maps each mirror to the hash its page named."""

    def __init__(self, filename: str, sha256: str, listings: Mapping[str, str], kind: str,
                 winner: str | None = None, policy: str = "quorum") -> None:
        self.filename, self.sha256, self.kind, self.winner = filename, sha256, kind, winner
        self.listings = dict(listings)
        self.policy = policy
        named = "; ".join(f"{m} lists {h}" for m, h in self.listings.items())
        if kind == "outvoted":
            text = (f"{filename}: the page pip read names sha256 {sha256}, but the other "
                    f"sources outvote it ({named}); the mirror that disagreed is skipped from "
                    "now on, so running the same command again uses the majority's file")
        elif kind == "split":
            text = (f"{filename}: the mirrors disagree about its sha256 and nothing settles it "
                    f"({named}), so pip-91n hands out neither. Fix: add pypi (the authority) "
                    "or a mirror of a third operator to PIP_91N_MIRRORS; PIP_91N_VERIFY=off "
                    "trusts each page as it is")
        else:
            text = (f"{filename}: only {', '.join(self.listings) or 'one page'} lists it "
                    f"(sha256 {sha256}) and no second source confirmed it in time; "
                    f"PIP_91N_VERIFY={policy} refuses such files. Fix: add a mirror of another "
                    "operator (e.g. pypi) to PIP_91N_MIRRORS, wait until the mirrors catch "
                    "up, or set PIP_91N_VERIFY=quorum to proceed with a warning")
        super().__init__(text)

    def __reduce__(self) -> tuple[type[HashNotConfirmed], tuple[object, ...]]:
        return (type(self), (self.filename, self.sha256, self.listings, self.kind,
                             self.winner, self.policy))
