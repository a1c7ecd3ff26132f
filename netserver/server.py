"""The base personality: Net::Server's flow on top of ``socketserver.BaseServer``.

``Server`` keeps every socketserver name with its socketserver meaning
(``serve_forever``, ``shutdown``, ``handle_request``, ``verify_request``,
``process_request``, ``finish_request``, ``server_close``, the context
manager…) and adds what Net::Server has: options from five sources, any
number of listeners of any protocol served together, access control, a
pluggable log, hooks at every step and signals handled in the loop.

The Net::Server flow is :meth:`Server.run`; the socketserver flow is the
constructor followed by ``serve_forever()``.  Both go through the same steps.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
from types import FunctionType, MappingProxyType

from . import access, privileges, proxy
from .client import ClientInfo
from .clientstdio import ClientStdio
from .binding import BindingMixIn
from .engine import Engine, ServerError
from .hooks import HookMixIn, positional_parameters
from .log import LogConfigError, ServerLog
from .options import Config, Option, OptionError, Source, declared_options, merge, normalize_template, parse_argv, read_conf_file
from .options import core
from .options.sources import entries_from_mapping
from .proto import UNIX, Listener, protocol_options
from .proto.ssl import handshake
from . import configcheck, restart, systemd
from .restart import RestartMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

    from . import daemon  # imported where pid_file, background and setsid ask for it (fcntl)
    from .options.sources import Entry

__all__ = ["Server", "Single", "ServerError"]


class _Flow:
    """Lets ``run`` be called on the class (Net::Server style) or on an instance."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj, cls):
        func = self.func
        if obj is not None:
            return func.__get__(obj, cls)

        def run(handler=None, **options):
            server = cls(None, handler, bind_and_activate=False)
            if sys._getframe(1).f_globals.get("__name__") != "__main__":
                return func(server, **options)
            try:  # the program's entry point: a bad option or a failed start is one line, not a trace
                return func(server, **options)
            except (OptionError, ServerError) as exc:
                _exit_with(exc, server)

        run.__doc__ = func.__doc__
        return run


def _returning_the_template(options: Any) -> Any:
    """A subclass's ``options(template)`` that returns what it filled, also when it returns nothing."""

    @functools.wraps(options)
    def fitted(self: Any, template: Dict[str, Any]) -> Dict[str, Any]:
        returned = options(self, template)
        return template if returned is None else returned

    return fitted


