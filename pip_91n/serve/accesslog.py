"""The server's request log: one line per client request, in the ``PIP_91N_LOG`` layout
(``pip-91n HH:MM:SS <who> <status> <bytes>B <ms>ms <what>``) with the client's address, to
the same place as the chain's own lines (stderr unless ``PIP_91N_LOG`` names a file).
A client's path is shown escaped and cut short: it cannot forge lines in the log.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["AccessLog", "printable"]

_MAX_PATH = 300


def printable(text: str, limit: int = _MAX_PATH, *, spaces: bool = False) -> str:
    """``text`` with anything but printable ASCII escaped (spaces too, unless ``spaces``),
    at most ``limit`` characters: safe in a log line and in a header value."""
    shown = text.encode("unicode_escape").decode("ascii")
    if not spaces:
        shown = shown.replace(" ", "%20")
    return shown if len(shown) <= limit else shown[:limit] + "..."


class AccessLog:
    """Writes request lines to ``target`` (``-`` or None: stderr; else a file path)."""

    def __init__(self, target: str | None) -> None:
        self._lock = threading.Lock()
        self._file: TextIO = sys.stderr
        if target and target != "-":
            self._file = open(target, "a", encoding="utf-8")  # noqa: SIM115

    def request(self, client: str, method: str, path: str, status: int, nbytes: int,
                seconds: float, note: str = "") -> None:
        line = (f"pip-91n {time.strftime('%H:%M:%S')} serve {status} {nbytes}B "
                f"{seconds * 1000:.0f}ms {method} {printable(path)} client {client}"
                + (f" {note}" if note else ""))
        self.line(line)

    def line(self, text: str) -> None:
        try:
            with self._lock:
                self._file.write(text + "\n")
                self._file.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._file is not sys.stderr:
            self._file.close()
