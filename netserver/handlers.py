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
import time

from .hooks import HookMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator, Optional, Protocol

    from .options import Config

    class _NetServer(Protocol):
        """What the echo commands use of ``netserver.Server`` (named here: importing it would be a cycle)."""

        config: Optional[Config]
        client: Any

        def stop_server(self) -> None: ...

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
        prefix = f"{self._name()}:{os.getpid()}"
        conn.sendall(f'Welcome to "{self._name()}" ({os.getpid()})\r\n'.encode())
        for raw in self._lines(conn):
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            conn.sendall(f'{prefix}: You said "{line}"\r\n'.encode())
            command = line.strip()
            if command == "quit":
                return
            if command == "exit" or command == "dump" or command.startswith("get "):
                if self.command(conn, command):
                    return

    def _lines(self, conn: socket.socket) -> Iterator[bytes]:
        """Each line of the client, each one whole within ``timeout`` seconds of the previous.

        The deadline is per line, not per ``recv``: a client that trickles a
        byte every few seconds is cut off at ``timeout`` like a silent one
        (issue 14), so a few such clients cannot starve a pool.
        """
        buffer = b""
        while True:
            deadline = time.monotonic() + self.timeout
            while True:
                end = buffer.find(b"\n", 0, self.max_line + 1)
                if end >= 0:
                    line, buffer = buffer[:end + 1], buffer[end + 1:]
                    break
                if len(buffer) > self.max_line:
                    conn.sendall(b"Line too long.\r\n")
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    conn.settimeout(self.timeout)
                    conn.sendall(b"Timed Out.\r\n")
                    return
                conn.settimeout(remaining)
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    conn.settimeout(self.timeout)
                    conn.sendall(b"Timed Out.\r\n")
                    return
                if not data:
                    if buffer:
                        yield buffer  # the last line, without its end (as readline gives it)
                    return
                buffer += data
            conn.settimeout(self.timeout)  # writes: timeout per send, as before
            yield line

    def command(self, conn: socket.socket, command: str) -> bool:
        """Net::Server's echo commands (a whole line each); returns True to end the connection.

        ``get NAME``: ``NAME: value`` of an option or of the client (``peeraddr``,
        ``sockport``…); ``dump``: every option, one ``name: value`` line each
        (passwords shown as ``***``); ``exit``: stop the server (from a forked
        child: unless ``no_close_by_child``), as Net::Server's ``server_close``.
        Over a server that is not a ``netserver.Server`` they are only echoed.
        """
        if not isinstance(self.server, HookMixIn):  # not netserver.Server's API
            return False
        server: _NetServer = self.server  # type: ignore[assignment]  # HookMixIn is netserver.Server's (its only class)
        if server.config is None:
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