class Server(HookMixIn, RestartMixIn, BindingMixIn, Engine, socketserver.BaseServer):
    """One process, one connection at a time, any number of listeners.

    Methods for the caller:

    - ``Server.run(handler, **options)`` — the whole Net::Server flow
    - ``Server(server_address, Handler, **options)`` then ``serve_forever()``,
      ``handle_request()``, ``shutdown()``, ``server_close()`` — socketserver's
    - ``log(level, message)``

    Methods that may be overridden: every hook (:mod:`netserver.hooks`),
    ``options(template)``, ``default_values()``, and socketserver's
    ``verify_request``, ``process_request``, ``finish_request``,
    ``handle_error``, ``service_actions``.

    Class variables: ``OPTIONS`` (this class's option declarations),
    ``address_family`` / ``socket_type`` (used to read ``server_address``,
    as in TCPServer/UDPServer), ``allow_reuse_address``,
    ``allow_reuse_port``, ``request_queue_size`` (``None``: the ``listen``
    option), ``timeout``, ``command_line`` (``None``: ``run()`` reads
    ``sys.argv`` and the constructor does not; ``True``: both; ``False``: neither).
    """

    OPTIONS: Tuple[Option, ...] = core.OPTIONS

    address_family: Optional[int] = None
    socket_type = socket.SOCK_STREAM
    allow_reuse_address = True
    allow_reuse_port = False
    request_queue_size: Optional[int] = None
    timeout: Optional[float] = None
    command_line: Optional[bool] = None
    _personality = "Single"
    _default_handler: Optional[type] = None  # a RequestHandlerClass; None: EchoHandler (Multiplex's: a MuxHandler class)
    proxy_timeout = 10.0  # seconds a trusted proxy has to send its PROXY header
    # Modules a personality imports on first use, imported before a chroot or privilege drop would
    # put them out of reach (besides privileges.PRELOAD).
    _preload: Tuple[str, ...] = ()

    # The state configure()/post_configure() and the flow set; until then, these immutable defaults.
    inherited_children: Sequence[int] = ()  # after a HUP: children of the old image, still to be reaped
    inherited_state: Mapping[str, Any] = MappingProxyType({})  # after a HUP: what the personality kept
    _config_request: Optional[str] = None  # "check" or "print" (--check-config, --print-config)
    _proxy_mode: Optional[str] = None
    _reverse_lookups = False
    _log_connections = False
    _closing = False  # pre_server_close_hook has run

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Two Net::Server habits, caught when the class is made: ``options(template)`` that fills
        the template and returns nothing (Perl's does) is given its template back; a
        ``process_request(self)`` (Perl's place for the protocol) is refused with where the code
        goes instead, rather than failing on every connection."""
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if type(own.get("options")) is FunctionType:
            cls.options = _returning_the_template(own["options"])  # type: ignore[method-assign]  # the same method, fitted
        process = own.get("process_request")
        if type(process) is FunctionType and positional_parameters(process) == 1:
            raise TypeError(f"{cls.__qualname__}.process_request(self) is Net::Server's; here process_request is "
                            f"socketserver's (request, client_address). Put the protocol in a request handler's "
                            f"handle() and pass the handler to run() (docs/guide.md, 'Writing a server')")

    def __init__(self, server_address: Any = None, RequestHandlerClass: Any = None,
                 bind_and_activate: bool = True, **options: Any):
        socketserver.BaseServer.__init__(self, server_address, RequestHandlerClass)
        self._host = self  # the Net::Server API a personality asks for is this class's own
        self._engine_init()
        self._logger = ServerLog()
        self._connection = threading.local()  # client and listener of the connection being served
        self._constructor_options = options
        self.config: Config = None  # type: ignore[assignment]  # None until configure(), before any step reads it
        self.listeners: List[Listener] = []
        self.socket: Optional[socket.socket] = None
        self.access: Optional[access.AccessPolicy] = None
        self._serving_prepared = False
        self._in_run = False
        self._restart_requested = False
        self._owner_pid = os.getpid()
        self.identity: Optional[privileges.Identity] = None
        self.pid_file: Optional[daemon.PidFile] = None
        self.detacher: Optional[daemon.Detacher] = None  # made when background/setsid asks
        self.notifier = systemd.Notifier()
        if server_address is None:
            return
        self.configure_hook()
        self.configure({}, argv=None if self.command_line else [])
        self.post_configure()
        self.post_configure_hook()
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException as exc:
                self._report_to_launcher(exc)
                self.server_close()
                raise

    # ------------------------------------------------------------------
    # The Net::Server flow
    # ------------------------------------------------------------------

    @_Flow
    def run(self, handler: Any = None, *, argv: Optional[Sequence[str]] = None, **options: Any) -> None:
        """Configure, bind, drop privileges, serve until told to stop, clean up.

        ``Server.run(Handler, port=8080)`` or ``Server(...).run()``.
        ``handler`` is a socketserver ``RequestHandlerClass`` (default
        :class:`~netserver.handlers.EchoHandler`); ``options`` are the
        ``run()`` source of configuration; ``argv`` replaces ``sys.argv[1:]``.
        """
        if handler is not None:
            self.RequestHandlerClass = handler
        if self.RequestHandlerClass is None:
            if self._default_handler is None:
                from .handlers import EchoHandler

                self.RequestHandlerClass = EchoHandler
            else:
                self.RequestHandlerClass = self._default_handler
        self._in_run = True
        try:
            self._run_flow(options, argv)
        except BaseException as exc:
            self._report_to_launcher(exc)
            raise
        finally:
            self._in_run = False
            self.server_close()
            self._logger.close()

    def _report_to_launcher(self, exc: BaseException) -> None:
        """A failure after detaching goes to the launcher still waiting in the foreground."""
        if self.detacher is not None and self.detacher.waiting:
            self.detacher.failed(str(exc) or type(exc).__name__)
            # The command line need not print it again (cli.py and _exit_with read this mark; no
            # exception class declares it, so it goes in the instance's dict).
            vars(exc)["reported_to_launcher"] = True

    def _run_flow(self, options: Mapping[str, Any], argv: Optional[Sequence[str]]) -> None:
        """The steps of :meth:`run`, one line each."""
        if self.config is None:
            self.configure_hook()                 # before anything is read
            self.configure(options, argv=argv)    # the five sources → self.config
            if restart.checking_config() or self._config_request:  # --check-config, --print-config, HUP
                self.check_config(self._config_request or "check")
                return
            self.post_configure()                 # log, pid file, background
            self.post_configure_hook()            # validate your own options
        # From here on a stop signal is acted on by the loop, never by the default action.
        with self._signal_queue().installed(self._signals_handled(), self._on_signal):
            if not self.listeners:
                self.pre_bind()                   # port specs → listeners
                self.bind()                       # bind and listen (or adopt after a HUP)
                self.post_bind_hook()             # still the starting user
            self.post_bind()                      # privileges
            self.pre_loop_hook()
            while True:
                self.loop()                       # serve until stopped
                if not self._restart_requested:
                    break
                self._restart_requested = False
                self.restart()                    # returns only if exec failed
            self._pre_server_close()              # if the loop did not already (INET)
            self.post_child_cleanup_hook()        # every child is gone (Single too, as in Net::Server)

    def _end_serving(self) -> None:
        """In ``run()``, the loop's end calls ``pre_server_close_hook`` before children are stopped."""
        if self._in_run and not self._restart_requested:
            self._pre_server_close()
        super()._end_serving()

    def _pre_server_close(self) -> None:
        if not self._closing:
            self._closing = True
            self.pre_server_close_hook()

    # -- configuration ----------------------------------------------------

    def options(self, template: Dict[str, Any]) -> Dict[str, Any]:
        """Add this server's options to ``template`` (name → Option or default).

        Override to add your own: call ``super().options(template)``, then
        ``template["my_option"] = default`` (a list default makes it
        repeatable).  The parsed values appear on ``self.config``.
        """
        for option in protocol_options():
            template[option.name] = option
        template.update(declared_options(type(self)))
        return template

    def default_values(self) -> Dict[str, Any]:
        """The lowest-precedence source: a dict of option values."""
        return {}

    def configure(self, run_options: Mapping[str, Any], argv: Optional[Sequence[str]] = None,
                  run_source: Optional[Source] = None) -> Config:
        """Read the five sources into ``self.config``; first source wins.

        Constructor arguments, the command line (``argv``, or ``sys.argv[1:]``
        unless ``command_line`` is False), ``run()`` arguments, the
        ``conf_file``, ``default_values()``.  Known options are removed from
        ``sys.argv`` (when it was the command line used); the rest stay for
        the application.  A bad value raises :class:`OptionError`.
        """
        template = normalize_template(self.options({}))
        run_options = dict(self._address_options(), **run_options)
        constructor = entries_from_mapping(self._constructor_options, Source(Source.CONSTRUCTOR), template)
        command_line: List[Entry] = []
        rest: List[str] = []
        if argv is not None or self.command_line is not False:
            words = list(sys.argv[1:] if argv is None else argv)
            command_line, rest = parse_argv(words, template)
            self._config_request, rest = configcheck.take_request(rest)
            if argv is None:
                sys.argv[1:] = rest
        run_layer = entries_from_mapping(run_options, run_source or Source(Source.RUN), template)
        defaults = entries_from_mapping(self.default_values() or {}, Source(Source.DEFAULT_VALUES), template)
        layers = [constructor, command_line, run_layer, [], defaults]
        conf_entry = next((e for layer in layers for e in layer if e[0] == "conf_file"), None)
        if conf_entry is not None:
            conf_path = template["conf_file"].parse(conf_entry[1], conf_entry[2])
            if conf_path:
                layers[3] = read_conf_file(conf_path, template, conf_entry[2])
        self.config = merge(layers, template)
        configcheck.report_unknown(rest, template, self.config.get("strict_options", False), self.log)  # --prot
        return self.config

    def check_config(self, mode: str) -> None:
        """``--check-config``: what starting would do, short of binding; ``--print-config``: the values."""
        if mode == "print":
            template = normalize_template(self.options({}))
            configcheck.print_config(self, template, list(Server.options(self, {})))
            return
        summary = configcheck.check(self)
        if restart.checking_config():
            self._try_new_listeners(restart.held_listeners())
        if self._config_request:
            sys.stdout.write(summary + "\n")

    def _address_options(self) -> Dict[str, Any]:
        """``server_address`` (socketserver style) as ``run()``-level options.

        So ``--port`` on the command line still overrides what the script says.
        """
        address = self.server_address
        if address is None:
            return {}
        stream = self.socket_type == socket.SOCK_STREAM
        if isinstance(address, (str, bytes)):
            path = os.fsdecode(address)
            return {"port": [path], "proto": ["unix" if stream else "unixdgram"]}
        host, port = address[0], address[1]
        family = self.address_family
        wildcards: Dict[Optional[int], str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
        versions: Dict[Optional[int], str] = {socket.AF_INET: "4", socket.AF_INET6: "6"}
        if not host:
            host = wildcards.get(family, "*")
        ipv = versions.get(family, "*")
        return {"host": [host], "port": [port], "proto": ["tcp" if stream else "udp"], "ipv": [ipv]}

    def post_configure(self) -> None:
        """Open the log, take the pid file, detach; set up access control.

        Net::Server's order: anything that fails before the fork reaches the
        caller directly, anything after it through the detacher's pipe.
        """
        config = self.config
        configcheck.check_together(config)
        self._logger.close()
        try:
            self._logger = ServerLog.from_config(config, self)
        except (OSError, LogConfigError) as exc:  # an unwritable log_file: one line naming it
            name = getattr(exc, "option", "log_file")
            reason = f"cannot open: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OptionError(name, config.get(name), config.source_of(name), reason) from None
        self.access = access.AccessPolicy(
            config.allow, config.deny, config.cidr_allow, config.cidr_deny,
            reverse_lookups=config.reverse_lookups, double_reverse_lookups=config.double_reverse_lookups,
        )
        self._reverse_lookups = self.access.reverse_lookups
        if (config.deny or config.cidr_deny) and not (config.allow or config.cidr_allow):
            self.log(1, "deny/cidr_deny without allow/cidr_allow refuses every client, as in Net::Server: "
                        "add the clients to serve (cidr_allow 0.0.0.0/0, ::/0 for all the others)")
        self._proxy_mode = None if config.proxy_protocol == "off" else config.proxy_protocol
        self._proxy_trusted = access.AccessPolicy(cidr_allow=config.proxy_allow) if self._proxy_mode else None
        self._log_connections = self._logger.enabled(3)
        if config.get("reuse_port"):  # PreFork's per-child sockets: the shared ones join their group
            self.allow_reuse_port = True
            if _read_sysctl("net/ipv4/tcp_migrate_req") == "0":
                self.log(1, "reuse_port: net.ipv4.tcp_migrate_req is 0, so connections queued on a "
                            "retiring child's socket are reset; set it to 1")
        try:
            self.identity = privileges.plan_identity(config.user, config.group)  # None: stay who we are
        except privileges.PrivilegeError as exc:
            raise ServerError(str(exc)) from None
        if self._in_run and privileges.root_by_default(config.user, config.group) and not restart.restarting():
            self.log(1, "User not defined, running as root")  # once: not again after a HUP re-exec
        if config.chroot and os.geteuid() != 0:
            raise ServerError(f"chroot {config.chroot}: needs root")
        if config.pid_file:
            from . import daemon

            self.pid_file = daemon.PidFile(config.pid_file, self.log)
            try:
                self.pid_file.acquire(restart.take_pid_file_fd())
            except daemon.PidFileError as exc:
                raise ServerError(str(exc)) from None
        if (config.background or config.setsid) and not restart.restarting():
            from . import daemon

            self.detacher = daemon.Detacher()
            self.detacher.detach(new_session=config.setsid)  # a HUP re-exec is already detached
            self._owner_pid = os.getpid()
        if self.pid_file is not None:
            ids = (self.identity.uid, self.identity.gid) if self.identity else (None, None)
            self.pid_file.write(*ids)
        if config.log_file and self._logger.fileno() is not None or config.setsid:
            from . import daemon

            daemon.redirect_stdio(self._logger.fileno())
        self.log(2, f"{self._title()} starting! pid({os.getpid()})")

    def _title(self) -> str:
        """The server as its start-up line and ``--print-config`` name it: class and personality."""
        return f"{type(self).__name__} (type {self._personality})"

    def post_bind(self) -> None:
        """After binding: chroot and drop privileges (in the children, for the forking personalities)."""
        identity = self.identity
        if identity is not None or (self.config is not None and self.config.chroot):
            # imports that would fail once the interpreter is out of reach
            privileges.preload(self._preload + self._logger.preload_names())
        if identity is not None:
            self._hand_over_files(identity)
        if not self.drops_privileges_in_children:
            self.drop_privileges()
        self._serving_prepared = True

    @property
    def drops_privileges_in_children(self) -> bool:
        """Forking personalities keep the parent as it started (so HUP can re-exec and rebind)
        and drop privileges in each child before it serves."""
        return self._drops_privileges_in_children

    def leave_parent_files(self) -> None:
        """Host step, in a new child: let go of what is the parent's (the pid file's lock and descriptor)."""
        if self.pid_file is not None:
            self.pid_file.forget()

    def drop_privileges(self) -> None:
        """chroot, then groups, then user (``self.identity``); verified, or ServerError."""
        chroot = self.config.chroot if self.config is not None else None
        try:
            privileges.drop(self.identity, chroot)
        except privileges.PrivilegeError as exc:
            self.fatal(str(exc))
        if self.identity is not None and not self._in_child:
            self.log(2, f"Running as {privileges.describe(self.identity)}"
                        + (f", chrooted to {chroot}" if chroot else ""))

    def files_for_user(self) -> List[Any]:
        """What the server's user must own after the drop: UNIX socket files (their paths)
        and log files (``(path, open descriptor)``: ownership changes on what was opened,
        never on whatever the path names now)."""
        files: List[Any] = [lsn.target.address for lsn in self.listeners if getattr(lsn, "owns_path", False)]
        if self._logger.path and self._logger.fileno() is not None:
            files.append((self._logger.path, self._logger.fileno()))
        return files

    def _hand_over_files(self, identity: privileges.Identity) -> None:
        """Refuse paths the service user could redirect, then hand the files over (issue 14)."""
        inherited = {lsn.target.address for lsn in self.listeners if lsn.inherited}
        # A socket file inherited across HUP was handed over when it was made: left alone.
        files = [item for item in self.files_for_user() if not (isinstance(item, str) and item in inherited)]
        for item in files:
            hazard = privileges.path_hazard(item if isinstance(item, str) else item[0], identity)
            if hazard is not None:
                self.fatal(f"Refusing to start: {hazard}")
        for item in files:
            try:
                if isinstance(item, str):
                    privileges.hand_over_socket_file(item, identity)
                else:
                    privileges.hand_over_fd(item[1], identity)
            except OSError as exc:
                path = item if isinstance(item, str) else item[0]
                self.log(1, f"Could not hand {path} to {identity.user}: {exc.strerror}")

    @property
    def children(self) -> Any:
        """The children this server started (Net::Server's ``{server}{children}``): a
        :class:`~netserver.process.children.ChildTable` in the forking personalities, empty otherwise."""
        return self._children

    @property
    def personality(self) -> str:
        """The personality this server runs as (``PreFork``…; a MultiType shows the one it chose)."""
        return self._personality

    # -- the loop -----------------------------------------------------------

    def loop(self) -> None:
        """Serve until stopped; a HUP leaves the loop with ``_restart_requested`` set."""
        self.serve_forever()

    def listening(self) -> List[Tuple[Any, Any]]:
        """Every listener as ``(socket, listener)``: what the loop waits on."""
        return [(listener.socket, listener) for listener in self.listeners]

    def _waiting_clients_sockets(self) -> List[Any]:
        """One connection at a time here: a client on any stream listener waits for us."""
        return [listener.socket for listener in self.listeners if listener.stream]

    def start_serving(self) -> None:
        """As the loop starts: privileges (socketserver way), ``pre_loop_hook``, readiness."""
        if not self._serving_prepared:
            self.post_bind()
            self.pre_loop_hook()
        if self.detacher is not None:
            self.detacher.ready()  # a launcher waiting in the foreground may now return
        self.notifier.ready(f"serving as {self._personality}")

    def stopping(self) -> None:
        """The loop is ending: tell the service manager (not for a HUP re-exec)."""
        if not self._restart_requested:
            self.notifier.stopping()

    def notify_status(self, text: str) -> None:
        """A status line for the service manager (systemd's STATUS=)."""
        self.notifier.status(text)

    def serve_forever_around(self) -> Any:
        """None: this class's loop is the loop (a personality mixin asks its host, see base.py)."""
        return None

    def owns_signals(self) -> bool:
        """Net::Server's flow (``run()``) takes over every signal it handles; otherwise only
        those the program left at their default action."""
        return self._in_run

    def stop_server(self) -> None:
        """Ask the whole server to stop (from a forked child: signals the parent, unless ``no_close_by_child``)."""
        self._stop_server()

    def defines_hook(self, name: str) -> bool:
        """Whether this server's class overrides the Net::Server hook ``name`` (else it is a no-op)."""
        return getattr(type(self), name) is not getattr(HookMixIn, name)

    def add_read_handle(self, handle: Any) -> None:
        """Watch an extra handle (anything with ``fileno()``); readiness calls ``can_read_hook``."""
        self._add_read_handle(handle)

    def _signals_handled(self) -> List[int]:
        handled = super()._signals_handled() + [signal.SIGUSR1]
        if self.restartable():
            handled.append(signal.SIGHUP)
        return handled

    def _sig_usr1(self) -> None:
        """Reopen the log files (after logrotate moved them), as nginx and gunicorn do."""
        self.reopen_logs()
        self.log(2, "Received USR1, reopened the log files")

    def reopen_logs(self) -> None:
        """Reopen the log file (O_NOFOLLOW); as root, hand the new file over by descriptor."""
        self._logger.reopen()
        fd = self._logger.fileno() if self._logger.path else None
        if self.identity is not None and os.geteuid() == 0 and fd is not None:
            try:  # the children, already someone else, reopen it after us
                privileges.hand_over_fd(fd, self.identity)
            except OSError as exc:
                self.log(1, f"Could not hand {self._logger.path} to {self.identity.user}: {exc.strerror}")

    def service_actions(self) -> None:
        super().service_actions()
        self.notifier.tick(time.monotonic())

    def handle_request(self) -> None:
        """Wait up to ``timeout`` for one request on any listener and handle it (socketserver's)."""
        timeout = self.socket.gettimeout() if self.socket is not None else None
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        with selectors.DefaultSelector() as selector:
            for sock, token in self._listening():
                selector.register(sock, selectors.EVENT_READ, token)
            ready = selector.select(timeout)
            if not ready:
                self.handle_timeout()
                return
            self._serve_from(ready[0][0].data)

    def _handle_request_noblock(self) -> None:
        """socketserver's internal entry point (accept one from the first listener and serve it)."""
        self._serve_from(self._listening()[0][1])

    # -- one connection --------------------------------------------------------

    def get_request(self) -> Any:
        """Accept from the first listener (socketserver's single-socket API)."""
        return self.listeners[0].get_request()

    def accept_from(self, listener: Listener) -> Tuple[Any, Any]:
        """Accept one request from ``listener``: ``(request, client_address)``; ``OSError`` if none."""
        request, client_address = listener.get_request()
        self._connection.listener = listener
        return request, client_address

    def _handle_connection(self, request: Any, client_address: Any) -> None:
        """With ``proxy_protocol``, take the client's address from a trusted proxy's header first."""
        if self._proxy_mode is not None and not isinstance(request, tuple) and isinstance(client_address, tuple):
            peer = client_address[0]
            assert self._proxy_trusted is not None  # post_configure sets it with _proxy_mode
            if self._proxy_trusted.check(peer).allowed:
                try:
                    named = proxy.read_header(request, self._proxy_mode, self.proxy_timeout)
                except (proxy.ProxyError, OSError) as exc:
                    self.log(1, f"Refusing a connection from proxy {peer}: {exc}")
                    self.shutdown_request(request)
                    return
                if named is not None:
                    client_address = named
        super()._handle_connection(request, client_address)

    @property
    def client(self) -> Optional[ClientInfo]:
        """The connection being served in this thread (Net::Server's ``$self->{server}{client}``)."""
        return getattr(self._connection, "client", None)

    @client.setter
    def client(self, value: Optional[ClientInfo]) -> None:
        self._connection.client = value

    @property
    def _current_listener(self) -> Optional[Listener]:
        return getattr(self._connection, "listener", None)

    def serving_from(self, listener: Any) -> None:
        """Host step: the connection this thread now serves came from ``listener`` (Thread's workers)."""
        self._connection.listener = listener

    def get_client_info(self, request: Any, client_address: Any) -> ClientInfo:
        """Describe the peer (and, with ``reverse_lookups``, look up its name)."""
        client = ClientInfo(request, client_address, self._current_listener)
        if self._reverse_lookups and client.peerport is not None:
            host = access.reverse_lookup(client.peeraddr)
            if host:
                client.peerhost = host
                client.host_confirmed = access.forward_confirms(host, client.peeraddr)
        if self._log_connections:
            self.log(3, f"CONNECT {client}")
        return client

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Net::Server's access control, in socketserver's slot.

        Runs ``post_accept_hook``, the allow/deny rules, ``allow_deny_hook``;
        on refusal ``request_denied_hook`` and a log line.  An exception in any
        of them refuses this connection (logged with its traceback).
        """
        try:
            self.client = client = self.get_client_info(request, client_address)
            self.post_accept_hook(request)
            if self.allow_deny(client) and self.allow_deny_hook(request):
                return True
            self.request_denied_hook(request)
        except Exception:
            # A failing hook ends this connection only, never the process or thread serving it.
            import traceback

            self.log(1, f"Refusing the connection from {client_address!r}: access check failed:\n"
                        f"{traceback.format_exc().rstrip()}")
        return False

    def allow_deny(self, client: ClientInfo) -> bool:
        """Apply the ``allow``/``deny``/``cidr_*`` rules to ``client``."""
        policy = self.access
        if policy is None or not policy.active:
            return True
        decision = policy.check(client.peeraddr, client.peerhost, client.host_confirmed)
        if not decision.allowed:
            self.log(1, f"Denying connection from {client}: {decision.reason}")
        return decision.allowed

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in this process, then close it (socketserver's step)."""
        self.finish_request(request, client_address)
        self.post_process_request_hook(request)
        self.shutdown_request(request)
        self.post_client_connection_hook(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Run the handler; with ``no_client_stdout 0`` stdin/stdout are the client meanwhile.

        A TLS connection completes its handshake here, in the process or
        thread that serves it, before the handler runs.
        """
        if type(request) is not socket.socket and hasattr(request, "do_handshake"):
            listener = self._current_listener
            handshake(request, getattr(listener, "handshake_timeout", 10.0))
        config = self.config
        if config is not None and not config.no_client_stdout and not isinstance(request, tuple):
            with ClientStdio(request):
                self.RequestHandlerClass(request, client_address, self)
        else:
            self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Close a connection (a datagram request has nothing to close)."""
        if isinstance(request, tuple):
            return
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        request.close()

    def close_request(self, request: Any) -> None:
        if not isinstance(request, tuple):
            request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log the exception (a peer that hung up: one line at level 3); the server carries on."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)) or type(error).__module__ == "ssl":
            self.log(3, f"Connection from {client_address!r} ended: {error}")
            return
        import traceback

        self.log(1, f"Error while serving {client_address!r}:\n{traceback.format_exc().rstrip()}")

    # -- logging and errors ----------------------------------------------------------

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log ``message`` at Net::Server level 0-4 (through ``write_to_log_hook``); with ``args``
        it is a %-format of them, as Net::Server's ``log`` is a ``sprintf`` (only when the level
        is enabled: a quiet level formats nothing)."""
        if self._logger.enabled(level):
            self.write_to_log_hook(level, message % args if args else message)

    # -- closing ------------------------------------------------------------------

    def server_close(self) -> None:
        """Close every listener (the socket files only in the process that made them)."""
        owner = os.getpid() == self._owner_pid
        for listener in self.listeners:
            if isinstance(listener, UNIX):  # the listeners that make a file (UNIXDGRAM too)
                listener.close(unlink=owner)
            else:
                listener.close()
        self._close_signals()
        if self.pid_file is not None and owner and not self._restart_requested:
            self.pid_file.remove()

    def server_closed(self) -> None:
        """Host step: the personality's ``server_close`` ran (here it was this class's own)."""

    def fileno(self) -> int:
        """The first listener's descriptor (socketserver's); -1 before binding, as after closing."""
        return self.socket.fileno() if self.socket is not None else -1

    def fatal(self, message: str) -> None:
        """Call ``fatal_hook(message, module, file, line)`` of the caller, log, raise :class:`ServerError`."""
        self._fatal(message, sys._getframe(1))

    def _fatal(self, message: str, caller: Any, log: bool = True) -> None:
        module, file, line = caller.f_globals.get("__name__"), caller.f_code.co_filename, caller.f_lineno
        self.fatal_hook(message, module, file, line)
        if log:
            self.log(0, f"{message}\n  at line {line} in file {file}")
        raise ServerError(message) from None


def _read_sysctl(name: str) -> Optional[str]:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def _exit_with(exc: BaseException, server: "Server") -> None:
    """What ``SomeServer.run()`` in a script's ``__main__`` does with an error: one line, exit 2 (1 if running)."""
    if not getattr(exc, "reported_to_launcher", False):
        sys.stderr.write(f"{os.path.basename(sys.argv[0]) or 'netserver'}: error: {exc}\n")
    sys.exit(2 if isinstance(exc, OptionError) or server._config_request else 1)


Single = Server
