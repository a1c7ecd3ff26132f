"""Whether the machine's CPUs are saturated: what a pool asks before it grows for short requests.

A child busy with a request that will end in a moment is as good as an idle
one *when the CPUs are all busy*: another process could not run sooner, it
would only take turns with the children there are (a fast app under full
load).  When the CPUs have idle time, the children are waiting on something
else (a database, a disk, a remote service) and another child does help,
however short each request is.  Linux's ``/proc/stat`` says which, for the
whole machine; elsewhere, or when it cannot be read, the answer is "not
saturated", so a pool grows by Net::Server's rule alone.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

__all__ = ["CPUIdle", "SATURATED"]

SATURATED = 0.1  # the CPUs were idle less than this share of the time: saturated


def read_stat(path: str = "/proc/stat") -> Optional[Tuple[int, int]]:
    """``(idle, total)`` CPU time of the machine in clock ticks, or None if unreadable.

    Idle counts ``idle`` and ``iowait`` (a CPU waiting for a disk could run
    something else); total is the first eight fields (``guest`` time is
    already part of ``user``).
    """
    try:
        with open(path, "rb") as stat:
            fields = stat.readline().split()
        if fields[:1] != [b"cpu"]:
            return None
        values = [int(value) for value in fields[1:9]]
    except (OSError, ValueError):
        return None
    return values[3] + (values[4] if len(values) > 4 else 0), sum(values)


class CPUIdle:
    """The machine's idle CPU share between one look and the next."""

    def __init__(self, path: str = "/proc/stat"):
        self.path = path
        self._last = read_stat(path)
        self._saturated = False

    def saturated(self) -> bool:
        """Whether the CPUs were idle less than ``SATURATED`` of the time since the last call (the
        verdict of the previous call when less than a clock tick has passed)."""
        now = read_stat(self.path)
        last = self._last
        if now is None or last is None:
            self._last = now
            return False
        elapsed = now[1] - last[1]
        if elapsed <= 0:
            return self._saturated
        self._last = now
        self._saturated = (now[0] - last[0]) / elapsed < SATURATED
        return self._saturated
