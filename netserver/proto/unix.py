"""UNIX stream sockets: a socket file; a stale one is replaced, a live one is an error."""

from __future__ import annotations

import errno
import os
import socket
import stat

from .listener import BindError, Listener

__all__ = ["UNIX", "clear_stale_socket_file"]


def clear_stale_socket_file(path: str, socket_type: int) -> None:
    """Remove ``path`` if it is a socket nobody listens on; refuse anything else.

    A socket file left by a crashed server would make every restart fail with
    EADDRINUSE; a file that is not a socket, or a socket a live server still
    answers on, is never removed.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(errno.EADDRINUSE, f"cannot bind {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket_type)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            if os.path.lexists(path):
                os.unlink(path)
            return
        raise BindError(exc.errno, f"cannot bind {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise BindError(errno.EADDRINUSE, f"cannot bind {path}: another server is listening on it")


class UNIX(Listener):
    """A UNIX-domain stream socket at a path."""

    proto = "unix"
    label = "UNIX"

    def bind(self, reuse_address: bool = True, reuse_port: bool = False) -> None:
        clear_stale_socket_file(self.port, self.socket_type)
        sock = socket.socket(socket.AF_UNIX, self.socket_type)
        try:
            sock.bind(self.port)
        except OSError as exc:
            sock.close()
            raise BindError(exc.errno, f"cannot bind {self.describe()}: {exc.strerror or exc}") from None
        self.socket = sock
        self.owns_path = True

    owns_path = False

    def adopt(self, fd: int) -> None:
        super().adopt(fd)
        self.owns_path = True

    def close(self, unlink: bool = True) -> None:
        """Close; the socket file is removed by the process that created it only."""
        super().close()
        if unlink and self.owns_path:
            self.owns_path = False
            try:
                os.unlink(self.port)
            except OSError:
                pass

    @property
    def port(self) -> str:
        """The socket's path (what a port is for the other protos)."""
        return str(self.target.address)

    @property
    def host(self) -> str:
        return "*"

    def describe(self) -> str:
        return f"{self.label} socket {self.target.address}"
