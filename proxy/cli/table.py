"""Plain-text tables for the commands that print rows to a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_table(rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """Aligned columns: the first ``left`` to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
