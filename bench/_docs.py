"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(section: str, body: str, doc: Path = BENCHMARKS_MD) -> None:
    """Replace the ``section`` heading's text (up to the next ``## ``) with ``body``, or append."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{section}\n\n{body.strip()}\n"
    if section in text:
        start = text.index(section)
        nxt = text.find("\n## ", start + len(section))
        text = text[:start] + block + (text[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text)
