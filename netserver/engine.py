"""The serving loop under ``Server`` and under every personality mixin.

``Engine`` is socketserver's ``serve_forever``/``shutdown`` made to wait on
any number of listeners plus a wake-up pipe, so ``shutdown()`` and signals
take effect at once.  Each personality changes it through a few private
steps: ``_listening()`` (what to wait on), ``_serve_from(token)`` (take one
request from it), ``_accepting()``, ``_prepare_to_serve()`` and
``_end_serving()``.  (Multiplex and a PreFork child wait in loops of their
own; they reuse the same steps around them.)

Everything netserver needs from the server class the engine sits on — its
options, its log, its listeners, the Net::Server hooks — it asks of
``self._host`` (:mod:`netserver.host`).  The engine's own names are
private, so a mixin over a stdlib class adds nothing to that class's
public namespace.

Signal handlers only record (:mod:`netserver.signals`); the loop calls
``_sig_<name>()`` for each signal it finds.  Handlers are installed for the
duration of ``serve_forever`` only, in the main thread only, and — unless
the server runs Net::Server's own flow (``run()``, the ``netserver``
command) — only for signals the program left at their default action: a
handler the program installed, an ignored signal and Python's
``KeyboardInterrupt`` on Ctrl-C stay as they were.
"""

from __future__ import annotations

import selectors
import signal
import threading

from .signals import SignalQueue, signal_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    from .contract import Host

__all__ = ["Engine", "ServerError", "StopNow"]

# The main thread's id, compared per connection: a C call, where current_thread() would run
# Python code and write to the Thread object (a copy-on-write fault in a forking parent, issue 12).
_MAIN_IDENT = threading.main_thread().ident


class ServerError(Exception):
    """The server cannot start or go on (bind failure, bad set-up); the message says why."""


class StopNow(BaseException):
    """Raised by the TERM/INT handler into a request being served in the main thread."""


