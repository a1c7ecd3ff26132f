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
from typing import Iterable, List, Optional, Sequence

from harness import ROOT, TIMEOUT, python_env

from client import GREETING, Held, echo, greeting_pid, served  # noqa: F401 - re-exported
from procfs import (  # noqa: F401 - re-exported
    alive, children, cmdline, fd_links, group_members, listening_port, live_children, live_group_members,
    parent_pid, process_group, session_id, signal_caught, signal_ignored, stat_fields, state, status,
)
from waiting import holds_for, wait_until  # noqa: F401 - re-exported

NOBODY = 65534
NOGROUP = 65534


# -- processes -----------------------------------------------------------------------


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


# -- TLS clients -----------------------------------------------------------------------


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
