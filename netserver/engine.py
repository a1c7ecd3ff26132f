"""The serving loop shared by ``Server`` and by every personality mixin.

A personality mixin may sit on ``netserver.Server`` or on a plain
``socketserver.TCPServer``/``UDPServer``/``UnixStreamServer``; both get
their loop, ``shutdown()``, signal handling and ``log()`` from here, so the
two kinds of base behave alike.  What differs is asked of two methods:
``listening()`` (what to wait on) and ``serve_from(token)`` (take one
request from it).

Signal handlers only record (:mod:`netserver.signals`); the loop calls
``sig_<name>()`` for each signal it finds.  Handlers are installed for the
duration of ``serve_forever`` only, and only in the main thread.
"""

from __future__ import annotations

import selectors
import signal
import threading
from typing import Any, Dict, List, Optional, Tuple

from .hooks import HookMixIn
from .log import ServerLog
from .signals import SignalQueue, signal_name

__all__ = ["Engine", "ServerError", "StopNow"]

_MAIN_THREAD = threading.main_thread()


class ServerError(Exception):
    """The server cannot start or go on (bind failure, bad set-up); the message says why."""


class StopNow(BaseException):
    """Raised by the TERM/INT handler into a request being served in the main thread."""


class Engine(HookMixIn):
    """Loop, shutdown, signals and logging.

    Methods for the caller: ``serve_forever``, ``shutdown``, ``log``.
    Methods that may be overridden: ``listening``, ``serve_from``,
    ``prepare_to_serve``, ``signals_handled`` and the ``sig_*`` handlers.
    """

    def _engine_init(self) -> None:
        """Per-instance loop state (called by the constructors, before anything else)."""
        if "_is_shut_down" in self.__dict__:
            return
        self.logger = ServerLog()
        self._signals: Optional[SignalQueue] = None
        self._read_handles: Dict[int, Any] = {}
        self._shutdown_request = False
        self._is_shut_down = threading.Event()

    # -- what to wait on, what to do ------------------------------------------

    def listening(self) -> List[Tuple[Any, Any]]:
        """``(file object, token)`` pairs to wait on; the token goes to ``serve_from``."""
        return [(self.socket, None)]

    def accept_from(self, token: Any) -> Tuple[Any, Any]:
        """Take one request from a listener: ``(request, client_address)``; ``OSError`` if none."""
        return self.get_request()

    def handle_connection(self, request: Any, client_address: Any) -> None:
        """socketserver's steps for one request: verify, process, close; errors to ``handle_error``."""
        if threading.current_thread() is not _MAIN_THREAD:
            self._handle_connection(request, client_address)
            return
        self._serving_request = True  # TERM/INT may now interrupt this request (see _on_signal)
        try:
            self._handle_connection(request, client_address)
        finally:
            self._serving_request = False

    def _handle_connection(self, request: Any, client_address: Any) -> None:
        if self.verify_request(request, client_address):
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except BaseException:
                self.shutdown_request(request)
                raise
        else:
            self.shutdown_request(request)

    def serve_from(self, token: Any) -> None:
        """Accept one request from a ready listener and handle it."""
        try:
            request, client_address = self.accept_from(token)
        except OSError:
            return  # another process took it, or the peer gave up already
        self.handle_connection(request, client_address)

    def waiting_clients_sockets(self) -> List[Any]:
        """Listening sockets whose readiness means a client waits for this process (see HTTP keep-alive)."""
        return []

    def accepting(self) -> bool:
        """Whether the loop should take connections now (Fork says no at ``max_servers``)."""
        return True

    def prepare_to_serve(self) -> None:
        """Called once as ``serve_forever`` starts, with signals installed."""

    def announce_stopping(self) -> None:
        """The loop is ending (tell a service manager, say)."""

    def end_serving(self) -> None:
        """Called as ``serve_forever`` ends, signals still installed (stop children here)."""

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
            with wakeup.installed(self.signals_handled(), self._on_signal), selectors.DefaultSelector() as selector:
                try:
                    self.prepare_to_serve()
                    selector.register(wakeup.fileno(), selectors.EVENT_READ, (self._dispatch_signals, None))
                    for handle in self._read_handles.values():
                        selector.register(handle, selectors.EVENT_READ, (self.can_read_hook, handle))
                    listening = self.listening()
                    registered = False
                    while not self._shutdown_request:
                        if self.accepting() != registered:
                            registered = not registered
                            for fileobj, token in listening:
                                if registered:
                                    selector.register(fileobj, selectors.EVENT_READ, (self.serve_from, token))
                                else:
                                    selector.unregister(fileobj)
                        for key, _ in selector.select(poll_interval):
                            if self._shutdown_request:
                                break
                            action, token = key.data
                            try:
                                action(token)
                            except StopNow:
                                self._dispatch_signals()  # logs and acts on the TERM/INT
                                self._shutdown_request = True
                        self.service_actions()
                finally:
                    self.announce_stopping()
                    self.end_serving()
        finally:
            self._shutdown_request = False
            self._is_shut_down.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has (call it from another thread)."""
        self._shutdown_request = True
        if self._signals is not None:
            self._signals.wake()
        self._is_shut_down.wait()

    def add_read_handle(self, handle: Any) -> None:
        """Watch an extra handle (anything with ``fileno()``); readiness calls ``can_read_hook``."""
        self._read_handles[handle.fileno()] = handle

    # -- signals ---------------------------------------------------------------------

    def signals_handled(self) -> List[int]:
        """The signals this personality handles (each has a ``sig_<name>`` method)."""
        return [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT]

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The signal handler: record and wake; TERM/INT also abort a request served in this thread."""
        self._signals.record(signum)
        if signum in self.stop_now_signals and self._serving_request:
            self._serving_request = False
            raise StopNow(signum)

    stop_now_signals = (signal.SIGTERM, signal.SIGINT)
    _serving_request = False

    def _signal_queue(self) -> SignalQueue:
        if self._signals is None:
            self._signals = SignalQueue()
        return self._signals

    def _dispatch_signals(self, _token: Any = None) -> None:
        for signum in self._signals.drain():
            handler = getattr(self, "sig_" + signal_name(signum).lower(), None)
            if handler is not None:
                handler()

    def sig_int(self) -> None:
        self.log(2, "Received INT, stopping")
        self._shutdown_request = True

    def sig_term(self) -> None:
        self.log(2, "Received TERM, stopping")
        self._shutdown_request = True

    def sig_quit(self) -> None:
        self.log(2, "Received QUIT, stopping after the current connection")
        self._shutdown_request = True

    def _close_signals(self) -> None:
        if self._signals is not None:
            self._signals.close()
            self._signals = None

    # -- logging and errors ----------------------------------------------------------

    def log(self, level: int, message: str) -> None:
        """Log ``message`` at Net::Server level 0-4 (through ``write_to_log_hook``)."""
        if self.logger.enabled(level):
            self.write_to_log_hook(level, message)

    def fatal(self, message: str) -> None:
        """Log an unrecoverable error, call ``fatal_hook`` and raise :class:`ServerError`."""
        self.log(0, message)
        self.fatal_hook(message)
        raise ServerError(message)
