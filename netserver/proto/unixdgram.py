"""UNIX datagram sockets: a request is ``(data, socket)``, as with UDP."""

from __future__ import annotations

import socket

from .udp import UDP
from .unix import UNIX

__all__ = ["UNIXDGRAM"]


class UNIXDGRAM(UNIX):
    """A UNIX-domain datagram socket; reads like :class:`~netserver.proto.udp.UDP`."""

    proto = "unixdgram"
    label = "UNIXDGRAM"
    socket_type = socket.SOCK_DGRAM
    stream = False

    recv_len = UDP.recv_len
    recv_flags = UDP.recv_flags

    def bind(self, reuse_address: bool = True, reuse_port: bool = False) -> None:
        super().bind(reuse_address, reuse_port)
        if self.config is not None:
            self.recv_len = self.config.get("udp_recv_len", self.recv_len)
            self.recv_flags = self.config.get("udp_recv_flags", self.recv_flags)

    get_request = UDP.get_request
