"""``netserver status``: the live pool of a running PreFork/PreForkSimple server.

Reads the file-backed scoreboard (``scoreboard_file``, or the one next to
``pid_file``) without disturbing the server: each child's pid, state,
requests served, current or last client and age, and the totals — Apache's
server-status, for any protocol.
"""

from __future__ import annotations

import os
import time

from .process.scoreboard import BUSY, IDLE, STATE_NAMES, read_scoreboard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["status_text", "scoreboard_for", "report", "RUNNING", "NOT_RUNNING", "UNREADABLE"]

#: Exit statuses of ``netserver status``, as ``systemctl status`` has them.
RUNNING, UNREADABLE, NOT_RUNNING = 0, 1, 3


def scoreboard_for(pid_file: Optional[str], scoreboard_file: Optional[str]) -> str:
    if scoreboard_file:
        return scoreboard_file
    if pid_file:
        return pid_file + ".scoreboard"
    raise ValueError("give --pid_file or --scoreboard_file")


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def status_text(path: str, now: Optional[float] = None) -> str:
    """The status report for the scoreboard at ``path`` (ValueError/OSError if unreadable)."""
    header, slots = read_scoreboard(path)
    now = time.time() if now is None else now
    alive = _alive(header.parent)
    busy = sum(1 for s in slots if s.state == BUSY)
    idle = sum(1 for s in slots if s.state == IDLE)
    served = header.retired_requests + sum(s.requests for s in slots)
    lines = [
        f"netserver: parent {header.parent} ({'running' if alive else 'not running'}), "
        f"up {_duration(now - header.started)}, {len(slots)} children ({busy} busy, {idle} idle), "
        f"{served} requests served",
        f"{'pid':>8}  {'state':<9}{'requests':>9}  {'age':>8}  client",
    ]
    for slot in sorted(slots, key=lambda s: s.pid):
        lines.append(f"{slot.pid:>8}  {STATE_NAMES.get(slot.state, '?'):<9}{slot.requests:>9}  "
                     f"{_duration(now - slot.started):>8}  {slot.client or '-'}")
    return "\n".join(lines) + "\n"


def report(pid_file: Optional[str], scoreboard_file: Optional[str],
           now: Optional[float] = None) -> "tuple[int, str]":
    """``(exit status, text)`` for ``netserver status``: the pool, or why there is none to show.

    A server that is not running (no scoreboard, or one whose parent is
    gone) is exit 3 and ``not running``; a running server that keeps no
    scoreboard (not PreFork/PreForkSimple) is exit 0 with a line saying so.
    """
    path = scoreboard_for(pid_file, scoreboard_file)
    pid = _pid_from(pid_file)
    try:
        header, _ = read_scoreboard(path)
    except FileNotFoundError:
        if pid is not None and _alive(pid):
            return RUNNING, (f"netserver: running as pid {pid} (no scoreboard at {path}: only PreFork and "
                             f"PreForkSimple keep one)\n")
        return NOT_RUNNING, f"netserver: not running (no scoreboard at {path})\n"
    if not _alive(header.parent):
        return NOT_RUNNING, f"netserver: not running (pid {header.parent} of {path} is gone)\n"
    return RUNNING, status_text(path, now)


def _pid_from(pid_file: Optional[str]) -> Optional[int]:
    if not pid_file:
        return None
    try:
        with open(pid_file) as f:
            text = f.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