class Engine:
    """Loop, shutdown and signals over ``self._host`` (see the module docstring).

    Methods for the caller: socketserver's ``serve_forever``, ``shutdown``,
    ``verify_request``.
    """

    _host: "Host"

    # Per-instance state is made by _engine_init(); these class-level values are the immutable
    # defaults that subclasses and the personalities set or override.
    _stop_now_signals = (signal.SIGTERM, signal.SIGINT)
    _serving_request = False  # a request runs in the main thread: TERM/INT may interrupt it
    _restart_requested = False  # set by netserver.Server when a HUP re-execs
    _in_child = False  # set in a forked child
    _children: Any = ()  # the forking personalities' ChildTable
    _drops_privileges_in_children = False  # the forking personalities drop in each child
    # A StdlibHost whose program defines post_process_request_hook or post_client_connection_hook:
    # it then serves the request around them (socketserver's process_request has no place for them).
    _hooked_process: Any = None

    if TYPE_CHECKING:
        # What the engine uses of the socketserver class it sits on: socketserver's own names.
        _BaseServer__is_shut_down: threading.Event
        RequestHandlerClass: Any
        socket: Any
        server_address: Any

        def process_request(self, request: Any, client_address: Any) -> None: ...
        def shutdown_request(self, request: Any) -> None: ...
        def close_request(self, request: Any) -> None: ...
        def handle_error(self, request: Any, client_address: Any) -> None: ...
        def get_request(self) -> Tuple[Any, Any]: ...
        def service_actions(self) -> None: ...
        def server_close(self) -> None: ...

    def _engine_init(self) -> None:
        """Per-instance loop state (called by the constructors, before anything else)."""
        if "_read_handles" in self.__dict__:
            return
        self._signals: Optional[SignalQueue] = None
        self._read_handles: Dict[int, Any] = {}
        if "_BaseServer__is_shut_down" not in self.__dict__:  # BaseServer.__init__ has not run yet
            self._stop_requested = False
            self._BaseServer__is_shut_down = threading.Event()

    # The loop's stop flag and "stopped" event are socketserver's own (BaseServer's private names):
    # the standard class's shutdown() (the host's, or called by name, as jsonrpclib's server_close
    # does) or a handler setting the flag stops this loop as it stops socketserver's, at once (the
    # flag wakes the loop), and waits for it the same way.  The hot loops read _stop_requested.

    _signals: Optional[SignalQueue] = None  # until _engine_init (BaseServer.__init__ may set the flag first)
    _stop_requested = False

    @property
    def _BaseServer__shutdown_request(self) -> bool:
        return self._stop_requested

    @_BaseServer__shutdown_request.setter
    def _BaseServer__shutdown_request(self, value: bool) -> None:
        self._stop_requested = value
        signals = self._signals  # read once: another thread may close them meanwhile
        if value and signals is not None:
            signals.wake()

    _shutdown_request = _BaseServer__shutdown_request  # netserver's own name for it

    @property
    def _is_shut_down(self) -> threading.Event:
        return self._BaseServer__is_shut_down

    # -- what to wait on, what to do ------------------------------------------

    def _listening(self) -> List[Tuple[Any, Any]]:
        """``(file object, token)`` pairs to wait on; the token goes to ``_serve_from``."""
        return self._host.listening()

    def _serve_from(self, token: Any) -> None:
        """Accept one request from a ready listener and handle it (socketserver's ``_handle_request_noblock``)."""
        try:
            request, client_address = self._host.accept_from(token)
        except OSError:
            return  # another process took it, or the peer gave up already
        self._handle_connection(request, client_address)

    def _handle_connection(self, request: Any, client_address: Any) -> None:
        """socketserver's steps for one request: verify, process, close; errors to ``handle_error``."""
        main = threading.get_ident() == _MAIN_IDENT
        if main:
            self._serving_request = True  # TERM/INT may now interrupt this request (see _on_signal)
        try:
            try:
                allowed = (self._admit(request, client_address) if self._own_verify
                           else self.verify_request(request, client_address))  # the usual case, one call
            except Exception:
                # A failing access check or hook costs this connection, never the server.
                self.handle_error(request, client_address)
                self.shutdown_request(request)
                return
            if not allowed:
                self._refused(request, client_address)
                return
            try:
                if self._hooked_process is None:
                    self.process_request(request, client_address)
                else:
                    self._hooked_process(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except BaseException:
                self.shutdown_request(request)
                raise
        finally:
            if main:
                self._serving_request = False

    def _refused(self, request: Any, client_address: Any) -> None:
        """Close a refused connection between the hooks that end every connection in Net::Server's
        flow (``post_process_request_hook``, then ``post_client_connection_hook``)."""
        host = self._host
        try:
            host.post_process_request_hook(request)
        except Exception:
            self.handle_error(request, client_address)
        self.shutdown_request(request)
        try:
            host.post_client_connection_hook(request)
        except Exception:
            self.handle_error(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Net::Server's access control first, then the host class's own ``verify_request``.

        (``netserver.Server`` overrides this with the access control itself.)
        """
        if self._own_verify and self._admitted.__dict__.get("request") is request:
            # A program's verify_request calling super(): the rules already passed (see _admit).
            return super().verify_request(request, client_address)  # type: ignore[misc]  # the host class's
        # (the ignore: the mixin's super() is the host class, which mypy cannot see from here)
        return self._host.verify_request(request, client_address) and super().verify_request(  # type: ignore[misc]
            request, client_address)

    # A program's class over a mixin may override verify_request without calling super() (the
    # standard one only returns True): the rules must not depend on it.
    _own_verify = False  # set per instance when the program's class overrides verify_request
    _admitted: Any = None  # then a threading.local: the request the rules passed, in this thread

    def _admit(self, request: Any, client_address: Any) -> bool:
        """Whether the loop serves this connection: socketserver's ``verify_request``, with
        Net::Server's rules first even when a program's override never reaches them."""
        if not self._own_verify:
            return self.verify_request(request, client_address)
        if not self._host.verify_request(request, client_address):
            return False
        admitted = self._admitted
        admitted.request = request
        try:
            return self.verify_request(request, client_address)
        finally:
            admitted.request = None

    def _waiting_clients_sockets(self) -> List[Any]:
        """Listening sockets whose readiness means a client waits for this process (see HTTP keep-alive)."""
        return []

    def _accepting(self) -> bool:
        """Whether the loop should take connections now (Fork says no at ``max_servers``)."""
        return True

    def _prepare_to_serve(self) -> None:
        """Called once as ``serve_forever`` starts, with signals installed."""
        self._host.start_serving()

    def _announce_stopping(self) -> None:
        """The loop is ending (tell a service manager, say)."""
        self._host.stopping()

    def _end_serving(self) -> None:
        """Called as ``serve_forever`` ends, signals still installed (stop children here)."""

    def _before_restart(self) -> None:
        """HUP re-exec (``netserver.Server``'s) is about to happen: personalities tell their workers here."""

    # -- the loop ----------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until ``shutdown()`` or a stop signal (socketserver's contract).

        Every listener, the wake-up pipe and extra read handles share one
        selector, so ``shutdown()`` and signals take effect at once;
        ``service_actions()`` runs at least every ``poll_interval`` seconds.
        """
        self._is_shut_down.clear()
        try:
            wakeup = self._signal_queue()
            with self._signals_installed(wakeup), selectors.DefaultSelector() as selector:
                try:
                    self._prepare_to_serve()
                    self._serve_until_stopped(selector, wakeup, poll_interval)
                finally:
                    self._announce_stopping()
                    self._end_serving()
        finally:
            self._shutdown_request = False
            self._is_shut_down.set()

    def _serve_until_stopped(self, selector: selectors.BaseSelector, wakeup: SignalQueue,
                             poll_interval: float) -> None:
        """The loop itself: wait on the listeners, the wake-up pipe and extra handles; serve what is ready.

        (Multiplex replaces it with its own event loop; set-up and tear-down stay ``serve_forever``'s.)
        """
        selector.register(wakeup.fileno(), selectors.EVENT_READ, (self._dispatch_signals, None))
        for handle in self._read_handles.values():
            selector.register(handle, selectors.EVENT_READ, (self._host.can_read_hook, handle))
        listening = self._listening()
        registered = False
        while not self._stop_requested:  # _shutdown_request's value, read every pass
            if self._accepting() != registered:
                registered = not registered
                for fileobj, token in listening:
                    if registered:
                        selector.register(fileobj, selectors.EVENT_READ, (self._serve_from, token))
                    else:
                        selector.unregister(fileobj)
            for key, _ in selector.select(poll_interval):
                if self._stop_requested:
                    break
                action, token = key.data
                try:
                    action(token)
                except StopNow:
                    self._dispatch_signals()  # logs and acts on the TERM/INT
                    self._shutdown_request = True
            self.service_actions()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has (call it from another thread).

        The host class's ``shutdown`` runs as it would without netserver: socketserver's sets the
        flag (which wakes the loop) and waits for the loop to end."""
        super().shutdown()  # type: ignore[misc]  # socketserver.BaseServer's, after the host's own

    def _add_read_handle(self, handle: Any) -> None:
        """Watch an extra handle (anything with ``fileno()``); readiness calls ``can_read_hook``."""
        self._read_handles[handle.fileno()] = handle

    # -- signals ---------------------------------------------------------------------

    def _signals_handled(self) -> List[int]:
        """The signals this personality handles (each has a ``_sig_<name>`` method)."""
        return [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT]

    def _signals_installed(self, wakeup: SignalQueue) -> Any:
        return wakeup.installed(self._signals_handled(), self._on_signal,
                                only_defaults=not self._host.owns_signals())

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The signal handler: record and wake; TERM/INT also abort a request served in this thread."""
        self._signals.record(signum)  # type: ignore[union-attr]  # installed only while _signals is set
        if signum in self._stop_now_signals and self._serving_request:
            self._serving_request = False
            raise StopNow(signum)

    def _retiring(self) -> bool:
        """This process leaves after its current connection (a pool child's retire flag): a handler
        that keeps connections alive ends keep-alive then."""
        return False

    def _request_state(self, busy: bool) -> None:
        """A request of a kept-alive connection began or ended (the forking personalities' child_timeout
        watches it; nothing else does)."""

    def _stop_server(self) -> None:
        """Stop serving (a forking personality's child asks its parent instead)."""
        self._shutdown_request = True
        if self._signals is not None:
            self._signals.wake()

    def _signal_queue(self) -> SignalQueue:
        if self._signals is None:
            self._signals = SignalQueue()
        return self._signals

    def _dispatch_signals(self, _token: Any = None) -> None:
        """Act on every signal recorded since the last call (the wake-up pipe was readable)."""
        signals = self._signals
        if signals is None:
            return
        for signum in signals.drain():
            self._dispatch_signal(signum, signal_name(signum))

    def _dispatch_signal(self, signum: int, name: str) -> None:
        """One signal: its ``_sig_<name>`` method, if this personality has one."""
        handler = getattr(self, "_sig_" + name.lower(), None)
        if handler is not None:
            handler()

    def _sig_int(self) -> None:
        self._host.log(2, "Received INT, stopping")
        self._shutdown_request = True

    def _sig_term(self) -> None:
        self._host.log(2, "Received TERM, stopping")
        self._shutdown_request = True

    def _sig_quit(self) -> None:
        self._host.log(2, "Received QUIT, stopping after the current connection")
        self._shutdown_request = True

    def _close_signals(self) -> None:
        if self._signals is not None:
            self._signals.close()
            self._signals = None
