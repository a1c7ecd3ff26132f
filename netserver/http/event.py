"""Event-driven HTTP children: one process waits on many connections, serves one request at a time.

With ``http_event`` a PreFork or PreForkSimple HTTP child does not give
itself to one connection until it closes.  It keeps every connection it has
accepted in one ``epoll`` set with the listeners (Apache's event MPM, in one
thread):

- a connection takes the child only once a complete request has arrived
  (head, and body if any); a client that trickles its head (slowloris) or
  says nothing holds a few hundred bytes of memory, not a process, until
  ``timeout_header`` (then 408, or a silent close for a connection that
  never started a request);
- after a response an idle keep-alive connection is parked in the set until
  its next request or ``timeout_idle``;
- a child holds at most ``http_event_connections`` connections: when a new
  one arrives at that limit the longest-idle parked connection is closed
  first (HTTP lets a server close an idle connection); with none idle the
  child stops accepting until one ends, so other children take the new ones;
- the WSGI app still runs synchronously, one request at a time in the
  process: existing apps need nothing.

New connections are accepted one per wake-up, so that ``EPOLLEXCLUSIVE``
spreads them over the children instead of the first awake child taking the
whole queue.  A TLS connection's handshake runs in the same loop, without
blocking (bounded by ``SSL_handshake_timeout`` and ``timeout_header``), so a
client that connects and says nothing holds no process; its requests are
then read like plain ones (draining the plaintext OpenSSL already holds,
which epoll cannot see).  Datagrams are served the classic way; with
``proxy_protocol`` the classic loop is used throughout.
"""

from __future__ import annotations

import select
import socket
import struct
import time

from ..process.child import EXCLUSIVE, ORPHAN_CHECK, PoolChild
from ..process.scoreboard import BRIEF, IDLE, client_text
from .errors import HTTPError
from .handler import body_deadline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

__all__ = ["fallback", "serve", "limit_sends"]

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_RECV = 65536
_TICK = 0.25  # seconds between deadline scans
_GRACE = 1.0  # seconds a retiring child leaves an idle keep-alive connection for its next request
_BATCH = 16  # connections one wake-up may accept while each is answered at once
_WAITED = 0.002  # seconds: a request read this soon after the last one ended was waiting for it
# Seconds: a request that waited in the same wake-up behind one this long moves to an idle child
# (on loopback or from a local proxy reconnecting costs less); over TLS a reconnection is a new
# handshake, so only behind one of BRIEF. One read just after a request of BRIEF or more ended
# (within _WAITED) counts as having waited too: it most likely came in while that one ran.
_HAND_OVER = 0.001


def fallback(server: Any) -> Optional[str]:
    """Why the classic loop serves instead, or None: the event loop needs epoll and non-blocking
    reads, no PROXY header to read first, no client on stdio, and a handler whose connection loop
    it may replace (a subclass overriding ``handle`` keeps the classic loop)."""
    from .handler import HTTPRequestHandler

    handler = server.RequestHandlerClass or server._default_handler  # None when configure() comes before run()
    if not hasattr(select, "epoll") or not _DONTWAIT:
        return "no epoll on this system"
    if server.config.proxy_protocol != "off":
        return "proxy_protocol reads a PROXY header first"
    if not server.config.no_client_stdout:
        return "no_client_stdout 0 ties stdio to one connection"
    if not (isinstance(handler, type) and issubclass(handler, HTTPRequestHandler)
            and handler.handle is HTTPRequestHandler.handle
            and handler._next_request is HTTPRequestHandler._next_request):
        return "the request handler overrides handle()"
    return None


class _Connection:
    """One accepted connection: its handler (reader, settings, environ template) and its deadline."""

    __slots__ = ("sock", "fd", "handler", "client", "deadline", "idle", "head_started", "expiry", "since",
                 "parked", "label", "tls", "handshaking", "body_started", "received", "listener", "writer")

    def __init__(self, sock: Any, handler: Any, client: Any, now: float, timeout: float):
        self.sock = sock
        self.fd = sock.fileno()
        self.handler = handler
        self.client = client
        self.idle = True  # no request started: may be closed when the child needs room
        self.head_started = 0.0
        self.since = now  # last activity: the longest-idle connection is closed first
        self.deadline = now + timeout
        self.expiry = "close"  # what the deadline does: "close" silently or answer "408"
        self.parked = False  # in the epoll set (only once it has had to wait)
        self.label = client_text(handler.client_address)  # for the scoreboard
        self.tls = type(sock) is not socket.socket  # an SSLSocket: no recv flags, buffered plaintext
        self.handshaking = False
        self.listener: Any = None  # TLS: the listener it came from, for the access check after the handshake
        # What responses are written to: TLS in timeout mode already has a total deadline per sendall.
        self.writer = sock if self.tls else _Writer(sock, handler.http.timeout_idle)
        self.body_started = 0.0  # when the current request's body began (its deadline: see _waiting)
        self.received = 0  # body bytes since


