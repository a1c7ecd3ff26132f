"""UDP: a request is one datagram, ``(data, socket)`` as in socketserver's UDPServer."""

from __future__ import annotations

import socket

from ..options import Option
from ..options.validators import to_bool, to_int
from .listener import Listener

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Tuple

__all__ = ["UDP"]


class UDP(Listener):
    """Reads up to ``udp_recv_len`` bytes per request with ``udp_recv_flags``."""

    proto = "udp"
    label = "UDP"
    socket_type = socket.SOCK_DGRAM
    stream = False

    recv_len = 4096
    recv_flags = 0

    OPTIONS = (
    Option("udp_recv_len", to_int(1, 65535), 4096, section="UDP", metavar="BYTES",
           doc="Largest UDP datagram read per request."),
    Option("udp_recv_flags", to_int(0), 0, section="UDP", metavar="FLAGS",
           doc="Flags passed to recvfrom() on UDP listeners."),
    Option("udp_broadcast", to_bool, False, section="UDP", flag=True,
           doc="Set SO_BROADCAST on UDP listeners."),
    )

    def configure_socket(self, sock: socket.socket, reuse_address: bool, reuse_port: bool) -> None:
        super().configure_socket(sock, reuse_address, reuse_port)
        config = self.config
        if config is not None:
            self.recv_len = config.get("udp_recv_len", self.recv_len)
            self.recv_flags = config.get("udp_recv_flags", self.recv_flags)
            if config.get("udp_broadcast"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    def get_request(self) -> Tuple[Any, Any]:
        sock = self._bound_socket()
        data, client_address = sock.recvfrom(self.recv_len, self.recv_flags)
        return (data, sock), client_address
