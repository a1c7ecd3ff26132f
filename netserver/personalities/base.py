"""What every personality mixin shares: the engine, and its host chosen once.

``class S(PreForkMixIn, netserver.Server)`` is its own host: options from
all five sources, the Net::Server hooks and API.  ``class S(PreForkMixIn,
socketserver.TCPServer)`` — or over any socketserver class — gets a
private :class:`~netserver.host.StdlibHost`: its options come from
constructor keywords its host does not take (``S(addr, Handler,
max_servers=8)``), from class attributes (``max_servers = 8``), from a
``conf_file``, and from the command line only with ``command_line = True``;
the rest are the mixin's defaults.  The mixin's own names are all private.
"""

from __future__ import annotations

import signal
import socketserver
import sys
import threading

from ..engine import Engine
from ..hooks import positional_parameters
from ..host import StdlibHost, host_class, host_init, own_keywords, refused_keywords
from ..options import OptionError, Source, declared_options, normalize_template
from ..server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

__all__ = ["PersonalityMixIn", "SingleMixIn"]


class PersonalityMixIn(Engine):
    """Base of the ``XMixIn`` classes.

    Subclasses declare ``OPTIONS`` and create their per-instance state in
    ``_personality_init``, which runs before the base constructor (which may
    already bind and configure).
    """

    _personality = "Single"
    _decides_where_requests_run = False  # Fork, PreFork*, Thread: a host's ThreadingMixIn would fight them
    _binds_listeners = False  # compat's classes bind netserver's listeners (several ports, UNIX, SSL)

    def __init__(self, *args: Any, **options: Any):
        self._engine_init()
        self._personality_init()
        self._refuse_a_second_dispatcher()
        if isinstance(self, Server):  # the one place the kind of host is decided
            super().__init__(*args, **options)
            self._check_handler()
            return
        host = StdlibHost(self, {}, binds=self._binds_listeners)
        host._constructor_options = own_keywords(host_init(type(self), PersonalityMixIn), options,
                                                 normalize_template(host.options({})))
        if options:
            self._refuse_other_personalities_options(options)
        self._host = host
        self._hooked_process = host.hooked_process()
        # A verify_request of the program's class (above the personality) may skip super(): see Engine._admit.
        if type(self).verify_request is not Engine.verify_request:
            self._own_verify, self._admitted = True, threading.local()
        host.configure_hook()
        host.configure_owner()
        host.post_configure()
        host.post_configure_hook()
        super().__init__(*args, **options)
        self._check_handler()

    def _handle_request_noblock(self) -> None:
        """``handle_request()``'s step: the engine's, so that Net::Server's rules run before a
        ``verify_request`` of the program's own, as in ``serve_forever`` (socketserver's step
        would call only the override)."""
        if not self._own_verify:
            super()._handle_request_noblock()  # type: ignore[misc]  # socketserver's, over the rules' verify_request
            return
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        self._handle_connection(request, client_address)

    def _check_handler(self) -> None:
        """Refuse, when the server is made, a request handler class this personality cannot run
        (None: given later, to ``run()``)."""

    def _personality_init(self) -> None:
        """Create per-instance state (override; call super)."""

    # -- a host class with a serve_forever of its own -------------------------------------------
    # Werkzeug's BaseWSGIServer wraps socketserver's loop (it catches KeyboardInterrupt and closes
    # the server).  A mixin's loop comes first in the MRO, so the host's override would never run:
    # it is called instead, and netserver's loop takes the place of socketserver's the moment that
    # loop starts, when it asks for the server's fileno() to wait on it.

    _handing_over: Any = None  # the poll interval, while the host's own serve_forever runs
    _loop_handed_over = False  # netserver's loop is running in socketserver's place
    _loop_ran = False  # it has, during the host's serve_forever

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        around = None if self._handing_over is not None else self._host.serve_forever_around()
        if around is None:
            super().serve_forever(poll_interval)
            return
        self._handing_over = poll_interval
        self._loop_ran = False
        try:
            if _takes_an_argument(around):
                around(self, poll_interval)
            else:
                around(self)
        finally:
            self._handing_over = None
        if not self._loop_ran:
            self._host.log(1, f"{around.__qualname__} returned without running socketserver's loop, so "
                              f"netserver's loop did not run either")

    def fileno(self) -> int:
        if self._handing_over is not None and not self._loop_handed_over and _asked_by_socketserver_loop():
            self._loop_handed_over = self._loop_ran = True
            try:
                super().serve_forever(self._handing_over)
            finally:
                self._loop_handed_over = False
                self._shutdown_request = True  # socketserver's loop, which asked, ends at once
        return super().fileno()  # type: ignore[misc]  # the host class's (socketserver's TCPServer…)

    def _refuse_other_personalities_options(self, keywords: Dict[str, Any]) -> None:
        """A keyword left for the host that another personality declares (``max_servers`` to compat's
        ``ThreadingTCPServer``, the standard thread per connection): one error naming the option
        and who takes it, where the host would raise a bare ``TypeError``.  Other keywords (a
        typo, a host's own) go to the host, as with the standard classes."""
        refused = refused_keywords(host_init(type(self), PersonalityMixIn), keywords)
        if not refused:
            return  # the host takes them (its own parameters, or **kwargs)
        from . import PERSONALITIES, LoadError, load

        declared, mixin_of = {}, {}
        for personality in PERSONALITIES:
            try:
                server_class = load(personality)
            except LoadError:
                continue  # not usable here (HTTP without httptools, say)
            declared[personality] = declared_options(server_class)
            mixin_of[personality] = any(klass.__name__ == f"{personality}MixIn" and issubclass(klass, PersonalityMixIn)
                                        for klass in server_class.__mro__)  # one that goes over any class
        for name in refused:
            value = keywords[name]
            owners = [personality for personality, options in declared.items() if name in options]
            if not owners:
                continue
            mixins = [f"{owner}MixIn" for owner in owners if mixin_of[owner]]
            listed = ", ".join(mixins[:-1]) + " or " + mixins[-1] if len(mixins) > 1 else "".join(mixins)
            who = f"netserver's {listed} over your class takes it" if mixins else \
                f"it is an option of netserver.{owners[0]} servers"
            raise OptionError(name, value, Source(Source.CONSTRUCTOR),
                              f"{type(self).__name__} has no such option ({who})")

    def _refuse_a_second_dispatcher(self) -> None:
        """A host with socketserver's ThreadingMixIn/ForkingMixIn already decides where a request runs."""
        if not self._decides_where_requests_run:
            return
        for stdlib_mixin in (socketserver.ThreadingMixIn, socketserver.ForkingMixIn):
            if isinstance(self, stdlib_mixin):
                mixin = next(k.__name__ for k in type(self).__mro__ if k.__module__.startswith("netserver."))
                raise TypeError(
                    f"{type(self).__name__}: {mixin} and socketserver.{stdlib_mixin.__name__} both decide where "
                    f"a request runs, so {mixin}'s max_servers would bound nothing; put {mixin} over the plain "
                    f"class ({host_class(type(self)).__name__} without {stdlib_mixin.__name__}: TCPServer, "
                    f"HTTPServer…)")

    def _signals_handled(self) -> List[int]:
        return sorted(set(super()._signals_handled() + [signal.SIGUSR1]))

    def _sig_usr1(self) -> None:
        """Reopen the log files (after logrotate moved them)."""
        self._host.reopen_logs()
        self._host.log(2, "Received USR1, reopened the log files")

    def server_close(self) -> None:
        """The host class's ``server_close``, then netserver's share (pid file, listeners, log).

        (``netserver.Server`` has its own, which does both.)
        """
        super().server_close()
        self._close_signals()
        self._host.server_closed()


def _asked_by_socketserver_loop() -> bool:
    """Whether ``fileno()`` was called by ``socketserver.BaseServer.serve_forever`` (registering
    the server with its selector: a few frames up, more if the program wraps ``fileno``), not by
    anything else that asks.  Walked only while a host's own ``serve_forever`` runs."""
    loop = socketserver.BaseServer.serve_forever.__code__
    frame: Any = sys._getframe(2)
    while frame is not None:
        if frame.f_code is loop:
            return True
        frame = frame.f_back
    return False


def _takes_an_argument(function: Any) -> bool:
    """Whether ``function(self, x)`` is a call it accepts (a ``serve_forever`` without ``poll_interval``)."""
    count = positional_parameters(function)
    return count is None or count >= 2


class SingleMixIn(PersonalityMixIn):
    """Net::Server's one-process server over any socketserver class.

    What it adds to the class: options (keywords, class attributes,
    ``conf_file``, an opted-in command line), access control in
    ``verify_request``, netserver's log, pid file, privilege drop and
    daemonizing when asked, signals handled in the loop and a
    ``shutdown()`` that takes effect at once.  ``compat.socketserver``'s
    servers are this mixin over the standard classes.
    """

    _personality = "Single"
