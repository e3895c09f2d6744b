"""The fast path for small files: one GET into memory, verified, nothing on disk.

Most files pip installs (and ``pip-91n serve`` hands out) are small wheels whose size a page
named. Starting the download
engine for each (threads, a file lock, a partial in the cache dir) would cost more than the
request itself, so ``fetch_small`` tries one streamed GET from the first candidate in the
calling thread first. It hands back the bytes only once size and sha256 matched; whatever
goes wrong, it returns None and the engine takes over, reusing, resuming and failing over as
usual.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

from pip_91n.downloads.api import check_request, filename_of, has_copy, keep_partial
from pip_91n.downloads.files import sha256_mismatch
from pip_91n.downloads.options import DownloadOptions
from pip_91n.downloads.resume import judge
from pip_91n.net.wire import Wire, WireError, WireResponse, describe, follow

if TYPE_CHECKING:
    from pip_91n.downloads.state import OnAttempt

__all__ = ["fetch_small"]

log = logging.getLogger("pip_91n")


def fetch_small(
    url: str,
    sha256: str,
    size: int,
    *,
    wire: Wire,
    filename: str | None = None,
    options: DownloadOptions | None = None,
    on_attempt: OnAttempt | None = None,
) -> bytes | None:
    """The bytes of the file at ``url`` (``size`` bytes, ``sha256``) through ``wire``; they
    are not kept in the cache (pip's own HTTP cache keeps what pip fetched).

    Returns None when the fast path does not apply (``size`` at or above the segment
    threshold, a partial or verified copy of the file in the cache) or the GET failed
    (reported through ``on_attempt``). A body cut short becomes a partial the engine resumes
    (when no other process holds the file's lock); wrong bytes are dropped.
    """
    urls, sha = check_request(url, sha256)
    opts = options if options is not None else DownloadOptions.from_env()
    if size < 0 or size >= opts.segment_threshold or has_copy(sha, opts):
        return None
    name = filename or filename_of(urls[0])
    t0 = time.monotonic()
    first_byte, digest = 0.0, hashlib.sha256()
    body = bytearray()
    reason: str | None = None
    validator = ""
    headers = [*{**opts.headers, "Accept-Encoding": "identity"}.items()]
    resp: WireResponse | None = None
    try:
        resp, _ = follow(wire, urls[0], headers, opts.timeout)
        first_byte = time.monotonic() - t0
        verdict = judge(resp.status, resp.headers, start=0, size=size)
        if verdict.action != "accept":
            reason = verdict.reason or f"HTTP {resp.status}"
        else:
            validator = resp.headers.get("etag") or resp.headers.get("last-modified", "")
            for chunk in resp:
                body += chunk
                if len(body) > size:
                    break
                digest.update(chunk)
    except (WireError, OSError) as exc:
        reason = describe(exc, opts.timeout, reading=resp is not None)
        if resp is not None:
            reason = f"body cut short after {len(body)} bytes: {reason}"
    finally:
        if resp is not None:
            resp.close()
    n = len(body)
    if reason is None and n != size:
        reason = f"serves {n}{'+' if n > size else ''} bytes, expected {size}"
    if reason is None and digest.hexdigest() != sha:
        reason = sha256_mismatch(digest.hexdigest(), sha)
        log.warning("pip-91n: %s: %s; fetching it again", name, reason)  # as the engine says
    if reason is not None:
        if 0 < n < size and not reason.startswith("serves"):  # cut short: resumable
            keep_partial(sha, bytes(body), filename=name, size=size, url=urls[0],
                         validator=validator, options=opts)
        if on_attempt is not None:
            on_attempt(urls[0], reason, time.monotonic() - t0)
        return None
    if on_attempt is not None:
        on_attempt(urls[0], None, first_byte)
    return bytes(body)
