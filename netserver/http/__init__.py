"""The HTTP personality: an HTTP/1.1 daemon for WSGI apps and CGI scripts.

``netserver HTTP --app ./script.cgi`` serves a CGI script;
``netserver HTTP --app mypkg.web:application`` a WSGI application.  It runs
over any personality (``server_type``; PreFork by default, as
Net::Server::HTTP's default ``server_type`` is) and over any listener,
``ssl`` included.
Subclasses may answer requests themselves by overriding
:meth:`HTTPMixIn.process_http_request`, a WSGI application method.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading

from ..options import Config, Option, OptionError, Source, declared_options
from ..options.validators import import_dotted, to_bool, to_float, to_int, to_optional_str, to_str
from ..personalities.multitype import MultiType, _server_type
from ..personalities.preforksimple import PreForkSimpleMixIn
from ..process.cpuload import usable_cpus
from ..proto.ssl import handshake
from ..version import __version__
from .accesslog import COMBINED, AccessLog, compile_format, named_format
from .apps import DispatchTable, Mount, parse_app
from . import event
from .errors import REASONS
from .handler import HTTPRequestHandler
from .parser import Limits
from .wsgi import FileWrapper, Response, error_body

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["HTTP", "HTTPMixIn", "HTTPRequestHandler"]

if TYPE_CHECKING:
    from ..server import Server

    class _Host(Server):
        """What HTTPMixIn sits on: a ``netserver.Server`` (a MultiType's chosen personality)."""

        def _child_loop(self, slot: int) -> None:
            """PreForkSimpleMixIn's: the only caller of HTTPMixIn's override (pool personalities)."""
else:
    _Host = object


def _app(value: Any) -> Any:
    parse_app(value)  # validate now; mounts are built once all values are known
    return value


def _defer_accept(sockets: List[Any], seconds: int) -> None:
    """``TCP_DEFER_ACCEPT`` on the TCP listeners: the kernel queues a connection for ``accept``
    when its first data arrives (or, silent, after about ``seconds``), so a child's accept finds
    the request there and never parks or blocks on an empty connection. Linux only."""
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is None:
        return
    for sock in sockets:
        if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, option, seconds)


def _http_server_type(value: Any) -> str:
    name = _server_type(value)
    if name == "Multiplex":
        raise ValueError("Multiplex serves MuxHandler callbacks, not the HTTP handler")
    return name


def _access_log_format(value: Any) -> str:
    text = named_format(to_str(value))
    compile_format(text)
    return text


def _function(value: Any) -> Any:
    """A callable (from code), or its name: a method of the server or ``module:function``."""
    if value is None or callable(value):
        return value
    return to_str(value)


class HTTPSettings:
    """Everything a connection handler needs, built once per server."""

    def __init__(self, server: Any):
        config = server.config
        self.limits = Limits(config.max_header_size, config.max_uri_size, config.max_headers,
                             config.max_body_size)
        self.timeout_header = config.timeout_header
        self.timeout_idle = config.timeout_idle
        # Until a connection's first request has begun: the shorter of the two.
        self.timeout_first = min(config.timeout_idle, config.timeout_header)
        self.server_revision = config.server_revision
        function = config.access_log_function
        if isinstance(function, str):  # a method of the server (Net::Server's form) or module:function
            function = getattr(server, function, None) or import_dotted(function)
        try:
            self.access_log = AccessLog(config.access_log_file, config.access_log_format, function) \
                if config.access_log_file or function else None
        except OSError as exc:  # one line naming the option and the file, not a traceback
            raise OptionError("access_log_file", config.access_log_file, config.source_of("access_log_file"),
                              f"cannot open: {exc.strerror}") from None
        self.default_content_type = config.default_content_type
        self.current = threading.local()  # .environ: the request this thread serves (http_note)
        mounts: List[Mount] = []
        for value in config.app:
            mounts.extend(parse_app(value))

        def wrap(target: Any) -> Callable:
            if callable(target):
                return target
            from .cgi import CGIApp  # subprocess and what it loads, only for CGI scripts

            return CGIApp(target, config.timeout_cgi, server.log, server.exec_fork_hook)

        self.dispatch = DispatchTable(mounts, server.process_http_request, wrap)
        # A forking server's scoreboard learns when each request of a kept-alive connection begins.
        self.request_state = server._request_state
        self.multithread = server._personality == "Thread"
        self.multiprocess = server._personality in ("Fork", "PreFork", "PreForkSimple")

    def base_environ(self, conn: Any, client_address: Any, server: Any) -> Dict[str, Any]:
        """The environ keys shared by every request on one connection (over a per-server template)."""
        client = server.client
        local = client.local_address if client is not None else None
        if local is None:
            try:
                local = conn.getsockname()
            except OSError:
                local = ("", 0)
        secure = type(conn).__name__ == "SSLSocket"
        peer = client_address if isinstance(client_address, tuple) else ("", 0)
        remote = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        local_host = local[0] if isinstance(local, tuple) else "localhost"
        base = dict(self._secure_template if secure else self._template)
        base["SERVER_NAME"] = (local_host[7:] if local_host.startswith("::ffff:") else local_host) or "localhost"
        base["SERVER_PORT"] = str(local[1]) if isinstance(local, tuple) else ("443" if secure else "80")
        base["REMOTE_ADDR"] = remote
        base["REMOTE_PORT"] = str(peer[1])
        base["wsgi.errors"] = sys.stderr  # read each time: a log reopen may replace it
        base["netserver.local_addr"] = local_host
        base["netserver.client"] = client
        if client is not None and client.peerhost:
            base["REMOTE_HOST"] = client.peerhost
        return base

    @property
    def _template(self) -> Dict[str, Any]:
        """The keys that never change in this server (built once)."""
        template = self.__dict__.get("_plain")
        if template is None:
            template = self._plain = {
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.multithread": self.multithread,
                "wsgi.multiprocess": self.multiprocess,
                "wsgi.run_once": False,
                "wsgi.input_terminated": True,  # wsgi.input is the whole body: reading to its end is safe
                "wsgi.file_wrapper": FileWrapper,
                "SERVER_SOFTWARE": self.server_revision,
                "GATEWAY_INTERFACE": "CGI/1.1",
            }
        return template

    @property
    def _secure_template(self) -> Dict[str, Any]:
        return dict(self._template, **{"wsgi.url_scheme": "https", "HTTPS": "on"})

    def close(self) -> None:
        if self.access_log is not None:
            self.access_log.close()


