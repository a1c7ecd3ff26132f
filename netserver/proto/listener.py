"""The base listener: one bound socket and the three things done with it.

A protocol is a small class with one job each: ``bind`` (and ``activate``)
the socket, ``get_request`` from it, and ``describe`` itself for the log.
Subclasses set the socket type and override what differs.
"""

from __future__ import annotations

import errno
import socket
import sys

from .resolve import BindTarget

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

__all__ = ["Listener", "BindError"]


_TRANSPARENT = {socket.AF_INET: (socket.IPPROTO_IP, getattr(socket, "IP_TRANSPARENT", None)),
                socket.AF_INET6: (socket.IPPROTO_IPV6, getattr(socket, "IPV6_TRANSPARENT", 75))}  # 75: Linux's


def _fixed_local_address(sock: socket.socket) -> Any:
    """``sock``'s bound address when every connection it accepts has it as its local address."""
    level, option = _TRANSPARENT.get(sock.family, (None, None))
    if level is None:
        return None
    try:
        address = sock.getsockname()
        if option is not None and sys.platform.startswith("linux") and sock.getsockopt(level, option):
            return None
    except OSError:
        return None
    return None if address[0] in ("0.0.0.0", "::", "::ffff:0.0.0.0") else address  # any address


class BindError(OSError):
    """A listener could not be bound; the message names the port and the reason."""

    def __str__(self) -> str:
        return str(self.strerror)


class Listener:
    """One listening socket of a server.

    Class variables: ``proto`` (the name in port specs), ``socket_type``,
    ``stream`` (connection-oriented or not).  ``socket`` is the bound socket,
    ``target`` the resolved address it was made from.
    """

    proto = "tcp"
    label = "TCP"
    socket_type = socket.SOCK_STREAM
    stream = True

    def __init__(self, target: BindTarget, config: Any = None):
        self.target = target
        self.spec = target.spec
        self.config = config
        self.socket: Optional[socket.socket] = None
        self.inherited = False

    # -- binding ----------------------------------------------------------

    def bind(self, reuse_address: bool = True, reuse_port: bool = False) -> None:
        """Create and bind the socket (closing it again if anything fails)."""
        sock = socket.socket(self.target.family, self.socket_type)
        try:
            self.configure_socket(sock, reuse_address, reuse_port)
            sock.bind(self.target.address)
        except OSError as exc:
            sock.close()
            raise BindError(exc.errno, f"cannot bind {self.describe()}: {exc.strerror or exc}") from None
        self.socket = sock

    def configure_socket(self, sock: socket.socket, reuse_address: bool, reuse_port: bool) -> None:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if self.target.family == socket.AF_INET6 and self.target.v6only is not None:
            # Set explicitly, never inherit the sysctl (Net::Server 2.015 did the same).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(self.target.v6only))

    def activate(self, backlog: int) -> None:
        """Start listening (stream protocols)."""
        if self.stream and self.socket is not None:
            self.socket.listen(backlog)

    def adopt(self, fd: int) -> None:
        """Take over an already bound socket (inherited across exec on HUP)."""
        self.socket = socket.socket(fileno=fd)
        self.socket.set_inheritable(False)
        self.inherited = True

    # -- serving ------------------------------------------------------------

    def get_request(self) -> Tuple[Any, Any]:
        """Accept one connection: ``(connection, client_address)``.

        ``socket.accept()``'s own steps, with the listener's family and type
        as plain numbers taken once: ``accept()`` converts them through the
        ``AddressFamily``/``SocketKind`` enums on every call (CPU, and in a
        forked child, copied pages of enum objects).  A socket of another
        class (a user's, ``ssl``) keeps its own ``accept``.
        """
        sock = self.socket
        if sock is None:
            raise self._closed()
        if type(sock) is not socket.socket:
            return sock.accept()
        if self._accept_as is None or self._accept_as[0] is not sock:
            self._accept_as = (sock, int(sock.family), int(sock.type), sock.proto)
        fd, client_address = sock._accept()  # type: ignore[union-attr]  # CPython's private accept, not in typeshed
        conn = socket.socket(self._accept_as[1], self._accept_as[2], self._accept_as[3], fileno=fd)
        if socket.getdefaulttimeout() is None and sock.gettimeout():
            conn.setblocking(True)
        return conn, client_address

    _accept_as: Optional[Tuple[Any, int, int, int]] = None  # (socket, family, type, proto) for get_request

    def local_address(self) -> Any:
        """The local address of every connection accepted here, or None: ask each connection.

        A TCP listener bound to one IP address accepts connections to that
        address only, so the address a ``getsockname()`` per connection would
        return is known (HTTP's ``SERVER_NAME``/``SERVER_PORT``, the client's
        ``sockaddr``).  None for a wildcard bind, a transparent (TPROXY)
        socket, which accepts for other addresses, and a UNIX socket.  (An eBPF
        ``sk_lookup`` program steering other addresses to a specific bind is
        not detected.)
        """
        sock = self.socket
        if self._local_of is None or self._local_of[0] is not sock:
            self._local_of = (sock, None if sock is None else _fixed_local_address(sock))
        return self._local_of[1]

    _local_of: Optional[Tuple[Any, Any]] = None  # (socket, its fixed local address) for local_address

    def _bound_socket(self) -> socket.socket:
        """The socket; ``OSError`` (EBADF) once closed, as a closed socket's ``accept`` raises."""
        if self.socket is None:
            raise self._closed()
        return self.socket

    def _closed(self) -> OSError:
        return OSError(errno.EBADF, f"{self.describe()} is closed")

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    # -- description ----------------------------------------------------------

    def fileno(self) -> int:
        """The socket's descriptor; -1 once closed (as a closed socket's ``fileno()``)."""
        return self.socket.fileno() if self.socket is not None else -1

    @property
    def address(self) -> Any:
        """The bound address (with the kernel's port when port 0 was asked for)."""
        if self.socket is None:
            return self.target.address
        return self.socket.getsockname()

    @property
    def port(self) -> Any:
        address = self.address
        return address[1] if isinstance(address, tuple) else address

    @property
    def host(self) -> str:
        address = self.address
        return address[0] if isinstance(address, tuple) else "*"

    @property
    def ipv(self) -> str:
        return self.target.ipv

    def describe(self) -> str:
        """``TCP port 20203 on host :: with IPv6`` — Net::Server's wording."""
        return f"{self.label} port {self.port} on host {self.host} with {self.ipv}"

    def hup_string(self) -> str:
        """What identifies this listener across a HUP re-exec."""
        return f"{self.target.describe_host()}|{self.spec.port}|{self.proto}|{self.ipv}"

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.describe()}>"

