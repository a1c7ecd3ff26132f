"""Every Net::Server hook, as a documented no-op, in the order the flow calls them.

Override any of them in a subclass.  Each docstring says in which process the
hook runs, what has happened before it, and what its return value means.
The flow itself is written once, in :meth:`netserver.server.Server.run`.
"""

from __future__ import annotations

import functools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


if TYPE_CHECKING:
    from .log import ServerLog

__all__ = ["HookMixIn", "fitted", "fitted_to", "positional_parameters"]

_CO_VARARGS = 0x04  # the code object's flag for a *args parameter


def positional_parameters(function: Any) -> Optional[int]:
    """How many positional parameters a plain function names (``self`` counted); None when it
    takes ``*args`` or has no Python code (it may take any number).  Read from the code object:
    ``inspect`` would load ``ast`` and ``dis`` into every server."""
    code = getattr(function, "__code__", None)
    if code is None or code.co_flags & _CO_VARARGS:
        return None
    return code.co_argcount


def fitted(name: str, function: Any, arguments: int) -> Any:
    """``function`` (an override of hook ``name``, taking ``self``) as netserver calls it, with
    ``arguments`` positional arguments after ``self``.

    Net::Server passes its hooks nothing but the server, so an override written that way
    (``def post_accept_hook(self):``) is given none: as in Perl, it takes the arguments it names
    and the rest are left out.  One that needs more than netserver passes is refused here, when
    its class is made, not with a ``TypeError`` on every connection (except a method that shares
    the name of a hook netserver calls only when asked: ``dequeue``, ``run_dequeue``,
    ``can_read_hook``).  Anything that is not a plain function (a static method, a C function,
    a ``*args`` wrapper) is returned as it is."""
    count = positional_parameters(function)
    if count is None or not callable(function):
        return function
    takes = count - 1  # after self
    required = takes - len(getattr(function, "__defaults__", None) or ())
    if required > arguments and name in _CALLED_UNASKED:
        raise TypeError(f"{function.__qualname__} takes {required} argument(s) after self, but netserver calls "
                        f"{name} with {arguments}: {_SIGNATURES.get(name, name + '(self)')}")
    if takes >= arguments:
        return function  # as declared, or a method that merely shares a name netserver calls only when asked

    @functools.wraps(function)
    def hook(self: Any, *given: Any) -> Any:
        return function(self, *given[:takes])

    return hook


