"""py-spy's raw output (``--format raw``: one folded stack and a count per line) as a table.

Shared by ``run_echo.py --profile`` and ``run_http.py --profile``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple


def fold(raw_path: str) -> Tuple[Dict[str, int], Dict[str, int], int]:
    """Samples by function: own (the innermost frame), inclusive (anywhere on the stack), and the total."""
    own: Dict[str, int] = {}
    inclusive: Dict[str, int] = {}
    total = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
    return own, inclusive, total


def table(raw_path: str, top: int, name: Callable[[str], str] = str) -> Tuple[List[str], int]:
    """Markdown rows (header first) of the ``top`` functions by own time, and the sample count."""
    own, inclusive, total = fold(raw_path)
    rows = ["| function | own | inclusive |", "| --- | ---: | ---: |"]
    for frame, n in sorted(own.items(), key=lambda item: -item[1])[:top]:
        rows.append(f"| `{name(frame)}` | {n / max(total, 1):.1%} | {inclusive[frame] / max(total, 1):.1%} |")
    return rows, total
