"""Start servers as real processes and observe them from outside.

``ServerProcess`` runs ``python -m netserver …`` (or a script) in its own
session, follows its log on stderr, and knows it is ready when it has logged
the expected number of ``Binding to …`` lines — the ports (port 0 included)
are read from those lines.  Every wait is bounded by ``TIMEOUT``; ``stop()``
and the context manager kill the whole process group, so nothing outlives a
test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

TIMEOUT = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BINDING = re.compile(r"Binding to (\w+) (?:port (\d+) on host (\S+) with (IPv\S+)|socket (\S+))")


def python_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """A server process under test."""

    def __init__(self, args: Sequence[str], *, bindings: int = 1, script: Optional[str] = None,
                 cwd: Optional[str] = None, stdin=subprocess.DEVNULL, wait: bool = True,
                 env: Optional[dict] = None):
        command = [sys.executable, script] if script else [sys.executable, "-m", "netserver"]
        self.command = command + list(args)
        self.lines: List[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            self.command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd or ROOT, env=env or python_env(), start_new_session=True,
        )
        self.pid = self.proc.pid
        self._readers = [threading.Thread(target=self._follow, args=(stream,), daemon=True)
                         for stream in (self.proc.stderr, self.proc.stdout)]
        for reader in self._readers:
            reader.start()
        self.bindings: List[Tuple[str, object, str]] = []
        if wait:
            try:
                self.wait_ready(bindings)
            except BaseException:
                self.stop()
                raise

    # -- log following -------------------------------------------------------

    def _follow(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log_text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT, count: int = 1) -> List[re.Match]:
        """Wait until ``pattern`` has matched ``count`` log lines; return the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [m for m in map(regex.search, self.lines) if m]
                if len(matches) >= count:
                    return matches
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(f"server exited ({self.proc.returncode}) before /{pattern}/:\n"
                                         + "\n".join(self.lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for /{pattern}/:\n" + "\n".join(self.lines))
                self._changed.wait(min(remaining, 0.2))

    def wait_ready(self, bindings: int = 1) -> None:
        for match in self.wait_for(BINDING.pattern, count=bindings):
            proto, port, host, ipv, path = match.groups()
            self.bindings.append((proto, int(port) if port else path, host or "", ))
        self.port = next((b[1] for b in self.bindings if isinstance(b[1], int)), None)

    # -- control -----------------------------------------------------------------

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def stop(self) -> Optional[int]:
        """TERM, a bounded wait, then KILL of the whole process group."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        for reader in self._readers:
            reader.join(TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def serving(args: Sequence[str], bindings: int = 1, **kwargs) -> Iterator["ServerProcess"]:
    """A started server (``ServerProcess(args, **kwargs)``) ready with ``bindings`` listeners; stopped after."""
    server = ServerProcess(args, wait=False, **kwargs)
    with server:
        server.wait_ready(bindings)
        yield server


def started_servers(wait_ready: bool = True) -> Iterator["object"]:
    """The ``servers`` fixture's body: ``servers.start(args, ...)`` gives a ServerProcess; after the
    test each one is stopped, its log printed (pytest shows it when the test failed) and every
    process of its group killed by pid."""
    from procfs import group_members

    started: List[ServerProcess] = []

    class Starter:
        def start(self, args, **kwargs) -> ServerProcess:
            server = ServerProcess(args, wait=False, **kwargs)
            started.append(server)
            if wait_ready:
                server.wait_ready(kwargs.get("bindings", 1))
            return server

    yield Starter()
    for server in started:
        members = group_members(server.pid)
        server.stop()
        print(f"--- log of {' '.join(server.command[1:])} (pid {server.pid}) ---\n{server.log_text()}")
        for pid in members:  # anything that left the group's leader behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def run_command(args: Sequence[str], timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m netserver args`` to completion (for --help, errors…)."""
    return subprocess.run([sys.executable, "-m", "netserver", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=python_env(), **kwargs)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def echo_exchange(address, lines: Iterable[bytes] = (b"hello",), family: int = 0,
                  timeout: float = TIMEOUT) -> bytes:
    """Connect, send each line and ``quit``, read to EOF; returns everything read."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=timeout)
    with sock:
        sock.sendall(b"".join(line + b"\n" for line in lines) + b"quit\n")
        return read_all(sock)


def read_all(sock: socket.socket, timeout: Optional[float] = None) -> bytes:
    """Everything ``sock`` receives until the peer closes, within ``timeout`` seconds in all.

    ``timeout`` defaults to ``TIMEOUT``, or to the socket's own timeout where
    that is longer (a caller that gave the socket 30 s keeps 30 s).  A shorter
    timeout already set on ``sock`` still bounds each read.  Raises
    ``TimeoutError`` (what a socket timeout raises, so callers catching that or
    ``OSError`` see no change) saying how much arrived, when no EOF comes by
    the deadline.
    """
    per_recv = sock.gettimeout()  # a caller's shorter per-read timeout still holds
    if timeout is None:
        timeout = max(TIMEOUT, per_recv or 0.0)
    deadline = time.monotonic() + timeout
    chunks: List[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise socket.timeout
                sock.settimeout(remaining if per_recv is None else min(remaining, per_recv))
                chunk = sock.recv(65536)
            except socket.timeout:
                got = b"".join(chunks)
                raise TimeoutError(f"read_all: timed out waiting for EOF; {len(got)} bytes so far: "
                                   f"{got[:200]!r}") from None
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        sock.settimeout(per_recv)  # the socket as the caller left it
