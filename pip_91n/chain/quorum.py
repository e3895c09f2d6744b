"""The sources' vote on a file's sha256, as a pure function.

Mirrors are copies of one upstream, and PyPI never lets a filename's bytes change once
uploaded, so two sources that name different hashes for one filename cannot both be right.
``vote`` says, from what each source's project page named, whether a hash is confirmed by a
second, independent source, stands alone, lost to a majority (or to pypi.org, the authority,
when it answered), or is caught in a split no one can settle. Mirrors of one failure domain
(BFSU is run by TUNA; USTC redirects misses to TUNA) count as one source.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, NamedTuple

__all__ = ["AUTHORITY", "Vote", "VoteKind", "vote"]

#: The chain mirror whose word settles a disagreement: the upstream, pypi.org.
AUTHORITY = "pypi"

#: agreed: an independent source (or the authority) names the same hash; single: no other
#: source names the file; outvoted: the authority or a majority names another hash; split: the
#: sources disagree and nothing settles it.
VoteKind = Literal["agreed", "single", "outvoted", "split"]


class Vote(NamedTuple):
    """The verdict on one (filename, sha256): ``winner`` is the hash to use (None for
    single and split), ``backers`` the mirrors that list it, ``dissent`` those that list
    another hash."""

    kind: VoteKind
    winner: str | None = None
    backers: tuple[str, ...] = ()
    dissent: tuple[str, ...] = ()


def vote(sha256: str, listings: Mapping[str, str], domains: Mapping[str, str],
         authority: str = AUTHORITY, pinned: Collection[str] = ()) -> Vote:
    """How the sources vote on ``sha256`` for one file. ``listings`` maps each mirror whose
    page named the file to the hash it named; ``domains`` maps mirrors to failure domains
    (a mirror without one is its own); ``pinned`` are hashes the user pinned, which settle a
    split."""
    sha256 = sha256.lower()
    named = {m: h.lower() for m, h in listings.items()}
    by_hash: dict[str, list[str]] = {}
    for mirror, h in named.items():
        by_hash.setdefault(h, []).append(mirror)
    if authority in named:
        winner = named[authority]
    else:
        votes = {h: len({domains.get(m, m) for m in ms}) for h, ms in by_hash.items()}
        top = max(votes.values(), default=0)
        leaders = [h for h, n in votes.items() if n == top]
        if len(by_hash) <= 1:
            if votes.get(sha256, 0) >= 2:
                return Vote("agreed", sha256, tuple(by_hash[sha256]))
            if not by_hash or sha256 in by_hash:
                return Vote("single", None, tuple(by_hash.get(sha256, ())))
        settled = [h for h in by_hash if h in pinned]
        if (len(leaders) != 1 or top < 2) and len(settled) == 1:
            leaders, top = settled, 2
        if len(leaders) != 1 or top < 2:
            return Vote("split", None, tuple(by_hash.get(sha256, ())),
                        tuple(m for h, ms in by_hash.items() if h != sha256 for m in ms))
        winner = leaders[0]
    backers = tuple(by_hash[winner])
    dissent = tuple(m for h, ms in by_hash.items() if h != winner for m in ms)
    return Vote("agreed" if winner == sha256 else "outvoted", winner, backers, dissent)
