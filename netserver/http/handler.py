"""The HTTP connection: read requests, dispatch them, write responses, keep alive.

One handler serves one connection: persistent and pipelined requests in
order, ``Expect: 100-continue``, the header timeout (408) and the idle
timeout (close), and a status with a closed connection for anything the
parser refuses — never a traceback to the client or a hung worker.
"""

from __future__ import annotations

import select
import socket
import socketserver
import time

from ..engine import StopNow
from .errors import HTTPError
from .parser import Request, RequestReader
from .body import BodyBuffer
from .wsgi import Response, build_environ, error_body, run_app
from .accesslog import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

    from . import HTTPMixIn

__all__ = ["HTTPRequestHandler"]

_RECV = 65536
# A request body must arrive whole within timeout_idle, plus a second for every BODY_RATE bytes
# received: a client sending a byte every few seconds is cut off, a large upload at a fair rate
# is not (issue 14: a per-read timeout alone let one byte every 3 s hold a worker for ever).
BODY_RATE = 65536


def body_deadline(started: float, received: int, timeout_idle: float) -> float:
    """When a body that began arriving at ``started`` and has brought ``received`` bytes must be whole."""
    return started + timeout_idle + received / BODY_RATE


class _Timeout(Exception):
    pass


class HTTPRequestHandler(socketserver.BaseRequestHandler):
    """Serves HTTP/1.0 and 1.1 on one connection for the HTTP personality.

    Where a process serves one connection at a time (PreFork, PreForkSimple,
    Single), a keep-alive connection gives its process up to queued clients:
    every ``yield_after`` requests its response says ``Connection: close``
    if someone is waiting, and it is closed after ``yield_idle`` idle seconds
    while someone is waiting.
    """

    yield_after = 100
    yield_idle = 1.0
    event_driven = False  # set on handlers of netserver.http.event's loop: nothing blocks, nothing to yield
    server: "HTTPMixIn"  # the HTTP personality's server: its ``http`` settings, ``log``
    _base: Optional[Dict[str, Any]] = None  # this connection's environ keys (_base_environ)

    def setup(self) -> None:
        server = self.server
        self.http = server.http  # the server's HTTP settings (apps, limits, logs)
        self.reader = RequestReader(self.http.limits, BodyBuffer)
        self.pending: List[Request[BodyBuffer]] = []
        self.served = 0
        self.idle_poll: Optional[select.poll] = None
        self._idle_poll_known = self.event_driven  # built on first need: a one-request connection never is

    def _idle_poller(self) -> Optional[select.poll]:
        """The poll set of this connection and the listeners, or None where no client can queue for us."""
        if not self._idle_poll_known:
            self._idle_poll_known = True
            waiting = self.server._waiting_clients_sockets()
            if waiting:
                # A process serves one connection at a time: an idle keep-alive connection must not
                # starve clients queued on the listener (Apache prefork's KeepAliveTimeout problem).
                self.idle_poll = poll = select.poll()
                poll.register(self.request, select.POLLIN)
                for sock in waiting:
                    poll.register(sock, select.POLLIN)
        return self.idle_poll

    def handle(self) -> None:
        conn = self.request
        http = self.http
        while True:
            try:
                request = self._next_request(conn, http)
            except _Timeout:
                return
            except HTTPError as error:
                self._refuse(conn, error)
                return
            except (ConnectionError, OSError):
                return
            if request is None:
                return
            if self.served:
                http.request_state(True)  # child_timeout counts this request, not the wait before it
            if not self._serve(conn, request):
                return
            http.request_state(False)

    # -- reading -------------------------------------------------------------

    def _next_request(self, conn: Any, http: Any) -> Optional[Request[BodyBuffer]]:
        """The next complete request, or None when the client closed between requests."""
        if self.pending:
            return self.pending.pop(0)
        reader = self.reader
        reader.check()
        deadline = None
        body_started = 0.0
        received = 0
        while True:
            current = reader.current
            if current is not None and not reader.in_headers:
                # Head complete, body still coming: timeout_idle per read, and the whole body by
                # its deadline (see body_deadline).
                if current.expect_continue and not current.continued:
                    current.continued = True
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                now = time.monotonic()
                if not body_started:
                    body_started, received = now, 0
                remaining = body_deadline(body_started, received, http.timeout_idle) - now
                if remaining <= 0:
                    raise HTTPError(408, "request body not complete in time")
                _set_timeout(conn, min(remaining, http.timeout_idle))
            elif current is not None:
                if deadline is None:
                    deadline = time.monotonic() + http.timeout_header
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HTTPError(408, "request head not complete within timeout_header")
                _set_timeout(conn, min(remaining, http.timeout_idle))
            elif self.served and (poll := self._idle_poller()) is not None and not _has_pending(conn):
                self._wait_idle(conn, http.timeout_idle, poll)
            else:
                # A new connection that says nothing gets timeout_header, not the idle allowance
                # of a keep-alive one (browsers' preconnects, slowloris).
                _set_timeout(conn, http.timeout_idle if self.served else http.timeout_first)
            try:
                data = conn.recv(_RECV)
            except socket.timeout:
                if reader.mid_request:
                    raise HTTPError(408, "request not complete in time") from None
                raise _Timeout() from None
            if not data:
                if reader.mid_request:
                    raise ConnectionError("client closed mid-request")
                return None
            if body_started:
                received += len(data)
            done = reader.feed(data)
            if done:
                self.pending.extend(done[1:])
                return done[0]

    def _wait_idle(self, conn: Any, timeout: float, poll: select.poll) -> None:
        """Wait for the next request; give the process up if it idles while others queue.

        The connection is closed (it is idle: HTTP allows it) only after
        ``yield_idle`` seconds without a request while a client waits on a
        listener, so a client already sending its next request is not cut off.
        """
        if conn.gettimeout() is not None:
            conn.settimeout(None)  # a system call: only when it changes
        fd = conn.fileno()
        deadline = time.monotonic() + timeout
        while True:
            events = poll.poll(max(deadline - time.monotonic(), 0) * 1000)
            if not events:
                raise _Timeout()
            for ready, _ in events:
                if ready == fd:
                    return
            if select.select([conn], [], [], self.yield_idle)[0]:
                return
            if self._clients_waiting(poll):
                raise _Timeout()  # idle while a client has waited yield_idle seconds: yield to it
            # Another process or thread took that client: go on waiting.

    def _clients_waiting(self, poll: select.poll) -> bool:
        events = poll.poll(0)
        fd = self.request.fileno()
        return any(ready != fd for ready, _ in events)

    def _refuse(self, conn: Any, error: HTTPError) -> None:
        """Answer a request the server will not serve, then close."""
        self.server.log(3, f"HTTP {error.status} to {self.client_address!r}: {error.detail}")
        status, headers, body = error_body(error.status)
        response = Response(conn, "1.1", False, False, self.http.server_revision)
        response.start_response(status, headers)
        try:
            response.send_whole(body)
        except OSError:
            pass
        if self.http.access_log is not None:
            record = Record()
            record.environ = {"REMOTE_ADDR": _peer(self.client_address)}
            record.status = error.status
            record.sent = response.sent
            record.start = record.end = time.time()
            record.request_line = "-"
            self.http.access_log.write(record)

    # -- serving -------------------------------------------------------------------

    def _serve(self, conn: Any, request: Request[BodyBuffer]) -> bool:
        """Run the app for one request; returns whether the connection stays open."""
        http = self.http
        self.served += 1
        started = time.time() if http.access_log is not None else 0.0
        target = request.target
        if target[:1] != b"/":
            target = _origin_form(target)
        path, _, query = target.partition(b"?")
        app, script_name, path_info = http.dispatch(path)
        body = request.body
        try:
            return self._run_request(conn, request, body, app, script_name, path_info, query, started)
        finally:
            body.close()  # a spooled upload's memory goes back now, not when the connection ends

    def _run_request(self, conn: Any, request: Request[BodyBuffer], body: BodyBuffer, app: Any, script_name: str,
                     path_info: bytes, query: bytes, started: float) -> bool:
        http = self.http
        environ = build_environ(request, self._base_environ(), script_name, path_info, query, body.reader(),
                                len(body))
        http.current.environ = environ  # the server's http_note() reaches this request
        keep_alive = request.keep_alive and not self.pending_close()
        if keep_alive and self.served % self.yield_after == 0 and (poll := self._idle_poller()) is not None \
                and self._clients_waiting(poll):
            keep_alive = False  # others queue for this process: end this connection cleanly
        response = Response(conn, request.version, request.method == b"HEAD", keep_alive, http.server_revision)
        stopped: Optional[StopNow] = None
        try:
            run_app(app, environ, response)
        except HTTPError as error:
            self._app_failed(response, error.status, error.detail)
        except (ConnectionError, socket.timeout):
            return False
        except StopNow as stop:  # TERM mid-request in a serving process that handles it: answer, then stop
            stopped = stop
            try:
                self._app_failed(response, 503, "the request was stopped by TERM (a quick stop)")
            except OSError:
                response.wants_close = True  # the client is gone: the record and the stop still follow
        except Exception:
            import traceback  # preloaded where a chroot or privilege drop would hide it later

            self._app_failed(response, 500, traceback.format_exc().rstrip())
        if response.mismatch is not None:
            self.server.log(1, f"HTTP {environ['REQUEST_METHOD']} {environ['REQUEST_URI']} for "
                               f"{self.client_address!r}: {response.mismatch}")
        if http.access_log is not None:
            record = Record()
            record.environ = environ
            record.status = response.code
            record.response_headers = response.headers
            record.sent = response.sent
            record.head_size = response.head_size
            record.received = len(body)
            record.start = started
            record.end = time.time()
            record.request_line = f"{environ['REQUEST_METHOD']} {environ['REQUEST_URI']} {environ['SERVER_PROTOCOL']}"
            record.keep_alive = keep_alive and not response.wants_close
            http.access_log.write(record)
        if stopped is not None:
            raise stopped
        return keep_alive and not response.wants_close

    def pending_close(self) -> bool:
        """Stop keeping connections alive once the server is stopping or the child retiring."""
        return self.server._retiring()

    def _app_failed(self, response: Response, status: int, detail: str) -> None:
        self.server.log(1, f"HTTP {status} for {self.client_address!r}: {detail}")
        if response.head_sent:
            response.wants_close = True  # too late for a status: cut the response short
            return
        response.status = None
        response.keep_alive = False
        line, headers, body = error_body(status)
        response.start_response(line, headers)
        response.send_whole(body)

    def _base_environ(self) -> Dict[str, Any]:
        """The keys that are the same for every request on this connection (computed once)."""
        base = self._base
        if base is None:
            base = self._base = self.http.base_environ(self.request, self.client_address, self.server)
        return base


def _set_timeout(conn: Any, timeout: float) -> None:
    """``settimeout`` costs a system call when the blocking mode changes: skip it when nothing changes."""
    if conn.gettimeout() != timeout:
        conn.settimeout(timeout)


def _has_pending(conn: Any) -> bool:
    """TLS may hold decrypted bytes the kernel no longer reports as readable."""
    pending = getattr(conn, "pending", None)
    return bool(pending and pending())


def _peer(client_address: Any) -> str:
    if isinstance(client_address, tuple):
        address = client_address[0]
        return address[7:] if address.startswith("::ffff:") else address
    return ""


def _origin_form(target: bytes) -> bytes:
    """``http://host/path?q`` → ``/path?q`` (absolute-form, RFC 9112 3.2.2); ``*`` → ``*``."""
    if target == b"*":
        return target
    rest = target.split(b"://", 1)[1]
    slash = rest.find(b"/")
    return rest[slash:] if slash >= 0 else b"/"


