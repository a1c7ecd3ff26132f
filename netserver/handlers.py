"""The default request handler: Net::Server's echo server.

It greets, echoes each line back, ends the connection on ``quit``, answers
Net::Server's ``get NAME``, ``dump`` and ``exit`` (see :meth:`EchoHandler.command`), and
bounds both the line length and the idle time so that one client cannot
hold a server forever.  It answers datagrams too.
"""

from __future__ import annotations

import os
import socket
import socketserver

from .hooks import HookMixIn

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
                command = line.strip()
                if command == "quit":
                    return
                if command == "exit" or command == "dump" or command.startswith("get "):
                    if self.command(conn, command):
                        return

    def command(self, conn: socket.socket, command: str) -> bool:
        """Net::Server's echo commands (a whole line each); returns True to end the connection.

        ``get NAME``: ``NAME: value`` of an option or of the client (``peeraddr``,
        ``sockport``…); ``dump``: every option, one ``name: value`` line each
        (passwords shown as ``***``); ``exit``: stop the server (from a forked
        child: unless ``no_close_by_child``), as Net::Server's ``server_close``.
        Over a server that is not a ``netserver.Server`` they are only echoed.
        """
        server = self.server
        if not isinstance(server, HookMixIn) or server.config is None:  # not netserver.Server's API
            return False
        if command == "exit":
            conn.sendall(b"Stopping the server.\r\n")
            server.stop_server()
            return True
        if command == "dump":
            lines = [f"{name}: {_shown(name, server.config.get(name))}" for name in sorted(server.config)]
            conn.sendall(("\r\n".join(lines) + "\r\n").encode("utf-8", "replace"))
            return False
        name = command[4:].strip()
        if name in server.config:
            value = server.config.get(name)
        else:
            value = getattr(server.client, name, None) if name.isidentifier() and not name.startswith("_") else None
        conn.sendall(f"{name}: {_shown(name, value)}\r\n".encode("utf-8", "replace"))
        return False


def _shown(name: str, value: object) -> str:
    if value is None:
        return ""
    if "passw" in name.lower():
        return "***"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)