class HTTPMixIn(_Host):
    """HTTP over any personality; ``process_http_request`` is the default app."""

    _personality = "HTTP"
    _default_handler = HTTPRequestHandler
    _preload = ("html", "netserver.http.cgi")  # error pages and exec_cgi import them when first used
    _classic_reason: Optional[str] = ""  # why pool children run the classic loop; None: event-driven (configure)

    OPTIONS: Tuple[Option, ...] = (
        Option("app", _app, [], multi=True, section="HTTP", metavar="[PREFIX=]TARGET",
               doc="What answers requests: a CGI script path or a WSGI app module:attribute, "
                   "optionally mounted at PREFIX."),
        Option("access_log_file", to_optional_str, None, section="HTTP", metavar="FILE",
               doc="Access log: a path, STDOUT or STDERR (none by default)."),
        Option("access_log_format", _access_log_format, COMBINED, section="HTTP", metavar="FORMAT",
               doc="Apache LogFormat of the access log, or common or combined (the default, "
                   "as in Net::Server::HTTP)."),
        Option("timeout_header", to_float, 15.0, section="HTTP", metavar="SECONDS",
               doc="Time a client has to send a whole request head (then 408)."),
        Option("timeout_idle", to_float, 60.0, section="HTTP", metavar="SECONDS",
               doc="Time a connection may stay idle between requests or reads."),
        Option("timeout_cgi", to_float, 60.0, section="HTTP", metavar="SECONDS",
               doc="Time a CGI script may run (then 504)."),
        Option("max_header_size", to_int(256), 100_000, section="HTTP", metavar="BYTES",
               doc="Largest request head (then 431)."),
        Option("max_headers", to_int(1), 100, section="HTTP", metavar="N",
               doc="Most header fields in a request (then 431)."),
        Option("max_uri_size", to_int(16), 8192, section="HTTP", metavar="BYTES",
               doc="Longest request target (then 414)."),
        Option("max_body_size", to_int(0), 16 * 1024 * 1024, section="HTTP", metavar="BYTES",
               doc="Largest request body (then 413)."),
        Option("server_revision", to_str, f"netserver/{__version__}", section="HTTP", metavar="TEXT",
               doc="The Server header (empty: none)."),
        # A hung application must not hold a child forever, nor a QUIT wait for ever (gunicorn's 30 s).
        Option("child_timeout", to_float, 30.0, section="Processes", metavar="SECONDS",
               doc="Longest a child may spend on one request (Fork, PreForkSimple, PreFork); then it is "
                   "stopped (TERM, KILL after stop_timeout) and replaced. 0: no limit."),
        Option("graceful_timeout", to_float, 30.0, section="Processes", metavar="SECONDS",
               doc="After QUIT or a HUP, how long children may take to finish their requests before they "
                   "are stopped. 0: no limit."),
        Option("http_event", to_bool, True, section="HTTP", flag=True,
               doc="PreFork/PreForkSimple children wait on many connections at once: a connection takes "
                   "a child only once a whole request has arrived, idle keep-alive connections are parked "
                   "(on by default; --http_event 0 for one connection per child at a time)."),
        # Apache's default on Linux (AcceptFilter http data), nginx's "deferred": HTTP clients speak first.
        Option("defer_accept", to_int(0), 1, section="HTTP", metavar="SECONDS",
               doc="TCP listeners hand a connection to a child only once its first bytes have arrived "
                   "(Linux TCP_DEFER_ACCEPT): no child waits on, or wakes for, a silent client. One that "
                   "stays silent is handed over after about this long (Linux rounds it up to its SYN-ACK "
                   "retransmission times). 0: at once."),
        Option("http_event_connections", to_int(1), 256, section="HTTP", metavar="N",
               doc="With http_event: connections one child holds; past it the longest-idle one is closed."),
        # Net::Server's 5 is for children that each hold one connection; an event-driven child holds
        # many, and more children than CPUs only take turns on them (docs/performance.md, the pool).
        Option("min_servers", to_int(1), None, section="PreFork", metavar="N",
               doc="Children started at once, and the fewest kept: one per CPU when the children are "
                   "event-driven (http_event), else 5. The pool grows when requests are slow.",
               show=lambda v: "CPUs (http_event), else 5" if v is None else str(v)),
        Option("access_log_function", _function, None, section="HTTP", metavar="METHOD",
               doc="Called with each access log line instead of writing access_log_file: a method "
                   "name of the server, a module:function, or a callable from code."),
        Option("default_content_type", to_str, "text/html", section="HTTP", metavar="TYPE",
               doc="Content-Type of the pages send_status, send_400 and send_500 make."),
    )

    def configure(self, run_options: Mapping[str, Any], argv: Optional[Sequence[str]] = None,
                  run_source: Optional[Source] = None) -> Config:
        """Whether the pool's children will be event-driven (decided once, here); ``min_servers``
        left to its default: one child per CPU for them, else PreFork's."""
        config = super().configure(run_options, argv, run_source)
        self._classic_reason = (event.fallback(self) if config.http_event and isinstance(self, PreForkSimpleMixIn)
                                else "")
        if self._classic_reason is None:
            config.set_default("min_servers", min(usable_cpus(), config.max_servers), "(one per CPU)")
        else:  # one connection per child: PreFork's own default (Net::Server's 5)
            from ..personalities.prefork import PreForkMixIn

            config.set_default("min_servers", declared_options(PreForkMixIn)["min_servers"].default)
        return config

    def post_configure(self) -> None:
        super().post_configure()
        self.http = HTTPSettings(self)
        for line in self.http.dispatch.describe():
            self.log(3, line)
        if self._classic_reason:  # http_event asked for, and a reason it cannot be had (once, at start)
            self.log(2, f"http_event: {self._classic_reason}; children serve one connection at a time (classic loop)")

    def post_bind(self) -> None:
        super().post_bind()
        sockets = [listener.socket for listener in self.listeners if listener.socket is not None]
        _defer_accept(sockets, self.config.defer_accept)  # set on inherited listeners too: a HUP may change it
        if self.config.http_event and isinstance(self, PreForkSimpleMixIn):  # before any child accepts
            event.limit_sends(sockets, self.config.timeout_idle)

    def _child_loop(self, slot: int) -> None:
        """A pool child (PreFork, PreForkSimple): event-driven with ``http_event``, else the classic loop."""
        if self._classic_reason is None:
            event.serve(self, slot)
        else:
            super()._child_loop(slot)

    def files_for_user(self) -> List[Any]:
        files = super().files_for_user()
        access_log = self.http.access_log
        if access_log is not None:
            path, fd = access_log.target, access_log.fileno()
            if path is not None and fd is not None:  # a file, not a stream: fchown its descriptor, never the path
                files.append((os.path.abspath(path), fd))
        return files

    def reopen_logs(self) -> None:
        super().reopen_logs()
        access_log = self.http.access_log
        if access_log is None or access_log.stream is None:
            return
        try:
            access_log.reopen()
        except OSError as exc:
            self.log(1, f"Could not reopen the access log {access_log.target}: {exc.strerror or exc}")
            return
        fd = access_log.fileno()
        if self.identity is not None and os.geteuid() == 0 and fd is not None:
            try:
                os.fchown(fd, self.identity.uid, self.identity.gid)
            except OSError as exc:
                self.log(1, f"Could not hand {access_log.target} to {self.identity.user}: {exc.strerror}")

    def server_close(self) -> None:
        super().server_close()
        http = getattr(self, "http", None)
        if http is not None and os.getpid() == self._owner_pid:
            http.close()

    # -- Net::Server::HTTP's helpers ------------------------------------------------------------

    def request_denied_hook(self, request: Any) -> None:
        """A client refused by the access rules gets ``400 Bad Request``, as in Net::Server::HTTP."""
        if isinstance(request, tuple):
            return
        try:
            if type(request) is not socket.socket and hasattr(request, "do_handshake"):
                handshake(request, 5.0)
            status, headers, body = error_body(400)
            response = Response(request, "1.1", False, False, self.http.server_revision)
            response.start_response(status, headers)
            response.send_whole(body)
            # Read what the client already sent, so closing does not reset the connection
            # (and the 400 with it) before the client reads.
            if select.select([request], [], [], 0.2)[0]:
                request.setblocking(False)
                request.recv(65536)
        except (OSError, ValueError):
            pass

    def send_status(self, start_response: Callable, status: int, message: Optional[str] = None,
                    body: Any = None, details: Optional[Sequence[str]] = None,
                    headers: Sequence[Any] = ()) -> List[bytes]:
        """Net::Server::HTTP's ``send_status``: start a response; returns its body.

        In ``process_http_request`` (or any app given the server):
        ``return self.send_status(start_response, 404, details=["no such page"])``.
        ``message`` defaults to the standard reason; with ``details`` and no
        ``body``, a small HTML page names the status and each detail;
        ``default_content_type`` applies when ``headers`` name none.
        """
        message = message or REASONS.get(status, "-")
        if body is None and details is not None:
            import html  # html.entities is a large table; most servers never write this page

            title = message if message != "-" else f"Status {status}"
            paragraphs = "\n".join(f"<p>{html.escape(str(d))}</p>" for d in details)
            body = f"<html>\n<body>\n<h1>{html.escape(title)}</h1>{paragraphs}</body>\n</html>\n"
        data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        headers = list(headers)
        if status not in (204, 304) and not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", self.http.default_content_type))
        start_response(f"{status} {message}", headers + [("Content-Length", str(len(data)))])
        return [data]

    def send_400(self, start_response: Callable, *details: str) -> List[bytes]:
        """``400 Bad Request`` with a page listing ``details`` (Net::Server::HTTP's ``send_400``)."""
        return self.send_status(start_response, 400, details=details)

    def send_500(self, start_response: Callable, *details: str) -> List[bytes]:
        """``500 Internal Server Error`` with a page listing ``details`` (``send_500``)."""
        return self.send_status(start_response, 500, details=details)

    def exec_cgi(self, path: str, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Answer this request with the CGI script ``path`` (Net::Server::HTTP's ``exec_cgi``)."""
        from .cgi import CGIApp

        return CGIApp(path, self.config.timeout_cgi, self.log, self.exec_fork_hook)(environ, start_response)

    def exec_fork_hook(self, pid: int, path: str) -> None:
        """A CGI script ``path`` was started as process ``pid`` (in the process serving the request)."""

    def http_note(self, key: str, *value: Any) -> Any:
        """Get or set (``http_note(key, value)``) a note on the current request; ``%{key}n`` logs it."""
        environ = getattr(self.http.current, "environ", None)
        if environ is None:
            raise RuntimeError("http_note: no request is being served in this thread")
        notes = environ.setdefault("netserver.notes", {})
        if value:
            notes[key] = value[0]
            return value[0]
        return notes.get(key)

    def process_http_request(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The app when no ``app`` is configured: a page showing the request (Net::Server's demo)."""
        import html

        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>\n"
                       for k, v in sorted(environ.items()) if k.isupper())
        body = (f"<html><head><title>netserver</title></head><body><h1>netserver HTTP</h1>"
                f"<p>Serve your own application with --app.</p><table>\n{rows}</table></body></html>\n")
        data = body.encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(data)))])
        return [data]


class HTTP(HTTPMixIn, MultiType):
    """Net::Server::HTTP: WSGI and CGI over the personality named by ``server_type``."""

    OPTIONS: Tuple[Option, ...] = (
        Option("server_type", _http_server_type, ["PreFork"], multi=True, section="HTTP", metavar="NAME",
               doc="Personality the HTTP server runs as (PreFork by default); repeat for fallbacks."),
    )

    def configure(self, run_options: Mapping[str, Any], argv: Optional[Sequence[str]] = None,
                  run_source: Optional[Source] = None) -> Config:
        """With no ``port`` anywhere: 8080, or 80 when started as root (``net-server http``'s choice)."""
        config = super().configure(run_options, argv, run_source)
        if config.source_of("port").kind == Source.DEFAULT:
            config._values["port"] = [80 if os.geteuid() == 0 else 8080]
        return config

    @classmethod
    def available(cls) -> bool:
        return True

