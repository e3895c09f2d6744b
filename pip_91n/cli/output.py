"""Output for the command line: rich on a terminal, plain text otherwise, JSON on request.

Every command builds plain data (rows of strings, dicts) and hands it to ``Output``, which
decides how it looks. rich is imported only when a terminal will see it, so piping
``pip-91n status`` into a file or CI log gives stable, uncoloured text. rich is optional
(``pip install 'pip-91n[cli]'``): pip-91n lives in every environment that runs pip, so it
keeps its own dependencies few; without rich a terminal gets the plain text too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_IO", "EXIT_OK", "EXIT_USAGE",
           "Output", "UsageError"]

#: Exit codes (documented in docs/cli.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a check found something wrong (doctor, verify, probe with no answer)
EXIT_USAGE = 2  # bad arguments or an invalid value given on the command line
EXIT_CONFIG = 3  # the existing configuration (environment or config file) is invalid
EXIT_IO = 4  # a file or directory could not be read or written
EXIT_INTERRUPTED = 130

_STYLES = {"ok": "green", "info": "cyan", "warn": "yellow", "error": "bold red", "dim": "dim"}


class UsageError(Exception):
    """A command-line mistake: printed as one message, exit code 2."""


class Output:
    """Where and how a command writes. ``rich`` is true when stdout is a terminal
    (``--color always`` forces it, ``--color never`` or ``NO_COLOR`` turns colour off)."""

    def __init__(self, *, json_mode: bool = False, color: str = "auto",
                 stream: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.json_mode = json_mode
        tty = _isatty(self.stream)
        self.rich = not json_mode and (color == "always" or (color == "auto" and tty)) \
            and _rich_installed()
        self.color = color != "never" and "NO_COLOR" not in os.environ
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.stream, force_terminal=self.rich, no_color=not self.color,
                highlight=False, soft_wrap=False,
            )
        return self._console

    # -- plain lines -----------------------------------------------------------------------
    def line(self, text: str = "", style: str | None = None) -> None:
        if self.json_mode:
            return
        if self.rich:
            from rich.text import Text

            self.console.print(Text(text, style=_STYLES.get(style or "", style or "")))
        else:
            print(text, file=self.stream)

    def heading(self, text: str) -> None:
        if self.rich:
            self.line(text, "bold")
        else:
            self.line(text)

    def note(self, text: str) -> None:
        """A hint for people, on stderr, so stdout stays parseable."""
        print(f"pip-91n: {text}", file=self.err)

    def error(self, text: str) -> None:
        first, _, rest = text.partition("\n")
        print(f"pip-91n: error: {first}" + (f"\n{rest}" if rest else ""), file=self.err)

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, sort_keys=False, default=str), file=self.stream)

    # -- tables ----------------------------------------------------------------------------
    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
              title: str | None = None, styles: Sequence[str | None] | None = None) -> None:
        """A table; ``styles`` gives one style name per row (ok, warn, error, dim or None)."""
        if self.json_mode:
            return
        if self.rich:
            self.console.print(self.rich_table(columns, rows, title=title, styles=styles))
            return
        if title:
            print(title, file=self.stream)
        widths = [len(c) for c in columns]
        for row in rows:
            widths = [max(w, len(str(v))) for w, v in zip(widths, row)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        if any(columns):
            print(fmt.format(*columns).rstrip(), file=self.stream)
        for row in rows:
            print(fmt.format(*[str(v) for v in row]).rstrip(), file=self.stream)

    def rich_table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                   title: str | None = None, styles: Sequence[str | None] | None = None) -> Any:
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
                      show_header=any(columns))
        for c in columns:
            table.add_column(c, overflow="fold")
        for i, row in enumerate(rows):
            style = styles[i] if styles is not None and i < len(styles) else None
            table.add_row(*[str(v) for v in row], style=_STYLES.get(style or ""))
        return table

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner on a terminal; nothing otherwise."""
        if not self.rich:
            yield
            return
        with self.console.status(text):
            yield


def _rich_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
