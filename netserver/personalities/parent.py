"""The parent side shared by Fork, PreForkSimple and PreFork.

Forking a child with the right hygiene, reaping children by ``waitpid``
alone, stopping them gracefully (QUIT), now (TERM/INT, then SIGKILL after
``stop_timeout``) or for a restart (HUP), TTIN/TTOU, ``sig_passthrough``,
dequeue children.  The personalities add only their loop and their policy.
What only a child has (its parent's pid, the flags its signal handlers set)
is what ``_new_child`` makes in the child (PreForkSimple's ``PoolChild``;
none for a Fork child, which serves one connection and exits), never the server's.

Children are told what to do with signals:

- ``SIGQUIT``: finish the current connection, serve what is already queued, exit;
- ``SIGHUP``: finish the current connection, exit (the server restarts or shrinks);
- ``SIGTERM``: exit now.
"""

from __future__ import annotations

import _signal
import gc
import os
import signal
import time

from ..options import Option
from ..options.validators import to_float, to_int
from ..process.children import Child, ChildTable, Exit, describe_status
from .deadlines import ChildDeadlinesMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from ..process.child import PoolChild

__all__ = ["ProcessParentMixIn", "EXIT_OK", "EXIT_ERROR"]

EXIT_OK = 0
EXIT_ERROR = 1