class HookMixIn:
    """Net::Server's hooks.  Methods that may be overridden: all of them.

    A subclass's override may take fewer arguments than the hook declares (Net::Server's hooks
    take none): see :func:`fitted`."""

    _logger: "ServerLog"  # netserver.Server's log, which write_to_log_hook writes to

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, arguments in _ARGUMENTS.items():
            for klass in cls.__mro__:  # the override in use: cls's own, or a plain mixin's before HookMixIn
                if name in vars(klass):
                    function = vars(klass)[name]
                    if (klass is cls or not issubclass(klass, HookMixIn)) and type(function) is _FUNCTION:
                        fitted_function = fitted(name, function, arguments)
                        if fitted_function is not function:
                            setattr(cls, name, fitted_function)
                    break

    # -- start-up (parent process) ------------------------------------------

    def configure_hook(self) -> None:
        """First thing ``run()`` does, before any option is read."""

    def post_configure_hook(self) -> None:
        """After options are read, logging is open and the pid file written; before binding.

        The place to validate your own options (``self.config``)."""

    def post_bind_hook(self) -> None:
        """After every listener is bound, still as the starting user (before chroot/user/group)."""

    def pre_loop_hook(self) -> None:
        """After privileges are dropped, just before the server starts accepting."""

    def can_read_hook(self, handle: Any) -> bool:
        """An extra handle registered with ``add_read_handle`` is readable.

        Return True when it was dealt with; it is never treated as a connection."""
        return False

    # -- each connection (the process that serves it) ------------------------

    def post_accept_hook(self, request: Any) -> None:
        """A connection was accepted and ``self.client`` describes it; before access control."""

    def allow_deny_hook(self, request: Any) -> bool:
        """Your own access check, after the allow/deny rules passed; return False to refuse."""
        return True

    def request_denied_hook(self, request: Any) -> None:
        """The connection was refused by the rules or ``allow_deny_hook``; it is closed next."""

    def post_process_request_hook(self, request: Any) -> None:
        """The handler has finished; the connection is still open."""

    def post_client_connection_hook(self, request: Any) -> None:
        """The connection has been closed; last step for this client."""

    # -- forking personalities --------------------------------------------------

    def pre_fork_hook(self) -> None:
        """In the parent, just before a child is forked."""

    def child_init_hook(self, kind: str = "") -> None:
        """In a new child, after signals are reset and parent-only fds closed.

        ``kind`` is ``"dequeue"`` for a dequeue child."""

    def child_finish_hook(self, kind: str = "") -> None:
        """In a child, just before it exits."""

    def delete_child_hook(self, pid: int) -> None:
        """In the parent: a child it started has exited and is being forgotten."""

    def pre_thread_hook(self) -> None:
        """Thread: a connection was accepted and is about to be handed to a worker thread."""

    def other_child_died_hook(self, pid: int) -> None:
        """In the parent: a child the server did not start has exited (its status is reaped)."""

    def pre_accept_hook(self) -> None:
        """Fork and Thread: in the accepting process, just before each ``accept``."""

    def run_n_children_hook(self, n: int) -> None:
        """PreForkSimple/PreFork parent: ``n`` pool children are about to be forked."""

    def idle_loop_hook(self, readable: Any = ()) -> None:
        """PreForkSimple/PreFork parent: each pass of the parent's loop.

        ``readable`` lists the ``child_communication`` sockets that can be read
        now (Net::Server's array of readable handles); empty otherwise."""

    def child_is_talking_hook(self, sock: Any) -> None:
        """PreFork parent, with ``child_communication``: a child wrote to its socket.

        ``sock`` is the parent's end of that child's socketpair (the child's
        end is ``self.parent_sock`` in the child); read what the child wrote.
        An end of file means the child has exited."""

    def parent_read_hook(self, line: str) -> bool:
        """PreFork parent: a child's status changed; ``line`` is ``"<pid> <status>\n"``.

        Status is ``waiting``, ``processing`` or ``exiting``, as Net::Server's
        children write them; return True to end the server's loop."""
        return False

    def cleanup_dead_child_hook(self, child: Any) -> None:
        """Forking parents: a child vanished without being reaped here (found by ``check_for_dead``).

        Clean up what it may have left (temporary files, locks)."""

    def run_dequeue(self) -> None:
        """Every ``check_for_dequeue`` seconds.  Forking parents: fork a child that calls
        :meth:`dequeue`.  Multiplex: called in the serving process itself (override it)."""
        self._fork_dequeue()

    def _fork_dequeue(self) -> None:
        """The forking personalities fork the dequeue child here; nothing to fork in one process."""

    def dequeue(self) -> None:
        """In a dequeue child: process whatever queue your application keeps."""

    # -- logging and errors ---------------------------------------------------------

    def write_to_log_hook(self, level: int, message: str) -> None:
        """Write one log line; the default sends it to the configured ``log_file``."""
        self._logger.write(level, message)

    def fatal_hook(self, message: str, package: Any = None, file: Any = None, line: Any = None) -> None:
        """An unrecoverable error (a bind failure, say); the server logs it and raises after this returns.

        As in Net::Server: the message, then the module, file and line of the caller of ``fatal``."""

    # -- shutting down and restarting ---------------------------------------------------

    def pre_server_close_hook(self) -> None:
        """``run()``'s loop is ending; before children are stopped and sockets closed."""

    def post_child_cleanup_hook(self) -> None:
        """After ``pre_server_close_hook``: every child is gone (in every personality, Single included).

        The pid file and lock files still exist."""

    def restart_close_hook(self) -> None:
        """HUP: just before the server re-executes itself (listeners stay open)."""

    def restart_open_hook(self) -> None:
        """HUP: in the new image, just before the inherited listeners are taken over."""


_FUNCTION = type(fitted)
#: Each hook's name → how many arguments netserver passes it after ``self``.
_ARGUMENTS = {name: value.__code__.co_argcount - 1 for name, value in vars(HookMixIn).items()
              if not name.startswith("_") and type(value) is _FUNCTION}
#: Hooks netserver calls whatever the options (refused at class creation when they need more
#: arguments); ``dequeue``/``run_dequeue``/``can_read_hook`` run only when an option or a call asks,
#: so a program's own method of that name is left alone.
_CALLED_UNASKED = frozenset(_ARGUMENTS) - {"dequeue", "run_dequeue", "can_read_hook"}
_SIGNATURES = {name: f"{name}(self{''.join(', ' + arg for arg in vars(HookMixIn)[name].__code__.co_varnames[1:count + 1])})"
               for name, count in _ARGUMENTS.items()}


def fitted_to(owner: Any, name: str) -> Any:
    """``owner``'s own hook ``name`` (a class of the program's, not a ``HookMixIn``), bound to it
    and fitted as :func:`fitted` fits a subclass's."""
    for klass in type(owner).__mro__:
        if name in vars(klass):
            function = vars(klass)[name]
            if type(function) is _FUNCTION:
                return fitted(name, function, _ARGUMENTS[name]).__get__(owner)
            break
    return getattr(owner, name)
