"""``DownloadOptions``: how downloads behave, from the ``PIP_91N_*`` variables or a config.

The variables are parsed by ``pip_91n.settings.values.parse_setting``, the same parser the
pip hook, ``pip-91n status`` and ``doctor`` use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pip_91n.downloads.partials import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES
from pip_91n.settings.values import (
    DEFAULT_HEDGE_DELAY,
    DEFAULT_SEGMENT_THRESHOLD,
    DEFAULT_TIMEOUT,
    KEYS,
    Source,
    parse_setting,
)

if TYPE_CHECKING:
    from pip_91n.settings.config import MirrorConfig

__all__ = ["DownloadOptions"]

#: The settings a download reads from the environment alone (``from_env``).
_FROM_ENV = ("cache_dir", "timeout", "hedge_delay", "segment_threshold")


@dataclass(frozen=True)
class DownloadOptions:
    """How downloads behave. ``DownloadOptions.from_env()`` reads the ``PIP_91N_*`` variables.

    - ``cache_dir``: where partials live (``<cache_dir>/partials``); None: ``PIP_91N_CACHE_DIR``
      or the platform cache dir.
    - ``segment_threshold``: files this large or larger are fetched in segments from up to
      ``max_connections`` candidates at once (``PIP_91N_SEGMENT_THRESHOLD``, default 32 MiB).
    - ``timeout``: seconds to connect, to get the first byte, and between two reads
      (``PIP_91N_TIMEOUT``); a source that stalls longer loses its range to the others.
    - ``hedge_delay``: head start of a slow source before the next one is raced, for callers
      that race sources for one answer (``PIP_91N_HEDGE_DELAY``; oss_runtime's hub listing).
    - ``retries``: a source is dropped after this many failures in a row without progress.
    - ``lock_stall``: seconds to wait for another process's download that makes no progress.
    - ``max_age`` / ``max_bytes``: limits for partials, applied before each download.
    - ``headers``: sent with every request (to every candidate: no secrets here).
    - ``keep_partials``: keep an unfinished download in the cache dir for the next run to
      resume (off for pip's ``--no-cache-dir``: then nothing at all stays behind).
    """

    cache_dir: Path | None = None
    segment_threshold: int = DEFAULT_SEGMENT_THRESHOLD
    max_connections: int = 4
    min_split: int = 1024**2
    timeout: float = DEFAULT_TIMEOUT
    hedge_delay: float = DEFAULT_HEDGE_DELAY
    retries: int = 3
    lock_stall: float = 120.0
    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES
    headers: Mapping[str, str] = field(default_factory=dict)
    keep_partials: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: object) -> DownloadOptions:
        """Defaults, then ``PIP_91N_CACHE_DIR``, ``PIP_91N_TIMEOUT``, ``PIP_91N_HEDGE_DELAY``
        and ``PIP_91N_SEGMENT_THRESHOLD`` from ``environ`` (default ``os.environ``), then
        ``overrides``. A bad value raises ``ConfigError`` naming the variable."""
        env = os.environ if environ is None else environ
        found: dict[str, object] = {}
        for key in _FROM_ENV:
            var = KEYS[key]
            raw = env.get(var, "").strip()
            if raw:
                found[key] = parse_setting(key, raw, Source("env", var))
        return replace(cls(), **{**found, **overrides})  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: MirrorConfig, **overrides: object) -> DownloadOptions:
        """Options for the mirror chain's resolved settings."""
        return replace(cls(), cache_dir=config.cache_dir, timeout=config.timeout,
                       hedge_delay=config.hedge_delay,
                       segment_threshold=config.segment_threshold,
                       **overrides)  # type: ignore[arg-type]

    def bounded(self) -> DownloadOptions:
        """These options with each number in the range the engine works with."""
        return replace(self, max_connections=max(1, self.max_connections),
                       min_split=max(64 * 1024, self.min_split), retries=max(1, self.retries),
                       headers=dict(self.headers))
