"""The default request handler: Net::Server's echo server.

It greets, echoes each line back, ends the connection on ``quit``, and
bounds both the line length and the idle time so that one client cannot
hold a server forever.  It answers datagrams too.
"""

from __future__ import annotations

import os
import socket
import socketserver

__all__ = ["EchoHandler"]


class EchoHandler(socketserver.BaseRequestHandler):
    """Echo lines (stream listeners) or datagrams (UDP / UNIX datagram listeners).

    Class variables: ``timeout`` (seconds a client may stay silent),
    ``max_line`` (longest line accepted, in bytes).
    """

    timeout = 30.0
    max_line = 8192

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            self.handle_datagram(*self.request)
        else:
            self.handle_stream(self.request)

    def _name(self) -> str:
        return type(self.server).__name__

    def handle_datagram(self, data: bytes, sock: socket.socket) -> None:
        line = data.rstrip(b"\r\n").decode("utf-8", "replace")
        reply = f'{self._name()}:{os.getpid()}: You said "{line}"\r\n'
        sock.sendto(reply.encode(), self.client_address)

    def handle_stream(self, conn: socket.socket) -> None:
        conn.settimeout(self.timeout)
        prefix = f"{self._name()}:{os.getpid()}"
        with conn.makefile("rb") as rfile:
            conn.sendall(f'Welcome to "{self._name()}" ({os.getpid()})\r\n'.encode())
            while True:
                try:
                    raw = rfile.readline(self.max_line + 1)
                except socket.timeout:
                    conn.sendall(b"Timed Out.\r\n")
                    return
                if not raw:
                    return
                if len(raw) > self.max_line and not raw.endswith(b"\n"):
                    conn.sendall(b"Line too long.\r\n")
                    return
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                conn.sendall(f'{prefix}: You said "{line}"\r\n'.encode())
                if line.strip() == "quit":
                    return
