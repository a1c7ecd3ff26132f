"""Multiplex: one process, many connections, nothing blocks (Net::Server::Multiplex).

Every listener and every connection sits in one selector (epoll on Linux).
Each connection gets its own handler object — a :class:`MuxHandler` — whose
callbacks are Net::Server::Multiplex's: ``mux_connection`` once access
control has passed, ``mux_input(data)`` whenever bytes arrive (consume what
you use from the front of the ``bytearray``; the rest is kept for the next
call), ``mux_eof(data)`` when the peer has finished writing,
``mux_timeout()`` when ``set_timeout`` expires, ``mux_close()`` at the end;
the server's ``post_process_request_hook`` runs just before ``mux_close`` and
``post_client_connection_hook`` once the connection is closed, as in
Net::Server::Multiplex's flow.
``write()`` never blocks: what the socket does not take at once is buffered
and sent as the peer reads, and a peer whose unsent output grows past
``MuxHandler.high_water`` is not read from until it drains — a slow or
silent client costs memory, never the loop.  A UDP datagram is a short
connection of its own: connection, one input, eof, close; replies go back
to its sender.
"""

from __future__ import annotations

import heapq
import os
import selectors
import socket
import time

from ..options import Option
from ..options.validators import to_float
from ..server import Server
from .base import PersonalityMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

