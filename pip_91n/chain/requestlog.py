"""``PIP_91N_LOG``: one line per mirror attempt (mirror, status, bytes, time, failover reason).

``-`` writes to stderr, anything else is a file path appended to. URLs are redacted.
Never raises: a log that cannot be written is turned off, with one stderr line that names
the setting (``where``) and why.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from pip_91n._startup import report
from pip_91n._urls import redact

__all__ = ["RequestLog"]


class RequestLog:
    """Where the lines go (``target``), and the setting that named it (``where``: the
    variable, or the config file and line)."""

    def __init__(self, target: str | None, where: str = "PIP_91N_LOG") -> None:
        self.target = target
        self.where = where
        self._lock = threading.Lock()
        self._file: TextIO | None = None

    def _stream(self) -> TextIO | None:
        if not self.target:
            return None
        if self.target == "-":
            return sys.stderr
        if self._file is None:
            self._file = open(self.target, "a", encoding="utf-8")  # noqa: SIM115
        return self._file

    def write(
        self, mirror: str, url: str, status: int | None, nbytes: int, seconds: float,
        reason: str = "",
    ) -> None:
        if not self.target:
            return
        line = (
            f"pip-91n {time.strftime('%H:%M:%S')} {mirror} {status if status else '-'} "
            f"{nbytes}B {seconds * 1000:.0f}ms {redact(url)}"
            + (f" failover: {reason}" if reason else "")
        )
        try:
            with self._lock:
                stream = self._stream()
                if stream is not None:
                    stream.write(line + "\n")
                    stream.flush()
        except OSError as exc:
            target, self.target = self.target, None
            report(f"{self.where}: cannot write the request log {target} "
                   f"({exc.strerror or exc}); the log is off for this run (fix the path, or "
                   "unset PIP_91N_LOG)")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
