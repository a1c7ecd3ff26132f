"""The CPUs this process may use: how many (HTTP's pool size), and whether they are saturated
(what PreFork asks before it grows for brief requests).

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

__all__ = ["CPUIdle", "SATURATED", "WINDOW", "affinity", "cgroup_cpu_quota", "read_stat", "usable_cpus"]

SATURATED = 0.1  # the CPUs were idle less than this share of the time: saturated
WINDOW = 0.25  # seconds: the shortest span measured (a few clock ticks say nothing)


def read_stat(path: str = "/proc/stat", cpus: Optional[Collection[int]] = None) -> Optional[Tuple[int, int]]:
    """``(idle, total)`` CPU time in clock ticks of ``cpus`` (all of them when None), or None.

    Idle counts ``idle`` and ``iowait`` (a CPU waiting for a disk could run
    something else); total is the first eight fields (``guest`` time is
    already part of ``user``).
    """
    wanted = {b"cpu"} if cpus is None else {f"cpu{cpu}".encode() for cpu in cpus}  # the total line, or some CPUs'
    idle = total = 0
    found = False
    try:
        with open(path, "rb") as stat:
            for line in stat:
                fields = line.split()
                if not fields or not fields[0].startswith(b"cpu"):
                    break  # the cpu lines come first
                if fields[0] not in wanted:
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


def affinity() -> Optional[Collection[int]]:
    """The CPUs this process may run on (``taskset``, a cpuset), or None where it cannot be asked."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    """How many CPUs this process may use: its affinity, or fewer when its cgroup's CPU quota says
    so (a container's ``--cpus``).  What HTTP's pool of event children is sized by."""
    mine = affinity()
    count = len(mine) if mine is not None else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota else count


def cgroup_cpu_quota(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int:
    """The CPU quota of this process's cgroup, rounded up (cgroup v2's ``cpu.max``, else v1's CFS
    quota); 0 when there is none or it cannot be read."""
    try:
        with open(proc) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return 0
    for line in lines:
        _, controllers, path = line.split(":", 2)
        try:
            if controllers == "":  # v2
                with open(f"{root}{path}/cpu.max") as fh:
                    quota, period = fh.read().split()
            elif "cpu" in controllers.split(","):  # v1
                base = f"{root}/{controllers}{path}"
                with open(f"{base}/cpu.cfs_quota_us") as fh, open(f"{base}/cpu.cfs_period_us") as gh:
                    quota, period = fh.read().strip(), gh.read().strip()
            else:
                continue
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            return -(-int(quota) // int(period))  # rounded up
    return 0


class CPUIdle:
    """The idle share of this process's CPUs between one look and the next."""

    def __init__(self, path: str = "/proc/stat", cpus: Optional[Collection[int]] = None,
                 window: float = WINDOW):
        self.path = path
        if cpus is None:
            mine = affinity()
            cpus = None if mine is None or len(mine) >= (os.cpu_count() or 0) else mine  # all: the total line
        self.cpus = cpus
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
