"""``no_client_stdout 0``: the client is stdin/stdout while it is served (Net::Server's tied STDIN/STDOUT).

Python level: ``sys.stdin``/``sys.stdout`` become routers that send each
thread to the connection it serves (and everyone else to the original
streams), so ``print()`` and ``input()`` work under TLS (through the TLS
socket) and under Thread (each worker its own client).  File descriptor
level: a plain socket served in the main thread — one connection per
process at a time: Single, Fork, PreFork, PreForkSimple, INET — is also
put on fds 0 and 1 for the connection, so a subprocess's output reaches the
client too, as Net::Server's ``open STDOUT, '>&'`` does.  A TLS connection
or a worker thread gets the Python-level streams only (Net::Server ties
those too: an fd cannot carry TLS, nor belong to one thread).

Imports nothing from the server.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["ClientStdio"]

_MAIN_IDENT = threading.main_thread().ident  # compared per connection: see engine.py


class _Router:
    """Stands in for ``sys.stdin`` or ``sys.stdout``: the current thread's client, else the original."""

    def __init__(self, original: Any):
        object.__setattr__(self, "_original", original)
        object.__setattr__(self, "_local", threading.local())

    def _target(self) -> Any:
        return getattr(self._local, "stream", None) or self._original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __iter__(self):
        return iter(self._target())

    def __next__(self):
        return next(self._target())


class _Client(io.RawIOBase):
    """The client's socket as the raw stream under ``sys.stdin``/``sys.stdout``.

    Output is line-buffered and is also flushed whenever the server is about to wait for the
    client's input (the rule of C's stdio for a terminal; Net::Server sets autoflush on the
    client's STDOUT), so a prompt or a line reaches an interactive client while it is served.
    Not a flush per write: ``print(a, b)`` is four writes, which would be four segments (and
    Nagle's delay between them).  A partial line is still buffered when a subprocess writes to
    fd 1; ``sys.stdout.flush()`` before starting one keeps the order."""

    def __init__(self, conn: socket.socket, before_read: Any = None):
        self._conn = conn
        self._before_read = before_read

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._before_read is not None:
            self._before_read()
        return self._conn.recv_into(buffer)

    def write(self, data: Any) -> int:
        self._conn.sendall(data)
        return len(data)


_routers_lock = threading.Lock()


def _routers() -> "tuple[_Router, _Router]":
    """Install the two routers once (only a server with ``no_client_stdout 0`` ever does)."""
    with _routers_lock:
        if not isinstance(sys.stdin, _Router):
            sys.stdin = _Router(sys.stdin)
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        return sys.stdin, sys.stdout


class ClientStdio:
    """Context manager: ``conn`` is this thread's stdin/stdout (and fds 0/1 where that is safe)."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.saved_fds: Optional[tuple] = None

    def __enter__(self) -> None:
        stdin, stdout = _routers()
        conn = self.conn
        self.stdout = io.TextIOWrapper(io.BufferedWriter(_Client(conn)), encoding="utf-8", errors="replace",
                                       line_buffering=True)
        self.stdin = io.TextIOWrapper(io.BufferedReader(_Client(conn, self._flush_stdout)), encoding="utf-8",
                                      errors="replace")
        stdin._local.stream = self.stdin
        stdout._local.stream = self.stdout
        if type(conn) is socket.socket and threading.get_ident() == _MAIN_IDENT:
            original = stdout._original
            try:
                original.flush()
            except (OSError, ValueError):
                pass
            self.saved_fds = (os.dup(0), os.dup(1))
            os.dup2(conn.fileno(), 0)
            os.dup2(conn.fileno(), 1)

    def _flush_stdout(self) -> None:
        try:
            self.stdout.flush()
        except (OSError, ValueError):
            pass  # the client is gone, or the handler closed stdout: reading says so next

    def __exit__(self, *exc: Any) -> None:
        stdin, stdout = sys.stdin, sys.stdout
        for router in (stdin, stdout):
            if isinstance(router, _Router):
                router._local.stream = None
        for stream in (self.stdout, self.stdin):
            try:
                stream.close()  # the socket itself stays open (the server closes it)
            except (OSError, ValueError):
                pass
        if self.saved_fds is not None:
            for fd, saved in zip((0, 1), self.saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
