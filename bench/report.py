"""Shared by the benchmarks: replace one script's generated section of BENCHMARKS.md between its markers."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def write_section(section: str, start: str, end: str, intro: str) -> None:
    """Replace the text from `start` to `end` with `section` (which carries both markers), or append it."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else intro
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text)
    print(f"wrote {BENCHMARKS_MD.name}", flush=True)
