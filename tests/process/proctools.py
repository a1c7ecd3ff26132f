"""Observe server processes from outside, through /proc, with bounded waits.

Helpers shared by the process-level tests: the children of a pid
(``/proc/PID/task/PID/children``), a process's state and process group
(``/proc/PID/stat``), the inode of a listening TCP socket
(``/proc/net/tcp``), a ``wait_until`` that polls a condition against a
deadline, and ``HeldClient``, a connection to the echo handler that is kept
open (so it occupies one worker) until the test releases it.
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Iterable, List, Optional, Set, TypeVar

from harness import TIMEOUT, read_all

from procfs import children, live_children, stat_fields  # noqa: F401 - re-exported for the tests
from waiting import holds_for, wait_until  # noqa: F401 - re-exported for the tests

T = TypeVar("T")

# Loopback, an OS-chosen port, and (the tests run as root) no drop to nobody, so a HUP can
# re-exec the interpreter wherever it is installed.
LOOPBACK = ["--host", "127.0.0.1", "--port", "0", "--user", "root"]
GREETING = re.compile(rb'Welcome to "[^"]*" \((\d+)\)')
POLL = 0.02


# -- /proc ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    fields = stat_fields(pid)
    return fields[3:] if fields else None

def state(pid: int) -> Optional[str]:
    """The one-letter state (``R``, ``S``, ``Z``…), or None when the pid does not exist."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def ppid(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def exists(pid: int) -> bool:
    return state(pid) is not None




def zombie_children(pid: int) -> List[int]:
    return [c for c in children(pid) if state(c) == "Z"]


def group_members(pgid: int) -> List[int]:
    """Every process whose process group is ``pgid`` (the harness starts servers in their own session)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read()


def listening_inode(port: int) -> int:
    """The inode of the TCP socket listening on ``port`` (IPv4 or IPv6), from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            local, st, inode = fields[1], fields[3], int(fields[9])
            if st == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    assert len(found) == 1, f"expected one listening socket on port {port}, found {found}"
    return found.pop()


def accept_queue(port: int) -> int:
    """Connections waiting in the kernel's accept queue of the TCP listener on ``port``.

    For a listening socket /proc/net/tcp's rx_queue is the accept backlog: a
    connection counted here has not been accepted by any process.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no listening socket on port {port}")


def socket_inodes(pid: int) -> Set[int]:
    """Inodes of the sockets ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


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


def gone(pids: Iterable[int]) -> bool:
    """None of ``pids`` exists any more (not even as a zombie or reparented orphan)."""
    return not any(exists(p) for p in pids)


# -- clients ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def greeting_pid(reply: bytes) -> int:
    match = GREETING.search(reply)
    assert match, f"no greeting in {reply!r}"
    return int(match.group(1))


class HeldClient:
    """A connection to the echo handler held open: it occupies one worker until ``finish()``.

    ``greeted(timeout)`` says whether a worker has taken the connection (the
    echo handler greets first thing); a connection still in the kernel's
    accept queue gets no greeting.
    """

    def __init__(self, address, family: int = socket.AF_INET):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(TIMEOUT)
            self.sock.connect(address)
        else:
            self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.buffer = b""
        self.pid: Optional[int] = None
        self.finished = False

    def greeted(self, timeout: float = TIMEOUT) -> bool:
        """Wait up to ``timeout`` for the greeting; remember the serving pid."""
        deadline = time.monotonic() + timeout
        while self.pid is None:
            match = GREETING.search(self.buffer)
            if match:
                self.pid = int(match.group(1))
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return False
            if not chunk:
                raise AssertionError(f"connection closed before the greeting: {self.buffer!r}")
            self.buffer += chunk
        return True

    def wait_greeted(self, timeout: float = TIMEOUT) -> int:
        assert self.greeted(timeout), f"not greeted within {timeout}s: {self.buffer!r}"
        return self.pid

    def finish(self, lines=(b"one", b"two")) -> bytes:
        """Send ``lines`` and ``quit``, read to EOF; returns all the connection received."""
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(b"".join(line + b"\n" for line in lines) + b"quit\n")
        self.buffer += read_all(self.sock)
        self.sock.close()
        self.finished = True
        return self.buffer

    def finish_checked(self, lines=(b"one", b"two")) -> bytes:
        """``finish()`` and check that every line was echoed (by the pid that greeted)."""
        reply = self.finish(lines)
        pid = greeting_pid(reply)
        for line in list(lines) + [b"quit"]:
            expected = b': You said "' + line + b'"\r\n'
            assert expected in reply, f"missing echo of {line!r} in {reply!r}"
        assert reply.count(f":{pid}: You said".encode()) == len(lines) + 1, reply
        return reply

    def close(self) -> None:
        self.sock.close()


def complete_reply(reply: bytes, lines=(b"hello",)) -> bool:
    """An echo exchange that got the greeting and every echo, through ``quit``."""
    if not GREETING.search(reply):
        return False
    return all(b'You said "' + line + b'"\r\n' in reply for line in list(lines) + [b"quit"])


# -- assertions ---------------------------------------------------------------------

def assert_group_gone(server, timeout: float = 5.0) -> None:
    """Nothing of the server's process group is left (no child outlived the parent)."""
    wait_until(lambda: not group_members(server.pid), timeout, "the process group to be empty")


def assert_all_gone(pids, timeout: float = 5.0) -> None:
    wait_until(lambda: gone(pids), timeout, f"pids {sorted(pids)} to be gone")
