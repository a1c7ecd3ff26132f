"""Whether the CPUs this process may run on are saturated: what a pool asks before it grows.

A child busy with a request that will end in a moment is as good as an idle
one *when those CPUs are all busy*: another process could not run sooner, it
would only take turns with the children there are (a fast app under full
load).  When they have idle time, the children are waiting on something else
(a database, a disk, a remote service) and another child does help, however
short each request is.  Linux's ``/proc/stat`` says which, per CPU; the CPUs
counted are the process's affinity (``taskset``, a cpuset).  Elsewhere, or
when it cannot be read, the answer is "not saturated", so a pool grows by
Net::Server's rule alone.  (A container's CPU quota is not seen: its CPUs
may look idle while it is throttled, and the pool then grows by that rule.)
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Collection, Optional, Tuple

__all__ = ["CPUIdle", "SATURATED", "WINDOW", "read_stat"]

SATURATED = 0.1  # the CPUs were idle less than this share of the time: saturated
WINDOW = 0.25  # seconds: the shortest span measured (a few clock ticks say nothing)


def read_stat(path: str = "/proc/stat", cpus: Optional[Collection[int]] = None) -> Optional[Tuple[int, int]]:
    """``(idle, total)`` CPU time in clock ticks of ``cpus`` (all of them when None), or None.

    Idle counts ``idle`` and ``iowait`` (a CPU waiting for a disk could run
    something else); total is the first eight fields (``guest`` time is
    already part of ``user``).
    """
    wanted = None if cpus is None else {f"cpu{cpu}".encode() for cpu in cpus}
    idle = total = 0
    found = False
    try:
        with open(path, "rb") as stat:
            for line in stat:
                fields = line.split()
                if not fields or not fields[0].startswith(b"cpu"):
                    break  # the cpu lines come first
                if (fields[0] == b"cpu") != (wanted is None) or (wanted is not None and fields[0] not in wanted):
                    continue
                values = [int(value) for value in fields[1:9]]
                if len(values) < 4:
                    return None
                idle += values[3] + (values[4] if len(values) > 4 else 0)
                total += sum(values)
                found = True
    except (OSError, ValueError):
        return None
    return (idle, total) if found else None


def _own_cpus() -> Optional[Collection[int]]:
    """The CPUs this process may use, or None for all of them (the total line is then enough)."""
    try:
        mine = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    return None if len(mine) >= (os.cpu_count() or 0) else mine


class CPUIdle:
    """The idle share of this process's CPUs between one look and the next."""

    def __init__(self, path: str = "/proc/stat", cpus: Optional[Collection[int]] = None,
                 window: float = WINDOW):
        self.path = path
        self.cpus = _own_cpus() if cpus is None else cpus
        self.window = window
        self._last = read_stat(path, self.cpus)
        self._at = time.monotonic()
        self._saturated = False

    def saturated(self) -> bool:
        """Whether the CPUs were idle less than ``SATURATED`` of the time since the last look; the
        last verdict while less than ``window`` seconds have passed (the pool asks after every
        child's exit as well as every ``check_for_spawn``)."""
        now = time.monotonic()
        if now - self._at < self.window:
            return self._saturated
        stat = read_stat(self.path, self.cpus)
        last, self._last, self._at = self._last, stat, now
        if stat is None or last is None or stat[1] <= last[1]:
            self._saturated = False
        else:
            self._saturated = (stat[0] - last[0]) / (stat[1] - last[1]) < SATURATED
        return self._saturated