_PARENT_ONLY_SIGNALS = ("SIGCHLD", "SIGTTIN", "SIGTTOU", "SIGUSR2")
_CHILD_SIGNALS = {signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
# What a new child resets, as plain numbers for ``_signal``: ``signal.signal`` and
# ``signal.pthread_sigmask`` convert through the ``Signals``/``Handlers`` enums, whose objects a
# child would then write (reference counts) and so copy: ~0.1 MiB per child (issue 15).
_CHILD_IGNORED = tuple(int(getattr(signal, name)) for name in ("SIGTTIN", "SIGTTOU"))
_CHILD_DEFAULT = tuple(sorted({int(getattr(signal, name)) for name in
                               ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", *_PARENT_ONLY_SIGNALS)} - set(_CHILD_IGNORED)))
_CHILD_MASK = tuple(sorted(int(signum) for signum in _CHILD_SIGNALS))


_PR_SET_PDEATHSIG = 1


def _follow_parent(parent: int) -> bool:
    """In a new child: get SIGHUP (finish the connection, exit) the moment ``parent`` dies.

    ``PR_SET_PDEATHSIG`` (Linux) replaces waiting for an idle moment to notice
    an orphaned state; the ``getppid`` check after it closes the window in
    which the parent died before the request was made.  False: already orphaned.
    The kernel clears the setting when the process changes its ids, so it is
    made again after the privilege drop.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGHUP, 0, 0, 0)
    return os.getppid() == parent


def _load_prctl() -> Any:
    """libc's ``prctl`` as a callable of int arguments, or None (not Linux: the idle-time
    ``getppid`` check still catches an orphan).

    Built from ``_ctypes`` alone, as ``ctypes.CDLL(None).prctl`` is built: the ``ctypes``
    package defines a hundred classes and brings ``struct``, a child calling through them copies
    the pages they share (a pool child's USS: ~30 KiB), and its import takes 1.5 ms against
    0.4.  ``ctypes`` is the fallback where ``_ctypes`` differs (another interpreter)."""
    try:
        import _ctypes

        class _Function(_ctypes.CFuncPtr):  # int (*)(...), C's default: ints in, an int out
            _flags_ = _ctypes.FUNCFLAG_CDECL

        class _Process:  # what CFuncPtr((name, library)) reads: a dlopen handle, here the process's own
            _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]  # None: the process (dlopen(3))

        return _Function(("prctl", _Process))  # type: ignore[arg-type]  # any object with _handle
    except (OSError, AttributeError, ImportError, TypeError):
        pass
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError, ImportError):
        return None


_SIGHUP = int(signal.SIGHUP)
# Objects frozen before this module was imported: the interpreter's own (3.12 freezes some at start).
# A count that has moved since means the program freezes objects itself, and decides for itself.
_FREEZE_BASELINE = gc.get_freeze_count()
_SIGUSR1 = int(signal.SIGUSR1)
# Loaded by the first fork, in the parent (children inherit it): _ctypes costs ~0.4 ms of import,
# which a program that never forks (Single, Thread, Multiplex) need not pay (issue 15).
_prctl: Any = None
_prctl_loaded = False


def _ensure_prctl() -> None:
    global _prctl, _prctl_loaded
    if not _prctl_loaded:
        _prctl, _prctl_loaded = _load_prctl(), True


_heap_frozen = False


def _freeze_heap() -> None:
    """At the first fork, what exists (modules, the app, the configuration, the pool's own state,
    prctl) is frozen: a child's collections then skip it, where each would visit, and so
    write to and copy, every page of the inherited heap.  Once, not per fork: the parent's later
    objects stay young and collectable.  Not earlier, when serving starts: what the personality
    makes between then and the first fork (the scoreboard, prctl: hundreds of tracked objects) would be
    visited by every child's collections.  A program that freezes objects itself decides for
    itself."""
    global _heap_frozen
    _heap_frozen = True
    if gc.get_freeze_count() == _FREEZE_BASELINE:
        gc.freeze()


class ProcessParentMixIn(ChildDeadlinesMixIn):
    """Parent-process machinery; see the module docstring."""

    _drops_privileges_in_children = True
    _decides_where_requests_run = True
    _pool_kinds: Tuple[str, ...] = ("prefork",)  # the kinds of child a HUP without re-exec replaces

    OPTIONS: Tuple[Option, ...] = (
        Option("check_for_dead", to_float, 30.0, section="Processes", metavar="SECONDS",
               doc="How often the parent double-checks that the children it counts are alive."),
        Option("max_dequeue", to_int(0), 0, section="Processes", metavar="N",
               doc="Dequeue children to keep running (0: none); each calls dequeue()."),
        Option("check_for_dequeue", to_float, 0.0, section="Processes", metavar="SECONDS",
               doc="Seconds between dequeue runs (0: never)."),
        Option("stop_timeout", to_float, 5.0, section="Processes", metavar="SECONDS",
               doc="On TERM/INT, how long children get to exit before SIGKILL."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._children = ChildTable()
        # What a new child starts with, made here once: the parent never touches it, and each
        # child gets its own copy with the fork, without allocating one (issue 12).
        self._childless = ChildTable()
        self._child_signals: Tuple[Tuple[int, Any], ...] = ()  # see _plan_child_signals
        self._stop_mode: Optional[str] = None  # "graceful" or "now"
        self._servers_delta = 0
        self._last_dequeue = time.monotonic()
        self._last_dead_check = time.monotonic()
        self._in_child = False
        self._child: Optional[PoolChild] = None  # in a pool's child: its own state (process/child.py)

    # -- signals ---------------------------------------------------------------

    def _signals_handled(self) -> List[int]:
        handled = super()._signals_handled()
        handled += [signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP]
        handled += [getattr(signal, "SIG" + name) for name in self._passthrough()]
        return sorted(set(handled))

    def _passthrough(self) -> List[str]:
        return list(self._host.config.sig_passthrough)

    def _dispatch_signal(self, signum: int, name: str) -> None:
        """``sig_passthrough`` signals go to every child first, then to this process's handler."""
        if name in self._host.config.sig_passthrough:
            self._children.signal_all(signum)
        super()._dispatch_signal(signum, name)

    def _sig_chld(self) -> None:
        """Reaping happens on every pass of the loop; the signal only wakes it."""

    def _sig_term(self) -> None:
        self._host.log(2, "Received TERM, stopping now")
        self._stop("now")

    def _sig_int(self) -> None:
        self._host.log(2, "Received INT, stopping now")
        self._stop("now")

    def _sig_quit(self) -> None:
        self._host.log(2, "Received QUIT, stopping gracefully: children finish their connections")
        self._stop("graceful")

    def shutdown(self) -> None:
        """Stop ``serve_forever`` as QUIT does: children finish what they serve (as ``ForkingMixIn``
        with ``block_on_close``); returns once they have."""
        if self._stop_mode is None:
            self._stop_mode = "graceful"
        super().shutdown()

    def _stop(self, mode: str) -> None:
        if self._stop_mode != "now":
            self._stop_mode = mode
        self._shutdown_request = True

    def _sig_ttin(self) -> None:
        self._servers_delta += 1
        self._host.log(3, f"Received TTIN, {self._servers_now_text()}")

    def _sig_ttou(self) -> None:
        if self._max_servers_now() <= 1:
            self._host.log(3, "Received TTOU, but max_servers is already 1")
            return
        self._servers_delta -= 1
        self._host.log(3, f"Received TTOU, {self._servers_now_text()}")

    def _servers_now_text(self) -> str:
        return f"max_servers is now {self._max_servers_now()}"

    def _max_servers_now(self) -> int:
        """``max_servers`` as configured, adjusted by TTIN/TTOU."""
        return max(self._host.config.max_servers + self._servers_delta, 1)

    # -- start-up and restart ---------------------------------------------------------

    def _prepare_to_serve(self) -> None:
        super()._prepare_to_serve()
        state = self._host.inherited_state
        self._servers_delta = int(state.get("servers_delta", 0))
        for pid in self._host.inherited_children:
            self._children.add(Child(pid, "old"))
        self._retire_by_deadline([child.pid for child in self._children.of_kind("old")])  # HUP'd before the exec
        self._stop_mode = None
        self._child_signals = self._plan_child_signals()

    # Signals a personality's children ignore besides TTIN/TTOU (Fork's: HUP and QUIT).
    _child_ignores: Tuple[int, ...] = ()
    # Signals its children handle themselves (a pool's: HUP and QUIT, in _child_prepare, still blocked):
    # left out of the plan, which would only set them to their default first.
    _child_handles: Tuple[int, ...] = ()

    def _plan_child_signals(self) -> Tuple[Tuple[int, Any], ...]:
        """``(signal, disposition)`` for every new child, decided once in the parent: the parent's
        signals back to their default (one the program ignores stays ignored), TTIN/TTOU and
        ``_child_ignores`` ignored.  A child then makes one ``sigaction`` per signal and asks
        nothing (every question would write to pages the fork shares)."""
        ignored = set(_CHILD_IGNORED) | set(self._child_ignores)
        plan = [(signum, _signal.SIG_DFL) for signum in _CHILD_DEFAULT
                if signum not in ignored and signum not in self._child_handles
                and _signal.getsignal(signum) is not _signal.SIG_IGN]
        plan += [(signum, _signal.SIG_IGN) for signum in sorted(ignored)]
        return tuple(plan)

    def _before_restart(self) -> None:
        """HUP: children finish their connection and exit, unless ``leave_children_open_on_hup``."""
        if not self._host.config.leave_children_open_on_hup:
            self._children.signal_all(signal.SIGHUP)

    def _restart_children(self) -> List[int]:
        return [child.pid for child in self._children]

    def _restart_state(self) -> Dict[str, Any]:
        return {"servers_delta": self._servers_delta}

    def _sig_hup(self) -> None:
        """Re-exec (over ``netserver.Server`` run by ``run()``), else replace the children."""
        if self._host.restartable():
            super()._sig_hup()  # type: ignore[misc]  # netserver.Server's re-exec (restart.py), next in its MRO
            return
        self._host.log(2, "Received HUP: children finish their connections and are replaced")
        self._retire_children(self._children.of_kind(*self._pool_kinds), replace=True)

    def _retire_children(self, children: List[Child], replace: bool = False) -> None:
        """Ask children to finish their connection and exit (SIGHUP).

        ``replace``: each is owed a successor, which a pool forks at once (a
        replacement is not growth, so the spawn rate does not apply).
        """
        for child in children:
            child.retiring = True
            try:
                os.kill(child.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
        self._retire_by_deadline([child.pid for child in children])

    # -- forking -----------------------------------------------------------------------

    def _fork_child(self, kind: str, body: Callable[..., Any], slot: Optional[int] = None,
                    args: Tuple[Any, ...] = ()) -> Optional[int]:
        """Fork a child that runs ``body(*args)`` and exits; returns its pid in the parent.

        (The arguments, not a closure: Fork calls this per connection, and a closure's function
        and cells are objects the parent allocates and frees on pages the fork shares.)"""
        self._host.pre_fork_hook()
        # Signals wait until the child has its own handlers: a QUIT or HUP sent to a child
        # that is still starting must retire it, not vanish into the parent's handler.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _CHILD_MASK)
        # A child asks for SIGHUP at its parent's death (_follow_parent) unless it ignores HUP (Fork's
        # children finish their connection whatever happens): then no prctl and no getpid per child,
        # and no _ctypes and libffi (mappings every fork copies and every exit tears down) in the parent.
        parent = 0
        follow = _SIGHUP not in self._child_ignores
        if follow:
            parent = os.getpid()
            _ensure_prctl()
        if not _heap_frozen:
            _freeze_heap()
        try:
            pid = os.fork()
        except OSError as exc:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _CHILD_MASK)
            self._host.log(0, f"Could not fork a {kind} child: {exc}")
            return None
        if pid:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _CHILD_MASK)
            self._children.add(Child(pid, kind, slot))
            return pid
        code = EXIT_ERROR
        self._child_slot = slot
        try:
            if follow and not _follow_parent(parent):
                code = EXIT_OK
                return None  # the parent died while we were being born: nothing to serve for
            self._become_child(kind, slot, parent)
            self._child_prepare()
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _CHILD_MASK)
            self._host.leave_parent_files()  # the pid file's lock and descriptor are the parent's (issue 14)
            self._host.drop_privileges()
            if follow and not _follow_parent(parent):  # changing ids cleared PR_SET_PDEATHSIG: set it again
                code = EXIT_OK
                return None
            self._host.child_init_hook("dequeue" if kind == "dequeue" else "")
            body(*args)
            self._host.child_finish_hook("dequeue" if kind == "dequeue" else "")
            code = EXIT_OK
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_OK
        except BaseException:
            try:
                import traceback

                self._host.log(0, f"Child {os.getpid()} died: {traceback.format_exc().rstrip()}")
            except BaseException:
                pass
        finally:
            os._exit(code)

    def _become_child(self, kind: str, slot: Optional[int], parent: int) -> None:
        """A new child's first acts: its own state, signals, parent-only descriptors."""
        self._in_child = True
        child = self._child = self._new_child(kind, slot, parent)
        signals = self._signals
        for signum, disposition in self._child_signals:  # planned by _prepare_to_serve
            _signal.signal(signum, disposition)
        # A pool child reopens its log on USR1 (one pending since the fork is not dropped); a Fork
        # child, done after one connection, has nothing to reopen.
        _signal.signal(_SIGUSR1, child.on_usr1 if child is not None else _signal.SIG_IGN)
        if signals is not None:
            signals.close()  # the parent's wake-up pipe
            self._signals = None
        self._children = self._childless  # random is reseeded by CPython's own after-fork hook

    def _new_child(self, kind: str, slot: Optional[int], parent: int) -> Optional[PoolChild]:
        """The state of the child being born (in it, right after ``fork``): a pool's; none here."""
        return None

    def _waiting_clients_sockets(self) -> List[Any]:
        return []  # the accepting loop is elsewhere: a readable listener says nothing about us

    def _request_state(self, busy: bool) -> None:
        super()._request_state(busy)
        if not busy and self._child is not None:
            self._child.brief = False  # the board's flag, which request_state has just cleared

    def _child_prepare(self) -> None:
        """In a new child, before privileges are dropped (reopen what needs the old ids)."""

    def _sig_usr1(self) -> None:
        """Reopen the log here, then in every child (they reopen between connections)."""
        super()._sig_usr1()
        if "USR1" not in self._passthrough():
            self._children.signal_all(signal.SIGUSR1)

    def _stop_server(self) -> None:
        """Ask the whole server to stop (from a child: signals the parent, unless ``no_close_by_child``)."""
        if not self._in_child:
            self._stop("now")
            return
        if self._host.config.no_close_by_child:
            self._host.log(1, "A child asked to stop the server, but no_close_by_child is set")
            return
        os.kill(os.getppid(), signal.SIGTERM)

    # -- reaping -----------------------------------------------------------------------

    def _reap_children(self) -> List[Exit]:
        exits = self._children.reap()
        for exit in exits:
            if exit.child is None:
                self._host.other_child_died_hook(exit.pid)
            else:
                self._child_exited(exit)
                self._host.delete_child_hook(exit.pid)
        return exits

    def _child_exited(self, exit: Exit) -> None:
        """Log an abnormal exit (the personality frees what the child held)."""
        child = exit.child
        assert child is not None  # _reap_children passes only the server's own children here
        if exit.failed and not child.retiring and self._stop_mode is None:
            self._host.log(1, f"Child {exit.pid} ({child.kind}) exited abnormally: {describe_status(exit.status)}")

    def service_actions(self) -> None:
        """Every pass of the parent loop: reap, check for the dead, run dequeue."""
        super().service_actions()
        self._reap_children()
        now = time.monotonic()
        self._check_deadlines(now)  # child_timeout, graceful_timeout
        if now - self._last_dead_check >= self._host.config.check_for_dead:
            self._last_dead_check = now
            self._forget_vanished_children()
        if self._host.config.max_dequeue and self._host.config.check_for_dequeue:
            if now - self._last_dequeue >= self._host.config.check_for_dequeue:
                self._last_dequeue = now
                if self._children.count("dequeue") < self._host.config.max_dequeue:
                    self._host.run_dequeue()

    def _forget_vanished_children(self) -> None:
        for child in self._children:
            try:
                os.kill(child.pid, 0)
            except ProcessLookupError:  # reaped by someone else's waitpid
                self._children.remove(child.pid)
                self._host.log(1, f"Child {child.pid} vanished without being reaped here")
                self._host.cleanup_dead_child_hook(child)
            except PermissionError:
                pass

    def _fork_dequeue(self) -> None:
        """Fork a dequeue child that calls :meth:`dequeue`."""
        self._fork_child("dequeue", self._host.dequeue)

    # -- stopping ----------------------------------------------------------------------

    def _end_serving(self) -> None:
        """Stop the children, unless the server is about to re-exec (HUP).

        ``run()`` calls ``pre_server_close_hook`` before (in ``super()``) and
        ``post_child_cleanup_hook`` after, Net::Server's order."""
        super()._end_serving()
        if self._restart_requested:
            return
        if self._stop_mode is None:
            self._stop_mode = "now"  # KeyboardInterrupt or an error left the loop: the TERMs are ours
        self._stop_children(graceful=self._stop_mode == "graceful")

    def _stop_children(self, graceful: bool) -> None:
        """QUIT them and wait for all; or TERM them, wait ``stop_timeout``, then SIGKILL."""
        if graceful:
            self._children.signal_all(signal.SIGQUIT)
            limit = self._host.config.graceful_timeout
            self._wait_for_children(limit or None, graceful=True)
            if not len(self._children):
                return
            if self._stop_mode == "graceful":
                self._host.log(1, f"Stopping {len(self._children)} children still busy after graceful_timeout "
                                  f"({limit:g}s)")
        self._children.signal_all(signal.SIGTERM)
        self._wait_for_children(self._host.config.stop_timeout)
        if len(self._children):
            self._host.log(1, f"Killing {len(self._children)} children that did not exit within "
                              f"{self._host.config.stop_timeout}s")
            self._children.signal_all(signal.SIGKILL)
            self._wait_for_children(None)

    def _wait_for_children(self, timeout: Optional[float], graceful: bool = False) -> None:
        """Reap until none are left, ``timeout`` passes, or (graceful wait) TERM/INT arrives."""
        deadline = None if timeout is None else time.monotonic() + timeout
        graceful = graceful and self._stop_mode == "graceful"
        while len(self._children):
            self._reap_children()
            if not len(self._children):
                return
            if graceful and self._stop_mode == "now":
                return
            remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if remaining <= 0:
                return
            self._wait_signal(remaining)

    def _wait_signal(self, timeout: float) -> None:
        """Sleep until a signal arrives (SIGCHLD above all) or ``timeout`` passes."""
        import select

        signals = self._signals
        if signals is None:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([signals.fileno()], [], [], timeout)
        if ready:
            self._dispatch_signals()
