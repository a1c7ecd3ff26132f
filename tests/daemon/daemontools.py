"""Observe daemons from outside: /proc, pid files, TLS clients, bounded waits.

Helpers for the tests under tests/daemon.  Everything here is read from the
outside of the server process (``/proc/PID/status``, ``/proc/PID/stat``,
``/proc/PID/fd``, the pid file, what a client receives), and every wait is
bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence, TypeVar

from harness import ROOT, TIMEOUT, python_env, read_all

from procfs import stat_fields  # noqa: F401 - re-exported for the tests
from waiting import holds_for, wait_until  # noqa: F401 - re-exported for the tests

T = TypeVar("T")

GREETING = re.compile(rb'Welcome to "[^"]*" \((\d+)\)')
POLL = 0.02
NOBODY = 65534
NOGROUP = 65534


# -- /proc ---------------------------------------------------------------------------


def state(pid: int) -> Optional[str]:
    fields = stat_fields(pid)
    return fields[3] if fields else None


def alive(pid: int) -> bool:
    """The pid exists and is not a zombie."""
    return state(pid) not in (None, "Z")


def session_id(pid: int) -> int:
    fields = stat_fields(pid)
    assert fields, f"pid {pid} does not exist"
    return int(fields[6])


def process_group(pid: int) -> Optional[int]:
    fields = stat_fields(pid)
    return int(fields[5]) if fields else None


def parent_pid(pid: int) -> Optional[int]:
    fields = stat_fields(pid)
    return int(fields[4]) if fields else None


def children(pid: int) -> List[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def live_children(pid: int) -> List[int]:
    return [c for c in children(pid) if alive(c)]


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


def fd_links(pid: int) -> Dict[int, str]:
    """fd number → what ``ls -l /proc/PID/fd`` shows it points to."""
    links = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            links[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return links


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read()


def group_members(pgid: int) -> List[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            if process_group(int(entry)) == pgid:
                members.append(int(entry))
    return members


def live_group_members(pgid: int) -> List[int]:
    """Members of the process group that are not zombies (an orphan's zombie waits for init)."""
    return [pid for pid in group_members(pgid) if alive(pid)]


def kill_quietly(pid: Optional[int], signum: int = signal.SIGKILL) -> None:
    if not pid or pid <= 1:
        return
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(TIMEOUT)
    assert not alive(proc.pid)
    return proc.pid


# -- pid files -----------------------------------------------------------------------


def read_pid_file(path) -> Optional[str]:
    """The pid file's text, or None when it does not exist."""
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def pid_from_file(path) -> Optional[int]:
    text = read_pid_file(path)
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


# -- launching -----------------------------------------------------------------------


def netserver_command(args: Sequence[str], script: Optional[str] = None) -> List[str]:
    head = [sys.executable, script] if script else [sys.executable, "-m", "netserver"]
    return head + list(args)


def launch(args: Sequence[str], out_path, timeout: float = TIMEOUT,
           script: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run a launcher (e.g. ``--background``) to completion, its stdout and stderr into ``out_path``.

    A file, not a pipe: a backgrounded daemon without a log file keeps the
    caller's descriptors, and a pipe would then never reach end of file.  The
    launcher starts a session of its own (no controlling terminal, its own
    process group, which a daemon that is not ``--setsid`` stays in); the
    result's ``pid`` is the launcher's pid, hence that group's id.
    """
    with open(out_path, "w+b") as out:
        proc = subprocess.Popen(netserver_command(args, script), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, cwd=ROOT, env=python_env(), start_new_session=True)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and whatever it left in its group
            except ProcessLookupError:
                pass
            proc.wait(TIMEOUT)
            raise
        out.seek(0)
        done = subprocess.CompletedProcess(proc.args, code, out.read().decode("utf-8", "replace"), None)
    done.pid = proc.pid
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server (which sets SO_REUSEADDR, as the servers under test do) could bind the port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


# -- clients ----------------------------------------------------------------------------


def greeting_pid(reply: bytes) -> int:
    match = GREETING.search(reply)
    assert match, f"no greeting in {reply!r}"
    return int(match.group(1))


def echo(port: int, line: bytes = b"hello", timeout: float = TIMEOUT) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(line + b"\nquit\n")
        return read_all(sock)


def served(reply: bytes, line: bytes = b"hello") -> bool:
    return bool(GREETING.search(reply)) and b'You said "' + line + b'"' in reply


class Held:
    """A plain connection held open: it occupies one worker until ``finish()``."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.pid: Optional[int] = None

    def wait_greeted(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while not GREETING.search(self.buffer):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not greeted within {timeout}s: {self.buffer!r}"
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before the greeting: {self.buffer!r}"
            self.buffer += chunk
        self.pid = greeting_pid(self.buffer)
        return self.pid

    def finish(self) -> bytes:
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(b"bye\nquit\n")
        self.buffer += read_all(self.sock)
        self.sock.close()
        return self.buffer

    def close(self) -> None:
        self.sock.close()


def client_context(cafile, certfile=None, keyfile=None, maximum_version=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    if certfile:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    if maximum_version is not None:
        context.maximum_version = maximum_version
    return context


def tls_exchange(port: int, context: ssl.SSLContext, payload: bytes = b"hello\nquit\n",
                 timeout: float = TIMEOUT) -> bytes:
    """Connect over TLS (``server_hostname='localhost'``), send ``payload``, read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(payload)
            chunks = []
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)


def tls_echo_served(port: int, context: ssl.SSLContext) -> bool:
    return served(tls_exchange(port, context))


def log_lines(path) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def line_pid(line: str) -> Optional[int]:
    """The pid field of a log line (``DATE PID LEVEL message``)."""
    parts = line.split()
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def lines_matching(path, pattern: str) -> List[str]:
    regex = re.compile(pattern)
    return [line for line in log_lines(path) if regex.search(line)]


def any_deleted(links: Iterable[str]) -> List[str]:
    return [link for link in links if link.endswith("(deleted)")]
