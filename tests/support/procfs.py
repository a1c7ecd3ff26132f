"""Reading processes and sockets from /proc: one copy for every suite.

Everything here observes a server from outside (``/proc/PID/stat``,
``/proc/PID/status``, ``/proc/PID/fd``, ``/proc/net/tcp{,6}``) and returns
None, an empty list or False for a process that is gone, never raises for it.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Set, Tuple


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


# -- one process ----------------------------------------------------------------------------------

def state(pid: int) -> Optional[str]:
    """The one-letter state (``R``, ``S``, ``Z``…), or None when the pid does not exist."""
    fields = stat_fields(pid)
    return fields[3] if fields else None


def exists(pid: int) -> bool:
    """The pid exists (a zombie included)."""
    return state(pid) is not None


def alive(pid: int) -> bool:
    """The pid exists and is not a zombie."""
    return state(pid) not in (None, "Z")


def parent_pid(pid: int) -> Optional[int]:
    fields = stat_fields(pid)
    return int(fields[4]) if fields else None


ppid = parent_pid


def process_group(pid: int) -> Optional[int]:
    fields = stat_fields(pid)
    return int(fields[5]) if fields else None


def session_id(pid: int) -> int:
    fields = stat_fields(pid)
    assert fields, f"pid {pid} does not exist"
    return int(fields[6])


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read()


def status(pid: int) -> Dict[str, List[int]]:
    """``Uid``, ``Gid`` (all four fields), ``Groups`` and the capability sets of /proc/PID/status, as ints."""
    found: Dict[str, List[int]] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                found[key] = [int(v) for v in value.split()]
            elif key in ("CapPrm", "CapEff", "CapAmb"):
                found[key] = [int(value.strip(), 16)]
    return found


def _signal_mask(pid: int, field: str, signum: int) -> bool:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def signal_caught(pid: int, signum: int) -> bool:
    """Whether ``pid`` has a handler installed for ``signum`` (SigCgt in /proc/PID/status)."""
    return _signal_mask(pid, "SigCgt", signum)


def signal_ignored(pid: int, signum: int) -> bool:
    """Whether ``pid`` ignores ``signum`` (SigIgn in /proc/PID/status)."""
    return _signal_mask(pid, "SigIgn", signum)


def fd_links(pid: int) -> Dict[int, str]:
    """fd number → what ``ls -l /proc/PID/fd`` shows it points to."""
    links = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            links[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return links


# -- relatives ------------------------------------------------------------------------------------

def children(pid: int) -> List[int]:
    """Every child of ``pid`` (zombies included), as the kernel lists them."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def live_children(pid: int) -> List[int]:
    """Children of ``pid`` that are not zombies."""
    return [c for c in children(pid) if alive(c)]


def zombie_children(pid: int) -> List[int]:
    return [c for c in children(pid) if state(c) == "Z"]


def group_members(pgid: int) -> List[int]:
    """Every process whose process group is ``pgid`` (the harness starts servers in their own session)."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and process_group(int(entry)) == pgid]


def live_group_members(pgid: int) -> List[int]:
    """Members of the process group that are not zombies (an orphan's zombie waits for init)."""
    return [pid for pid in group_members(pgid) if alive(pid)]


def descendants(pid: int) -> List[int]:
    """Every descendant of ``pid``, zombies included, whichever thread forked it (by parent pid)."""
    by_parent: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = parent_pid(int(entry))
            if parent is not None:
                by_parent.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def proc_state(pid: int) -> Tuple[str, str]:
    """(state letter, command name) of a process, or ('', '') when it is gone."""
    fields = stat_fields(pid)
    return (fields[3], fields[2]) if fields else ("", "")


def gone(pids: Iterable[int]) -> bool:
    """None of ``pids`` exists any more (not even as a zombie or reparented orphan)."""
    return not any(exists(p) for p in pids)


# -- sockets --------------------------------------------------------------------------------------

def socket_inodes(pid: int) -> Set[int]:
    """Inodes of the sockets ``pid`` holds open."""
    return {int(link[8:-1]) for link in fd_links(pid).values() if link.startswith("socket:[")}


def _tcp_rows():
    """(local port, state, rx_queue, inode) of every TCP socket, IPv4 and IPv6."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            yield int(fields[1].rsplit(":", 1)[1], 16), fields[3], int(fields[4].split(":")[1], 16), int(fields[9])


LISTEN = "0A"


def listening_inode(port: int) -> int:
    """The inode of the TCP socket listening on ``port`` (IPv4 or IPv6), from /proc/net/tcp{,6}."""
    found = {inode for local, st, _, inode in _tcp_rows() if st == LISTEN and local == port}
    assert len(found) == 1, f"expected one listening socket on port {port}, found {found}"
    return found.pop()


def accept_queue(port: int) -> int:
    """Connections waiting in the kernel's accept queue of the TCP listener on ``port``.

    For a listening socket /proc/net/tcp's rx_queue is the accept backlog: a
    connection counted here has not been accepted by any process.
    """
    for local, st, queued, _ in _tcp_rows():
        if st == LISTEN and local == port:
            return queued
    raise AssertionError(f"no listening socket on port {port}")


def listening_ports(pid: int) -> List[int]:
    """The TCP ports ``pid`` listens on (what a server bound to port 0 got), sorted."""
    mine = socket_inodes(pid)
    return sorted({local for local, st, _, inode in _tcp_rows() if st == LISTEN and inode in mine})


def listening_port(pid: int) -> int:
    """The one TCP port ``pid`` listens on."""
    ports = listening_ports(pid)
    assert len(ports) == 1, f"pid {pid} listens on {ports}, expected one port"
    return ports[0]
