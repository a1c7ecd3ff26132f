"""INET: inetd/xinetd mode — the connection is already on fds 0 and 1.

Nothing is bound.  If fd 0 is a socket (inetd, systemd ``Accept=yes``,
``socat ... EXEC``) it is served as one; if it is a pipe pair, the handler
gets a connection object that reads fd 0 and writes fd 1.  One connection is
served, then the server returns.
"""

from __future__ import annotations

import os
import socket
import stat

from ..engine import StopNow
from ..server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Tuple

__all__ = ["INET", "StdioConnection"]


class StdioConnection:
    """A socket-like pair of fds (read fd 0, write fd 1) for pipe-launched servers."""

    family = socket.AF_UNIX

    def __init__(self, read_fd: int = 0, write_fd: int = 1):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.closed = False

    def makefile(self, mode: str = "r", buffering: int = -1, **kwargs: Any):
        fd = self.write_fd if "w" in mode else self.read_fd
        return os.fdopen(os.dup(fd), mode, buffering, **kwargs)

    def recv(self, size: int) -> bytes:
        return os.read(self.read_fd, size)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view):]

    send = sendall

    def settimeout(self, timeout: Any) -> None:
        """Pipes have no timeout; the launcher bounds the session."""

    def gettimeout(self) -> None:
        return None

    def setsockopt(self, *args: Any) -> None:
        pass

    def getsockname(self) -> str:
        return ""

    def getpeername(self) -> str:
        return ""

    def fileno(self) -> int:
        return self.read_fd

    def shutdown(self, how: int) -> None:
        """Half-close for the peer when inetd handed over a socket; a pipe has no half-close
        (its reader sees EOF when every copy of the descriptor is closed)."""
        if self.closed:
            return
        fd = os.dup(self.write_fd)
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # ENOTSOCK: a pipe or a terminal
            os.close(fd)
            return
        with sock:
            try:
                sock.shutdown(how)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True


class _InheritedConnection:
    """Stands in for a listener: hands out the one connection on fd 0 once."""

    proto = "inet"

    def local_address(self) -> None:
        """Unknown here: the client's ``sockaddr``/``sockport`` come from the connection itself."""
        return None

    def get_request(self) -> Tuple[Any, Any]:
        if stat.S_ISSOCK(os.fstat(0).st_mode):
            conn = socket.socket(fileno=os.dup(0))
            try:
                peer = conn.getpeername()
            except OSError:
                peer = ""
            return conn, peer
        return StdioConnection(), ""


class INET(Server):
    """Serve the single connection inetd handed us on fds 0/1, then return."""

    _personality = "INET"

    def pre_bind(self) -> None:
        """Nothing to bind: inetd did it."""

    def bind(self) -> None:
        """Nothing to bind: inetd did it."""

    def loop(self) -> None:
        try:
            self._serve_from(_InheritedConnection())
        except StopNow:
            # TERM/INT while serving (inetd or systemd stopping us): log it and end
            # normally, as serve_forever does for the other personalities.
            self._dispatch_signals()
