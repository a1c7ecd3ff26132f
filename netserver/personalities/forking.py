"""The parent side shared by Fork, PreForkSimple and PreFork.

Forking a child with the right hygiene, reaping children by ``waitpid``
alone, stopping them gracefully (QUIT), now (TERM/INT, then SIGKILL after
``stop_timeout``) or for a restart (HUP), TTIN/TTOU, ``sig_passthrough``,
dequeue children.  The personalities add only their loop and their policy.

Children are told what to do with signals:

- ``SIGQUIT``: finish the current connection, serve what is already queued, exit;
- ``SIGHUP``: finish the current connection, exit (the server restarts or shrinks);
- ``SIGTERM``: exit now.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from ..options import Option
from ..options.validators import to_float, to_int
from ..process.children import Child, ChildTable, Exit, describe_status
from ..signals import signal_name
from .base import PersonalityMixIn

__all__ = ["ProcessParentMixIn", "EXIT_OK", "EXIT_ERROR"]

EXIT_OK = 0
EXIT_ERROR = 1

_PARENT_ONLY_SIGNALS = ("SIGCHLD", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2")
_CHILD_SIGNALS = {signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}


class ProcessParentMixIn(PersonalityMixIn):
    """Parent-process machinery; see the module docstring."""

    drops_privileges_in_children = True

    OPTIONS = (
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
        self.children = ChildTable()
        self._stop_mode: Optional[str] = None  # "graceful" or "now"
        self._servers_delta = 0
        self._last_dequeue = time.monotonic()
        self._last_dead_check = time.monotonic()
        self._in_child = False

    # -- signals ---------------------------------------------------------------

    def signals_handled(self) -> List[int]:
        handled = super().signals_handled()
        handled += [signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP]
        handled += [getattr(signal, "SIG" + name) for name in self._passthrough()]
        return sorted(set(handled))

    def _passthrough(self) -> List[str]:
        config = getattr(self, "config", None)
        return list(config.sig_passthrough) if config is not None else []

    def _dispatch_signals(self, _token: Any = None) -> None:
        passthrough = self._passthrough()
        for signum in self._signals.drain():
            name = signal_name(signum)
            if name in passthrough:
                self.children.signal_all(signum)
            handler = getattr(self, "sig_" + name.lower(), None)
            if handler is not None:
                handler()

    def sig_chld(self) -> None:
        """Reaping happens on every pass of the loop; the signal only wakes it."""

    def sig_term(self) -> None:
        self.log(2, "Received TERM, stopping now")
        self._stop("now")

    def sig_int(self) -> None:
        self.log(2, "Received INT, stopping now")
        self._stop("now")

    def sig_quit(self) -> None:
        self.log(2, "Received QUIT, stopping gracefully: children finish their connections")
        self._stop("graceful")

    def _stop(self, mode: str) -> None:
        if self._stop_mode != "now":
            self._stop_mode = mode
        self._shutdown_request = True

    def sig_ttin(self) -> None:
        self._servers_delta += 1
        self.log(3, f"Received TTIN, {self.servers_now_text()}")

    def sig_ttou(self) -> None:
        if self.max_servers_now() <= 1:
            self.log(3, "Received TTOU, but max_servers is already 1")
            return
        self._servers_delta -= 1
        self.log(3, f"Received TTOU, {self.servers_now_text()}")

    def servers_now_text(self) -> str:
        return f"max_servers is now {self.max_servers_now()}"

    def max_servers_now(self) -> int:
        """``max_servers`` as configured, adjusted by TTIN/TTOU."""
        return max(self.config.max_servers + self._servers_delta, 1)

    # -- start-up and restart ---------------------------------------------------------

    def prepare_to_serve(self) -> None:
        super().prepare_to_serve()
        state = getattr(self, "_inherited_state", None) or {}
        self._servers_delta = int(state.get("servers_delta", 0))
        for pid in getattr(self, "_inherited_children", None) or ():
            self.children.add(Child(pid, "old"))
        self._stop_mode = None

    def before_restart(self) -> None:
        """HUP: children finish their connection and exit, unless ``leave_children_open_on_hup``."""
        if not self.config.leave_children_open_on_hup:
            self.children.signal_all(signal.SIGHUP)

    def restart_children(self) -> List[int]:
        return [child.pid for child in self.children]

    def restart_state(self) -> Dict[str, Any]:
        return {"servers_delta": self._servers_delta}

    def _restartable(self) -> bool:
        return self.is_netserver() and super()._restartable()

    def sig_hup(self) -> None:
        """Re-exec (over ``netserver.Server`` run by ``run()``), else replace the children."""
        if self._restartable():
            super().sig_hup()
            return
        self.log(2, "Received HUP: children finish their connections and are replaced")
        self.retire_children(self.children.of_kind(*self.pool_kinds))

    pool_kinds = ("prefork",)

    def retire_children(self, children: List[Child]) -> None:
        """Ask children to finish their connection and exit (SIGHUP)."""
        for child in children:
            child.retiring = True
            try:
                os.kill(child.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    # -- forking -----------------------------------------------------------------------

    def fork_child(self, kind: str, body: Callable[[], Any], slot: Optional[int] = None) -> Optional[int]:
        """Fork a child that runs ``body`` and exits; returns its pid in the parent."""
        self.pre_fork_hook()
        # Signals wait until the child has its own handlers: a QUIT or HUP sent to a child
        # that is still starting must retire it, not vanish into the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _CHILD_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)
            self.log(0, f"Could not fork a {kind} child: {exc}")
            return None
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)
            self.children.add(Child(pid, kind, slot))
            return pid
        code = EXIT_ERROR
        try:
            self._become_child()
            self.child_prepare()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)
            if self.is_netserver():
                self.drop_privileges()
            self.child_init_hook("dequeue" if kind == "dequeue" else "")
            body()
            self.child_finish_hook("dequeue" if kind == "dequeue" else "")
            code = EXIT_OK
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_OK
        except BaseException:
            try:
                self.log(0, f"Child {os.getpid()} died: {traceback.format_exc().rstrip()}")
            except BaseException:
                pass
        finally:
            os._exit(code)

    def _become_child(self) -> None:
        """A new child's first acts: signals, parent-only descriptors."""
        self._in_child = True
        signals = self._signals
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", *_PARENT_ONLY_SIGNALS):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        for name in ("SIGTTIN", "SIGTTOU", "SIGUSR1"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        if signals is not None:
            signals.close()  # the parent's wake-up pipe
            self._signals = None
        self.children = ChildTable()  # random is reseeded by CPython's own after-fork hook

    def waiting_clients_sockets(self) -> List[Any]:
        return []  # the accepting loop is elsewhere: a readable listener says nothing about us

    def child_prepare(self) -> None:
        """In a new child, before privileges are dropped (reopen what needs the old ids)."""

    def sig_usr1(self) -> None:
        """Reopen the log here, then in every child (they reopen between connections)."""
        super().sig_usr1()
        if "USR1" not in self._passthrough():
            self.children.signal_all(signal.SIGUSR1)

    def stop_server(self) -> None:
        """Ask the whole server to stop (from a child: signals the parent, unless ``no_close_by_child``)."""
        if not self._in_child:
            self._stop("now")
            return
        if self.config.no_close_by_child:
            self.log(1, "A child asked to stop the server, but no_close_by_child is set")
            return
        os.kill(os.getppid(), signal.SIGTERM)

    # -- reaping -----------------------------------------------------------------------

    def reap_children(self) -> List[Exit]:
        exits = self.children.reap()
        for exit in exits:
            if exit.child is None:
                self.other_child_died_hook(exit.pid)
            else:
                self.child_exited(exit)
                self.delete_child_hook(exit.pid)
        return exits

    def child_exited(self, exit: Exit) -> None:
        """Log an abnormal exit (the personality frees what the child held)."""
        if exit.failed and not exit.child.retiring and self._stop_mode is None:
            self.log(1, f"Child {exit.pid} ({exit.child.kind}) exited abnormally: {describe_status(exit.status)}")

    def service_actions(self) -> None:
        """Every pass of the parent loop: reap, check for the dead, run dequeue."""
        super().service_actions()
        self.reap_children()
        now = time.monotonic()
        if now - self._last_dead_check >= self.config.check_for_dead:
            self._last_dead_check = now
            self._forget_vanished_children()
        if self.config.max_dequeue and self.config.check_for_dequeue:
            if now - self._last_dequeue >= self.config.check_for_dequeue:
                self._last_dequeue = now
                if self.children.count("dequeue") < self.config.max_dequeue:
                    self.run_dequeue()

    def _forget_vanished_children(self) -> None:
        for child in self.children:
            try:
                os.kill(child.pid, 0)
            except ProcessLookupError:  # reaped by someone else's waitpid
                self.children.children.pop(child.pid, None)
                self.log(1, f"Child {child.pid} vanished without being reaped here")
                self.cleanup_dead_child_hook(child)
            except PermissionError:
                pass

    def run_dequeue(self) -> None:
        """Fork a dequeue child that calls :meth:`dequeue`."""
        self.fork_child("dequeue", self.dequeue)

    # -- stopping ----------------------------------------------------------------------

    def end_serving(self) -> None:
        """Stop the children, unless the server is about to re-exec (HUP).

        ``run()`` calls ``pre_server_close_hook`` before (in ``super()``) and
        ``post_child_cleanup_hook`` after, Net::Server's order."""
        super().end_serving()
        if getattr(self, "_restart_requested", False):
            return
        self.stop_children(graceful=self._stop_mode == "graceful")

    def stop_children(self, graceful: bool) -> None:
        """QUIT them and wait for all; or TERM them, wait ``stop_timeout``, then SIGKILL."""
        if graceful:
            self.children.signal_all(signal.SIGQUIT)
            self._wait_for_children(None)
            if not len(self.children):
                return
        self.children.signal_all(signal.SIGTERM)
        self._wait_for_children(self.config.stop_timeout)
        if len(self.children):
            self.log(1, f"Killing {len(self.children)} children that did not exit within "
                        f"{self.config.stop_timeout}s")
            self.children.signal_all(signal.SIGKILL)
            self._wait_for_children(None)

    def _wait_for_children(self, timeout: Optional[float]) -> None:
        """Reap until none are left, ``timeout`` passes, or (graceful wait) TERM/INT arrives."""
        deadline = None if timeout is None else time.monotonic() + timeout
        graceful = timeout is None and self._stop_mode == "graceful"
        while len(self.children):
            self.reap_children()
            if not len(self.children):
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