class EventChild:
    """The loop of one child; see the module docstring.

    The child's own state (retire/drain flags, a USR1 to act on, its request
    budget, its parent, the listeners it accepts from) is the pool's
    :class:`~netserver.process.child.PoolChild`, which the signal handlers
    set; this loop adds the connections it holds.
    """

    def __init__(self, server: Any, slot: int):
        child: PoolChild = server._child
        self.server = server
        self.child = child
        self.slot = slot
        self.board = child.board
        self.http = server.http
        self.capacity = server.config.http_event_connections
        self.connections: Dict[int, _Connection] = {}
        self.poller = select.epoll()
        self.listeners: Dict[int, Any] = dict(child.by_fd)  # listening fd -> token
        self.accepting = False
        self.accepted = 0
        self.last_took = 0.0  # seconds the last request took: what a request served after it waited
        self.queued = False  # a request was served in this wake-up (see _HAND_OVER)
        self.last_fd = -1  # the connection the last request came on
        self.last_end = 0.0  # when it was answered (monotonic)

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        child, board, slot = self.child, self.board, self.slot
        wakeup, listeners = child.wakeup, self.listeners
        assert wakeup is not None  # the pool child's, made before the loop
        self._accept(True)
        self.poller.register(wakeup.fileno(), _IN)
        connections = self.connections
        next_scan = time.monotonic() + _TICK
        deferred = False  # a new connection was left to an idle sibling last turn
        child.note_took(0.0)  # until a request is long: busy for a moment counts as spare
        board.set_state(slot, IDLE)
        while True:
            if child.retire:  # a signal, the parent's end, or the budget's last connection (take_last)
                self._accept(False)
                self._close_idle()
                if not connections:
                    break
            events = self.poller.poll(_TICK if connections else ORPHAN_CHECK)
            if not events and not connections:
                child.parent_gone()  # an orphan retires rather than linger
            served = arrived = False  # this child's own connections; a new one waiting on a listener
            self.queued = False
            for fd, _ in events:
                connection = connections.get(fd)
                if connection is not None:
                    served = True
                    if connection.handshaking:
                        self._handshake(connection)
                    else:
                        self._readable(connection)
                elif fd in listeners:
                    arrived = True  # taken after this child's own
                else:
                    wakeup.drain()
                    child.reopen_logs_if_asked()
            # A child that has just served its own connections leaves a new one to an idle sibling
            # (the arrival woke it); the new connection would otherwise wait behind them, and stay
            # with this child (a kept-alive connection does not move). Once only: if no sibling has
            # taken it by the next turn (one that is full, stopped, hung), this child does.
            if arrived and self.accepting:
                deferred = not deferred and served and board.idle_sibling(slot)
                if not deferred:
                    for fd, _ in events:
                        if fd in listeners:
                            self._take(listeners[fd])
            else:
                deferred = False
            now = time.monotonic()
            if now >= next_scan:
                next_scan = now + _TICK
                self._expire(now)
        child.close()  # EXITING; after QUIT, what is queued is served the classic way
        self.poller.close()

    def _accept(self, on: bool) -> None:
        """Start or stop waiting on the listeners."""
        if on == self.accepting:
            return
        self.accepting = on
        for fd in self.listeners:
            if on:
                self.poller.register(fd, _IN | EXCLUSIVE)
            else:
                self.poller.unregister(fd)

    # -- connections ---------------------------------------------------------------------

    def _take(self, token: Any) -> None:
        """Accept connections while each is answered at once; stop at the first that must wait.

        A connection whose request came with it (``Connection: close`` clients)
        is served and closed right here, as the classic loop would; one that
        has to wait is parked, and the rest of the queue is left to the next
        wake-up, so that ``EPOLLEXCLUSIVE`` spreads waiting connections over
        the children.
        """
        for _ in range(_BATCH):
            connection = self._accept_one(token)
            if connection is None or connection.fd in self.connections or not self.accepting:
                return

    def _accept_one(self, token: Any) -> Optional[_Connection]:
        server = self.server
        try:
            request, client_address = server._host.accept_from(token)
        except OSError:
            return None  # the queue is empty, another child took it, or the peer gave up
        self.accepted += 1
        if self.child.exhausted(self.accepted):
            self.child.take_last()  # the successor may start now; this one is answered with Connection: close
        tls = type(request) is not socket.socket
        if tls and not hasattr(request, "do_handshake"):  # a datagram: the classic way, start to end
            self._classic(request, client_address)
            return None
        listener = server._current_listener
        # A TLS connection is checked once its handshake is done (in this loop), so that a refused
        # client's 400 (request_denied_hook) never waits on a handshake a silent client never sends.
        if not tls and not server.verify_request(request, client_address):
            server.shutdown_request(request)
            return None
        cls = server.RequestHandlerClass
        handler = cls.__new__(cls)
        handler.request, handler.client_address, handler.server = request, client_address, server
        handler.event_driven = True
        handler.setup()
        timeout = self.http.timeout_first
        if tls:  # the handshake, in this loop: a silent client holds no process
            timeout = min(timeout, getattr(listener, "handshake_timeout", timeout))
        connection = _Connection(request, handler, None if tls else server.client, time.monotonic(), timeout)
        self.connections[connection.fd] = connection
        if tls:
            request.setblocking(False)
            connection.handshaking = True
            connection.listener = listener
            self._handshake(connection)
            return connection
        handler._base_environ()  # while server.client is this connection's
        self._readable(connection)  # the request usually came with the connection
        return connection

    def _handshake(self, connection: _Connection) -> None:
        """One step of a TLS handshake; parked for the direction OpenSSL waits for."""
        import ssl  # loaded already: the connection is an SSLSocket (see _recv_tls)

        sock = connection.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._park(connection, _IN)
            return
        except ssl.SSLWantWriteError:
            self._park(connection, _OUT)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a bad client, a reset
            self.server.log(3, f"TLS handshake with {connection.label.decode('ascii', 'replace')} failed: {exc}")
            self._close(connection)
            return
        connection.handshaking = False
        server = self.server
        sock.settimeout(1.0)  # the access hooks, and a refusal page, write blocking (briefly)
        server.serving_from(connection.listener)  # what the client info describes
        try:
            allowed = server.verify_request(sock, connection.handler.client_address)
        except Exception:  # verify_request logs its own failures; this is a broken override
            allowed = False
        if not allowed:
            self._close(connection)
            return
        connection.client = server.client
        try:
            sock.setblocking(False)
        except OSError:
            self._close(connection)
            return
        connection.deadline = time.monotonic() + self.http.timeout_first
        if connection.parked:
            self.poller.modify(connection.fd, _IN)
        connection.handler._base_environ()
        self._readable(connection)  # the request often follows the handshake at once

    def _classic(self, request: Any, client_address: Any) -> None:
        self.board.serving(self.slot, self.accepted, client_text(client_address))
        self.server._handle_connection(request, client_address)
        self.board.set_state(self.slot, IDLE)

    def _make_room(self, newest: _Connection) -> bool:
        """Over capacity: close the longest-idle connection (not ``newest``); False when none is idle."""
        idle = [c for c in self.connections.values() if c.idle and c is not newest]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.since))
        return True

    def _readable(self, connection: _Connection) -> None:
        sock = connection.sock
        try:
            data = _recv_tls(sock) if connection.tls else sock.recv(_RECV, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            if not connection.parked:
                self._waiting(connection, time.monotonic())
            return
        except (OSError, ValueError):
            self._close(connection)
            return
        handler = connection.handler
        reader = handler.reader
        if not data:
            self._close(connection)  # between requests, or mid-request: nothing to answer
            return
        now = time.monotonic()
        connection.since = now
        if not reader.mid_request:
            connection.head_started = now
        elif connection.body_started:
            connection.received += len(data)
        try:
            done = reader.feed(data)
        except HTTPError as error:
            self._refuse(connection, error)
            return
        if not done:
            self._waiting(connection, now)
            return
        server, board = self.server, self.board
        before = self.last_took  # what this request may have waited for
        waited = (before >= BRIEF and now - self.last_end < _WAITED) or (
            self.queued and before >= _HAND_OVER and not connection.tls)
        if waited and self.last_fd != connection.fd \
                and self.last_fd in self.connections and len(done) == 1 and not reader.mid_request \
                and board.idle_sibling(self.slot):
            # This request waited for another connection's request in this child (see _HAND_OVER)
            # while another child is idle: this response closes, and the client's next connection
            # goes to the idle child (a kept-alive connection cannot move). Never with more sent
            # behind the request (pipelined): closing would drop it. Clients that take turns without
            # waiting, and fast apps, never pay this.
            done[0].keep_alive = False
        board.serving(self.slot, self.accepted, connection.label)
        server.client = connection.client
        if connection.tls:
            sock.settimeout(self.http.timeout_idle)  # responses are written blocking, as plain ones
        if len(done) == 1:
            try:
                keep = handler._serve(connection.writer, done[0])
            except OSError:
                keep = False
        else:  # pipelined: in order, until one ends the connection
            pending = handler.pending
            pending.extend(done)
            keep = True
            while pending and keep:
                try:
                    keep = handler._serve(connection.writer, pending.pop(0))
                except OSError:
                    keep = False
        board.set_state(self.slot, IDLE)
        after = self.last_end = time.monotonic()
        self.last_fd = connection.fd
        self.queued = True  # connections still to be read in this wake-up have waited for this one
        self.last_took = after - now
        self.child.note_took(self.last_took)
        if connection.tls and keep:
            try:
                sock.setblocking(False)
            except OSError:
                keep = False
        if keep:
            try:
                reader.check()  # a bad request pipelined after good ones
            except HTTPError as error:
                self._refuse(connection, error)
                return
        if not keep or self.child.retire:
            self._close(connection)
            return
        connection.body_started = 0.0  # a pipelined request's body is timed from now
        self._waiting(connection, after)  # after the app: it may have taken long

    def _waiting(self, connection: _Connection, now: float) -> None:
        """Set what the connection waits for, and until when; park it in the epoll set."""
        if not connection.parked:
            self._park(connection)
        reader = connection.handler.reader
        http = self.http
        current = reader.current
        if current is None:  # between requests: a parked keep-alive connection
            connection.body_started = 0.0
            connection.idle = True
            connection.expiry = "close"
            connection.deadline = now + (http.timeout_idle if connection.handler.served
                                         else http.timeout_first)
            return
        connection.idle = False
        connection.expiry = "408"
        if reader.in_headers:
            connection.deadline = connection.head_started + http.timeout_header
        else:
            if current.expect_continue and not current.continued:
                current.continued = True
                try:
                    _send_small(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
                except (OSError, ValueError):
                    self._close(connection)
                    return
            if not connection.body_started:
                connection.body_started, connection.received = now, 0
            # The body: timeout_idle per read, and whole by its deadline (handler.body_deadline).
            connection.deadline = min(now + http.timeout_idle,
                                      body_deadline(connection.body_started, connection.received, http.timeout_idle))

    def _park(self, connection: _Connection, events: int = _IN) -> None:
        if connection.parked:
            self.poller.modify(connection.fd, events)
            return
        connection.parked = True
        self.poller.register(connection.fd, events)
        if len(self.connections) > self.capacity and not self._make_room(connection):
            self._accept(False)  # full of busy connections: let the other children take new ones

    def _expire(self, now: float) -> None:
        for connection in [c for c in self.connections.values() if c.deadline <= now]:
            if connection.expiry == "408":
                self._refuse(connection, HTTPError(408, "request not complete within the timeout"))
            else:
                self._close(connection)

    def _close_idle(self) -> None:
        """Retiring: an idle connection gets a short grace for its next request (answered with
        Connection: close), so a client that is sending it now is not cut off."""
        cutoff = time.monotonic() + _GRACE
        for connection in self.connections.values():
            if connection.idle and connection.deadline > cutoff:
                connection.deadline = cutoff

    def _refuse(self, connection: _Connection, error: HTTPError) -> None:
        self.server.client = connection.client
        connection.sock.settimeout(1.0)  # an error page is small: do not wait long for a slow reader
        connection.handler._refuse(connection.sock, error)
        self._close(connection)

    def _close(self, connection: _Connection) -> None:
        """End a connection with the steps socketserver's process_request ends it with."""
        if self.connections.pop(connection.fd, None) is None:
            return
        server = self.server
        sock = connection.sock
        if connection.parked:
            try:
                self.poller.unregister(connection.fd)
            except OSError:
                pass
        if connection.client is None:  # a TLS connection not yet through its handshake and access check
            server.shutdown_request(sock)
            return
        server.client = connection.client
        try:
            server.post_process_request_hook(sock)
        finally:
            server.shutdown_request(sock)
            server.post_client_connection_hook(sock)
        if not self.accepting and not self.child.retire:
            self._accept(True)  # room again


class _Writer:
    """A plain connection as responses see it: ``sendall`` with a total deadline.

    The socket stays blocking (reads use ``MSG_DONTWAIT``), and ``SO_SNDTIMEO``
    bounds each system call only, so a client reading a trickle could hold
    the child for as long as it keeps reading.  Here the first ``send`` is
    non-blocking (the usual case: it takes everything, one system call as
    before); what is left must be taken within ``timeout_idle``, else
    ``TimeoutError`` ends the connection.  ``sendfile`` keeps the per-call
    bound.
    """

    __slots__ = ("sock", "seconds")

    def __init__(self, sock: Any, seconds: float):
        self.sock = sock
        self.seconds = seconds

    def sendall(self, data: Any) -> None:
        try:
            sent = self.sock.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):
            self._rest(memoryview(data)[sent:])

    def _rest(self, view: Any) -> None:
        sock = self.sock
        deadline = time.monotonic() + self.seconds if self.seconds > 0 else None
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        while view:
            wait = -1 if deadline is None else (deadline - time.monotonic()) * 1000
            if deadline is not None and wait <= 0:
                raise TimeoutError("the client did not take the response within timeout_idle")
            if not poller.poll(wait):
                continue
            try:
                view = view[sock.send(view, _DONTWAIT):]
            except (BlockingIOError, InterruptedError):
                continue

    def sendfile(self, file: Any, offset: int = 0, count: Any = None) -> int:
        return self.sock.sendfile(file, offset, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _recv_tls(sock: Any) -> bytes:
    """Read what a non-blocking TLS connection has: one record, then whatever OpenSSL already
    decrypted (``pending``), which epoll cannot report because it left the kernel already.

    OpenSSL's "want read/write" comes out as BlockingIOError, as from a plain socket.  (ssl is
    imported here, not with the module: it is loaded already wherever a TLS socket exists, and a
    server without TLS listeners should not carry its libraries into every child.)"""
    try:
        data = sock.recv(_RECV)
        if data and sock.pending():
            chunks = [data]
            while sock.pending():
                chunks.append(sock.recv(_RECV))
            data = b"".join(chunks)
    except OSError as exc:  # ssl.SSLError is one; looked up only here, not per read
        import ssl

        if isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError)):
            raise BlockingIOError from None
        raise
    return data


def _send_small(connection: _Connection, data: bytes) -> None:
    """A few bytes (``100 Continue``) on a connection that may be non-blocking (TLS)."""
    sock = connection.sock
    if connection.tls:
        sock.settimeout(1.0)
        try:
            sock.sendall(data)
        finally:
            sock.setblocking(False)
    else:
        sock.sendall(data)


def limit_sends(sockets: Any, seconds: float) -> None:
    """``SO_SNDTIMEO`` on the listeners, inherited by every connection accepted from them: a
    blocking send to a client that stops reading gives up after ``seconds`` (``timeout_idle``).

    Set by the parent right after binding, before any child accepts: a connection inherits the
    option when its handshake completes, which may be before the child that accepts it starts.
    """
    value = _timeval(seconds)
    if value is None:
        return
    for sock in sockets:
        if sock.type == socket.SOCK_STREAM:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
            except OSError:
                pass


def _timeval(seconds: float) -> Any:
    """``SO_SNDTIMEO``'s struct timeval, or None for no limit."""
    if seconds <= 0:
        return None
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1e6))


def serve(server: Any, slot: int) -> None:
    """Run an event-driven HTTP child in pool slot ``slot`` until it retires."""
    EventChild(server, slot).run()

