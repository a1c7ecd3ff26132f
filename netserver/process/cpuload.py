"""The CPUs this process may use: how many (HTTP's pool size), and whether they are saturated
(what PreFork asks before it grows for brief requests).

A child busy with a request that will end in a moment is as good as an idle
one *when those CPUs are all busy*: another process could not run sooner, it
would only take turns with the children there are (a fast app under full
load).  When they have idle time, the children are waiting on something else
(a database, a disk, a remote service) and another child does help, however
short each request is.  Linux's ``/proc/stat`` says which, per CPU; the CPUs
counted are the process's affinity (``taskset``, a cpuset).  Inside a
container with a CPU quota (``docker run --cpus``, a Kubernetes CPU limit,
systemd's ``CPUQuota=``) the machine's CPUs may idle while the container is
held to its share, so the cgroup's quota counts too (process/cgroup.py):
90% of it used is saturated.  Elsewhere, or when neither can be read, the
answer is "not saturated", so a pool grows by Net::Server's rule alone.
"""

from __future__ import annotations

import os
import time

from .cgroup import MOUNTINFO, PROC_CGROUP, CgroupQuota, cgroup_quota

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Collection, Optional, Tuple

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


def cgroup_cpu_quota(proc: str = PROC_CGROUP, mountinfo: str = MOUNTINFO) -> int:
    """The CPU quota of this process's cgroup (or an ancestor's) in CPUs, rounded up; 0 when there
    is none or it cannot be read (process/cgroup.py)."""
    quota = cgroup_quota(proc, mountinfo)
    return -(-quota.micros // quota.period) if quota is not None else 0


class CPUIdle:
    """The idle share of this process's CPUs between one look and the next, and its cgroup's use
    of a CPU quota over the same time."""

    def __init__(self, path: str = "/proc/stat", cpus: Optional[Collection[int]] = None,
                 window: float = WINDOW, quota: Optional[CgroupQuota] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.path = path
        if cpus is None:
            mine = affinity()
            cpus = None if mine is None or len(mine) >= (os.cpu_count() or 0) else mine  # all: the total line
        self.cpus = cpus
        self.window = window
        self.quota = quota  # the cgroup's (cgroup_quota()), when it has one
        self._clock = clock
        self._last = read_stat(path, self.cpus)
        self._used = self.quota.usage() if self.quota is not None else None
        self._at = clock()
        self._saturated = False

    def saturated(self) -> bool:
        """Whether the CPUs were idle less than ``SATURATED`` of the time since the last look, or
        the cgroup used more than ``1 - SATURATED`` of its quota; the last verdict while less than
        ``window`` seconds have passed (the pool asks after every child's exit as well as every
        ``check_for_spawn``)."""
        now = self._clock()
        elapsed = now - self._at
        if elapsed < self.window:
            return self._saturated
        stat = read_stat(self.path, self.cpus)
        last, self._last, self._at = self._last, stat, now
        saturated = (stat is not None and last is not None and stat[1] > last[1]
                     and (stat[0] - last[0]) / (stat[1] - last[1]) < SATURATED)
        if self.quota is not None:
            used, self._used = self._used, self.quota.usage()
            if not saturated and used is not None and self._used is not None and elapsed > 0:
                saturated = (self._used - used) / (elapsed * self.quota.cpus) > 1 - SATURATED
        self._saturated = saturated
        return saturated
