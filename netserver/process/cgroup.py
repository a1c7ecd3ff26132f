"""This process's CPU quota, from its cgroup (a container's ``--cpus``, a Kubernetes CPU limit,
systemd's ``CPUQuota=``): how many CPUs it may use and how much CPU time it has used.

Where the cgroup's files are is asked of the kernel, not assumed:
``/proc/self/cgroup`` names the process's cgroup in each hierarchy and
``/proc/self/mountinfo`` where each hierarchy is mounted and which part of
it (inside a container, the mount is the container's own cgroup while
``/proc/self/cgroup`` may still show the host's path).  The quota may be
set on the cgroup or on any ancestor (a pod, a slice): the smallest one
found walking up to the mount counts, with the CPU time of the cgroup that
has it.  cgroup v2 (``cpu.max``, ``cpu.stat``) and v1 (``cpu.cfs_quota_us``
and ``cpu.cfs_period_us``; time from ``cpuacct.usage`` at the same path).
Anything unreadable or malformed means "no quota".  Tested in
tests/unit/test_cgroup.py (written trees) and
tests/integration/test_cgroup_quota.py (a real v1 cgroup).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import FrozenSet, Iterator, List, Optional, Tuple

__all__ = ["CgroupQuota", "cgroup_quota"]

PROC_CGROUP = "/proc/self/cgroup"
MOUNTINFO = "/proc/self/mountinfo"


class CgroupQuota:
    """A cgroup's CPU quota (``micros`` of CPU time per ``period`` µs) and where its CPU time is
    counted (``usage_file``: v2's ``cpu.stat``, in µs; v1's ``cpuacct.usage``, in ns; or None)."""

    __slots__ = ("micros", "period", "usage_file")

    def __init__(self, micros: int, period: int, usage_file: Optional[str]):
        self.micros, self.period, self.usage_file = micros, period, usage_file

    @property
    def cpus(self) -> float:
        return self.micros / self.period

    def usage(self) -> Optional[float]:
        """The cgroup's CPU time so far, in seconds (None when it cannot be read)."""
        if self.usage_file is None:
            return None
        try:
            with open(self.usage_file, "rb") as fh:
                text = fh.read()
            if self.usage_file.endswith("cpu.stat"):  # v2: "usage_usec N" among other lines
                for line in text.splitlines():
                    if line.startswith(b"usage_usec "):
                        return int(line.split()[1]) / 1e6
                return None
            return int(text) / 1e9  # v1 cpuacct.usage: ns
        except (OSError, ValueError, IndexError):
            return None


def cgroup_quota(proc: str = PROC_CGROUP, mountinfo: str = MOUNTINFO) -> Optional[CgroupQuota]:
    """The smallest CPU quota on this process's cgroup or its ancestors, v2 or v1, or None (see the
    module docstring)."""
    memberships, mounts = _memberships(proc), _mounts(mountinfo)
    found = []
    for controllers, path in memberships:
        if not controllers:  # v2's unified hierarchy
            where = _locate(mounts, None, path)
            if where is not None:
                found += [_v2_quota(level) for level in _levels(*where)]
        elif "cpu" in controllers:
            where = _locate(mounts, controllers, path)
            acct = next((_locate(mounts, other, other_path) for other, other_path in memberships
                         if "cpuacct" in other), None)
            if where is not None:
                # cpuacct's directories level by level from the bottom (the same ones when mounted together)
                accounts = list(_levels(*acct)) if acct is not None else []
                found += [_v1_quota(level, accounts[depth] if depth < len(accounts) else None)
                          for depth, level in enumerate(_levels(*where))]
    quotas = [quota for quota in found if quota is not None]
    return min(quotas, key=lambda quota: quota.cpus) if quotas else None


def _memberships(proc: str) -> List[Tuple[FrozenSet[str], str]]:
    """``/proc/self/cgroup``: (controllers, path) per hierarchy; v2's unified one has none."""
    try:
        with open(proc, "rb") as fh:
            text = os.fsdecode(fh.read())
    except OSError:
        return []
    fields = [line.split(":", 2) for line in text.splitlines()]
    return [(frozenset(filter(None, field[1].split(","))), field[2]) for field in fields if len(field) == 3]


def _unescape(path: str) -> str:
    """mountinfo's octal escapes of space, tab, newline and backslash."""
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _mounts(mountinfo: str) -> List[Tuple[Optional[FrozenSet[str]], str, str]]:
    """``/proc/self/mountinfo``'s cgroup mounts: (mount options, or None for cgroup2; the root
    within the hierarchy; the mount point)."""
    try:
        with open(mountinfo, "rb") as fh:
            text = os.fsdecode(fh.read())
    except OSError:
        return []
    mounts: List[Tuple[Optional[FrozenSet[str]], str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        dash = fields.index("-", 6) if "-" in fields[6:] else -1
        if dash < 0 or len(fields) < dash + 4 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(fields[dash + 3].split(",")) if fields[dash + 1] == "cgroup" else None
        mounts.append((options, _unescape(fields[3]), _unescape(fields[4])))
    return mounts


def _locate(mounts: List[Tuple[Optional[FrozenSet[str]], str, str]], controllers: Optional[FrozenSet[str]],
            path: str) -> Optional[Tuple[str, str]]:
    """(mount point, the cgroup's path below it) for the hierarchy of ``controllers`` (v2: None).

    Of its visible mounts (a later mount on the same point covers an earlier one), the one whose
    root holds the path, the deepest root first; a cgroup outside every mounted part (a
    container's own mount, where /proc/self/cgroup may show the host's path; a ``..`` in a
    namespaced path) is the last mount's point itself."""
    mine = [(root.rstrip("/"), point) for options, root, point in mounts
            if (options is None if controllers is None else options is not None and controllers <= options)]
    visible = [(root, point) for index, (root, point) in enumerate(mine)
               if not any(later == point for _, later in mine[index + 1:])]
    if not visible:
        return None
    if ".." not in path.split("/"):
        for root, point in sorted(visible, key=lambda mount: -len(mount[0])):
            if path == root or path.startswith(root + "/"):
                return point, path[len(root):].strip("/")
    return visible[-1][1], ""


def _levels(point: str, relative: str) -> Iterator[str]:
    """The cgroup's directory, then each ancestor's up to the mount point."""
    parts = [part for part in relative.split("/") if part]
    for depth in range(len(parts), -1, -1):
        yield os.path.join(point, *parts[:depth])


def _v2_quota(level: str) -> Optional[CgroupQuota]:
    try:
        with open(os.path.join(level, "cpu.max")) as fh:
            quota, period = fh.read().split()
        return _quota(quota, period, os.path.join(level, "cpu.stat"))
    except (OSError, ValueError):
        return None


def _v1_quota(level: str, account: Optional[str]) -> Optional[CgroupQuota]:
    try:
        with open(os.path.join(level, "cpu.cfs_quota_us")) as fh, \
                open(os.path.join(level, "cpu.cfs_period_us")) as gh:
            quota, period = fh.read().strip(), gh.read().strip()
    except (OSError, ValueError):
        return None
    return _quota(quota, period, os.path.join(account, "cpuacct.usage") if account is not None else None)


def _quota(quota: str, period: str, usage_file: Optional[str]) -> Optional[CgroupQuota]:
    try:
        micros, per = int(quota), int(period)
    except ValueError:  # v2's "max": no quota here
        return None
    return CgroupQuota(micros, per, usage_file) if micros > 0 and per > 0 else None
