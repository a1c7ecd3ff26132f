"""Reading processes from /proc, shared by the process-level test suites."""

from __future__ import annotations

from typing import List, Optional


def stat_fields(pid: int) -> Optional[List[str]]:
    """The fields of /proc/PID/stat, numbered as in proc(5) from 1 (index 0 is unused); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    head, _, tail = text.rpartition(")")
    pid_field, _, comm = head.partition(" (")
    return ["", pid_field, comm] + tail.split()


def children(pid: int) -> List[int]:
    """Every child of ``pid`` (zombies included), as the kernel lists them."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def live_children(pid: int) -> List[int]:
    """Children of ``pid`` that are not zombies."""
    alive = []
    for child in children(pid):
        fields = stat_fields(child)
        if fields is not None and fields[3] != "Z":
            alive.append(child)
    return alive
