"""``PIP_91N_LOG``: one line per mirror attempt (mirror, status, bytes, time, failover reason).

``-`` writes to stderr, anything else is a file path appended to. URLs are redacted.
Never raises: a log that cannot be written is dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from pip_91n._urls import redact

__all__ = ["RequestLog"]


class RequestLog:
    def __init__(self, target: str | None) -> None:
        self.target = target
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
        except OSError:
            self.target = None

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