__all__ = ["MultiplexMixIn", "Multiplex", "MuxHandler", "MuxEchoHandler"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_RECV = 65536


class MuxHandler:
    """One connection's callbacks.  Override the ``mux_*`` methods you need.

    Methods for the callbacks to call: ``write(data)``, ``close()`` (after
    pending output is sent), ``set_timeout(seconds)`` (``None`` cancels).
    Attributes: ``client_address``, ``server``, ``client`` (the server's
    :class:`~netserver.client.ClientInfo` for this connection).
    """

    high_water = 256 * 1024  # unsent bytes above which the peer is no longer read
    low_water = 64 * 1024    # …until its backlog falls below this

    def __init__(self, connection: "Connection", client_address: Any, server: Any):
        self._connection = connection
        self.client_address = client_address
        self.server = server
        self.client = server._host.client

    # -- callbacks --------------------------------------------------------------

    def mux_connection(self) -> None:
        """The connection was accepted and allowed."""

    def mux_input(self, data: bytearray) -> None:
        """Bytes arrived; delete what you consumed from the front of ``data``."""
        del data[:]

    def mux_eof(self, data: bytearray) -> None:
        """The peer will send no more; ``data`` holds what ``mux_input`` left."""

    def mux_timeout(self) -> None:
        """The time given to ``set_timeout`` has passed."""

    def mux_close(self) -> None:
        """The connection is closed; the last callback."""

    # -- actions -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._connection.write(data)

    def close(self) -> None:
        self._connection.close_when_sent()

    def set_timeout(self, seconds: Optional[float]) -> None:
        self._connection.set_timeout(seconds)


class MuxEchoHandler(MuxHandler):
    """Net::Server's echo in callbacks: greeting, echo each line, ``quit`` ends the connection."""

    max_line = 8192
    idle = 30.0

    def mux_connection(self) -> None:
        self.name = type(self.server).__name__
        if self._connection.stream:
            self.write(f'Welcome to "{self.name}" ({os.getpid()})\r\n'.encode())
            self.set_timeout(self.idle)

    def mux_input(self, data: bytearray) -> None:
        if not self._connection.stream:
            line = bytes(data).rstrip(b"\r\n").decode("utf-8", "replace")
            del data[:]
            self.write(f'{self.name}:{os.getpid()}: You said "{line}"\r\n'.encode())
            return
        self.set_timeout(self.idle)
        while True:
            end = data.find(b"\n")
            if end < 0:
                if len(data) > self.max_line:
                    self.write(b"Line too long.\r\n")
                    self.close()
                    del data[:]
                return
            line = bytes(data[:end]).rstrip(b"\r").decode("utf-8", "replace")
            del data[:end + 1]
            self.write(f'{self.name}:{os.getpid()}: You said "{line}"\r\n'.encode())
            if line.strip() == "quit":
                self.close()
                return

    def mux_timeout(self) -> None:
        self.write(b"Timed Out.\r\n")
        self.close()


class Connection:
    """The loop's record of one connection: socket, buffers, handler, timer."""

    __slots__ = ("sock", "handler", "inbuf", "outbuf", "closing", "paused", "deadline", "stream",
                 "peer", "fd", "events", "closed", "loop")

    def __init__(self, loop: Any, sock: socket.socket, stream: bool, peer: Any = None):
        self.loop = loop  # the MultiplexMixIn that owns every connection
        self.sock = sock
        self.stream = stream
        self.peer = peer
        self.handler: Optional[MuxHandler] = None
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closing = False
        self.paused = False
        self.deadline: Optional[float] = None
        self.fd = sock.fileno()
        self.events = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if not self.stream:
            try:
                self.sock.sendto(data, self.peer)
            except OSError:
                pass
            return
        if not self.outbuf:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.loop._drop(self)
                return
            if sent == len(data):
                return
            data = data[sent:]
        self.outbuf += data
        self.loop._update(self)

    def close_when_sent(self) -> None:
        if self.closing:
            return
        self.closing = True
        if not self.outbuf:
            self.loop._drop(self)
        else:
            self.loop._update(self)

    def set_timeout(self, seconds: Optional[float]) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        if self.deadline is not None:
            self.loop._arm(self, self.deadline)


class MultiplexMixIn(PersonalityMixIn):
    """One process serving every connection through callbacks (see the module docstring)."""

    _personality = "Multiplex"
    _default_handler: Optional[type] = MuxEchoHandler  # a MuxHandler class, not a BaseRequestHandler
    _accept_burst = 64  # connections taken per readiness of a listener

    OPTIONS: Tuple[Option, ...] = (
        Option("check_for_dequeue", to_float, 0.0, section="Multiplex", metavar="SECONDS",
               doc="Multiplex: seconds between calls of run_dequeue() in the serving process (0: never)."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._last_dequeue = time.monotonic()
        self._connections: Dict[int, Connection] = {}
        self._timers: List[Tuple[float, int, int]] = []
        self._mux_selector: Optional[selectors.BaseSelector] = None

    # -- the loop -------------------------------------------------------------------

    def _serve_until_stopped(self, selector: selectors.BaseSelector, wakeup: Any, poll_interval: float) -> None:
        """One selector for the listeners, every connection and the wake-up pipe; timers between waits."""
        self._mux_selector = selector
        try:
            selector.register(wakeup.fileno(), _READ, None)
            for sock, token in self._mux_listeners():
                selector.register(sock, _READ, (sock, token))
            while not self._stop_requested:  # Engine._shutdown_request's value, read every pass
                for key, mask in selector.select(self._next_wait(poll_interval)):
                    data = key.data
                    if data is None:
                        self._dispatch_signals()
                    elif isinstance(data, Connection):
                        self._ready(data, mask)
                    else:
                        self._accept(*data)
                self._expire(time.monotonic())
                self.service_actions()
        finally:
            for connection in list(self._connections.values()):
                self._drop(connection)
            self._mux_selector = None

    def _check_handler(self) -> None:
        handler = self.RequestHandlerClass
        if handler is not None and not _runs_handler(handler):
            raise TypeError(_NOT_A_MUX_HANDLER % _name(handler))

    def _prepare_to_serve(self) -> None:
        self._raise_fd_limit()
        super()._prepare_to_serve()
        if not _runs_handler(self.RequestHandlerClass):
            self._host.fatal(_NOT_A_MUX_HANDLER % _name(self.RequestHandlerClass))
        # Refused rather than ignored: a PROXY header would reach mux_input and the access rules would
        # judge the proxy's address; a TLS listener would hand mux_input the raw handshake.
        if self._host.config.get("proxy_protocol", "off") != "off":
            self._host.fatal("Multiplex does not read PROXY protocol headers; use PreFork, Fork or Thread "
                             "with proxy_protocol, or remove proxy_protocol")
        for listener in self._host.listeners:
            if getattr(listener, "proto", "") == "ssl":
                self._host.fatal(f"Multiplex does not run TLS handshakes ({listener.describe()}); use PreFork, "
                                 f"Fork or Thread for ssl listeners, or terminate TLS in front")

    def _mux_listeners(self) -> List[Tuple[Any, Any]]:
        listening = self._listening()
        for sock, _ in listening:
            sock.setblocking(False)
        return listening

    @staticmethod
    def _raise_fd_limit() -> None:
        """Thousands of connections need thousands of descriptors: lift the soft limit to the hard one."""
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard == resource.RLIM_INFINITY or hard > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ImportError, ValueError, OSError):
            pass

    def service_actions(self) -> None:
        """Every pass of the loop: ``run_dequeue()`` each ``check_for_dequeue`` seconds (Net::Server's Multiplex)."""
        super().service_actions()
        every = self._host.config.check_for_dequeue
        if every:
            now = time.monotonic()
            if now - self._last_dequeue >= every:
                self._last_dequeue = now
                self._host.run_dequeue()

    def _next_wait(self, poll_interval: float) -> float:
        if not self._timers:
            return poll_interval
        return max(0.0, min(poll_interval, self._timers[0][0] - time.monotonic()))

    # -- accepting ------------------------------------------------------------------

    def _accept(self, sock: socket.socket, token: Any) -> None:
        stream = sock.type == socket.SOCK_STREAM
        for _ in range(self._accept_burst if stream else 1):
            try:
                request, client_address = self._host.accept_from(token)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if isinstance(request, tuple):
                self._datagram(request, client_address)
                return
            self._open(request, client_address)

    def _open(self, sock: socket.socket, client_address: Any) -> None:
        if not self._admit(sock, client_address):
            self._refused(sock, client_address)
            return
        selector = self._mux_selector
        assert selector is not None  # accepting happens only inside _serve_until_stopped
        sock.setblocking(False)
        connection = Connection(self, sock, True)
        self._connections[connection.fd] = connection
        connection.events = _READ
        selector.register(sock, _READ, connection)
        self._start(connection, client_address)

    def _datagram(self, request: Tuple[bytes, socket.socket], client_address: Any) -> None:
        data, sock = request
        if not self._admit(request, client_address):
            self._refused(request, client_address)  # a datagram's socket is its listener's: left open
            return
        connection = Connection(self, sock, False, client_address)
        self._start(connection, client_address)
        if connection.handler is not None and not connection.closed:
            connection.inbuf += data
            self._call(connection, "mux_input", connection.inbuf)
            if not connection.closed:  # neither failed nor close()d in mux_input
                self._call(connection, "mux_eof", connection.inbuf)
            if not connection.closed:
                # Not _drop: it marks the connection closed before mux_close, and a datagram's
                # mux_close may still answer its sender.
                connection.closing = True  # a close() in mux_close has nothing left to do
                self._end(connection, request)
        connection.closed = True

    def _start(self, connection: Connection, client_address: Any) -> None:
        try:
            connection.handler = self.RequestHandlerClass(connection, client_address, self)
        except Exception:
            self.handle_error(connection.sock, client_address)
            self._drop(connection)
            return
        self._call(connection, "mux_connection")

    # -- connections --------------------------------------------------------------------

    def _ready(self, connection: Connection, mask: int) -> None:
        if mask & _WRITE:
            self._flush(connection)
        if mask & _READ and not connection.closed:
            self._read(connection)

    def _read(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        if not data:
            self._call(connection, "mux_eof", connection.inbuf)
            if connection.outbuf:
                connection.closing = True
                self._update(connection)
            else:
                self._drop(connection)
            return
        connection.inbuf += data
        self._call(connection, "mux_input", connection.inbuf)

    def _flush(self, connection: Connection) -> None:
        try:
            sent = connection.sock.send(connection.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        del connection.outbuf[:sent]
        if not connection.outbuf and connection.closing:
            self._drop(connection)
        else:
            self._update(connection)

    def _update(self, connection: Connection) -> None:
        """Re-register for what the connection waits on: reading unless paused, writing if output is pending."""
        if connection.closed or not connection.stream:
            return
        handler = connection.handler
        pending = len(connection.outbuf)
        if handler is not None:
            if pending > handler.high_water:
                connection.paused = True
            elif connection.paused and pending < handler.low_water:
                connection.paused = False
        events = (0 if connection.paused or connection.closing else _READ) | (_WRITE if pending else 0)
        if events and events != connection.events:
            selector = self._mux_selector
            # An open stream connection is in the loop's selector: the loop drops every one before it ends.
            assert selector is not None
            selector.modify(connection.sock, events, connection)
            connection.events = events

    def _drop(self, connection: Connection) -> None:
        """Close a connection now and call ``mux_close``."""
        if connection.closed:
            return
        connection.closed = True
        sock = connection.sock
        if not connection.stream:  # a datagram's socket is its listener's: it stays open
            self._end(connection, (bytes(connection.inbuf), sock))
            return
        self._connections.pop(connection.fd, None)
        try:
            if self._mux_selector is not None:
                self._mux_selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        self._end(connection, sock, closing=sock)

    def _end(self, connection: Connection, request: Any, closing: Any = None) -> None:
        """Net::Server::Multiplex's end of a connection: ``post_process_request_hook``,
        ``mux_close``, the close (``closing``: a stream's socket), ``post_client_connection_hook``."""
        self._hook(connection, "post_process_request_hook", request)
        self._call(connection, "mux_close")
        if closing is not None:
            self.shutdown_request(closing)
        self._hook(connection, "post_client_connection_hook", request)

    def _hook(self, connection: Connection, name: str, request: Any) -> None:
        """A server hook at a connection's end, for connections the handler was made for; a
        failing one is the connection's error, never the loop's."""
        if connection.handler is None:
            return  # refused, or its handler failed to start: no request was processed
        try:
            getattr(self._host, name)(request)
        except Exception:
            self.handle_error(connection.sock, connection.peer or connection.handler.client_address)

    def _call(self, connection: Connection, name: str, *args: Any) -> None:
        handler = connection.handler
        if handler is None:
            return
        try:
            getattr(handler, name)(*args)
        except Exception:
            self.handle_error(connection.sock, connection.peer or handler.client_address)
            if name != "mux_close":
                self._drop(connection)

    # -- timers ----------------------------------------------------------------------------

    def _arm(self, connection: Connection, deadline: float) -> None:
        heapq.heappush(self._timers, (deadline, connection.fd, id(connection)))

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, fd, ident = heapq.heappop(timers)
            connection = self._connections.get(fd)
            if connection is None or id(connection) != ident or connection.deadline != deadline:
                continue  # closed, replaced, or given a new deadline since
            connection.deadline = None
            self._call(connection, "mux_timeout")


_NOT_A_MUX_HANDLER = "Multiplex serves MuxHandler subclasses (mux_input and friends); %s is not one"


def _runs_handler(handler: Any) -> bool:
    return isinstance(handler, type) and issubclass(handler, MuxHandler)


def _name(handler: Any) -> str:
    return getattr(handler, "__name__", repr(handler))


class Multiplex(MultiplexMixIn, Server):
    """Net::Server's Multiplex over every listener."""
