"""PreForkSimple: a fixed pool of ``max_servers`` children, each serving up to ``max_requests``.

This module is the parent's side (the pool, the scoreboard, the accept
lock) and the child's set-up; the child's loop and its state are
:class:`netserver.process.child.PoolChild`, shared with PreFork and the
HTTP event loop.  It is the hot path: accept on a non-blocking listener
(one system call per connection while there is work), serve, and only when
the queue is empty wait in ``epoll`` with ``EPOLLEXCLUSIVE`` so one child
is woken per connection — no thundering herd and, on Linux, no accept
lock.  The child reports its state in the shared scoreboard with plain
memory writes.
"""

from __future__ import annotations

import _signal
import errno
import os
import select
import signal
import socket
import time

from ..options import Option
from ..options.validators import choice, to_bool, to_int, to_optional_str
from ..process.child import EXCLUSIVE, PoolChild, request_limit
from ..process.children import Exit
from ..process.pool import CrashBackoff, SpawnThrottle
from ..process.scoreboard import IDLE, STARTING, Scoreboard
from ..process.serialize import SERIALIZERS, AcceptLock, NoLock, make_lock
from ..server import Server
from ..signals import SignalQueue
from .parent import ProcessParentMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

__all__ = ["PreForkSimpleMixIn", "PreForkSimple"]

_SIGHUP, _SIGQUIT = int(signal.SIGHUP), int(signal.SIGQUIT)


# Options a personality sets on its listeners after binding (HTTP: defer_accept, timeout_idle's
# send limit), which a child's own reuse_port socket takes from the shared one: (level, name, size).
_SHARED_OPTIONS = tuple((level, getattr(socket, name), size) for level, name, size in (
    (socket.IPPROTO_TCP, "TCP_DEFER_ACCEPT", 0), (socket.SOL_SOCKET, "SO_SNDTIMEO", 16))
    if hasattr(socket, name))


def _copy_options(shared: socket.socket, own: socket.socket) -> None:
    for level, name, size in _SHARED_OPTIONS:
        own.setsockopt(level, name, shared.getsockopt(level, name, size) if size else shared.getsockopt(level, name))


def killed_from_outside(status: int) -> bool:
    """Killed by a signal an operator or supervisor sends (not by its own fault: SEGV, ABRT, BUS...)."""
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT,
                                                             signal.SIGQUIT, signal.SIGHUP)


class PreForkSimpleMixIn(ProcessParentMixIn):
    """Keeps exactly ``max_servers`` children (TTIN/TTOU adjust it); replaces any that exit."""

    _personality = "PreForkSimple"
    _child_handles = (_SIGHUP, _SIGQUIT)  # PoolChild.on_retire, installed by _child_prepare

    OPTIONS: Tuple[Option, ...] = (
        # max_servers is declared by Fork (256), PreForkSimple/PreFork (50) and Thread (256): Net::Server's
        # own defaults, which differ because a pool is forked ahead of load while Fork and Thread only
        # bound what load creates; a MultiType takes the chosen personality's.
        Option("max_servers", to_int(1), 50, section="PreFork", metavar="N",
               doc="Children in the pool (PreFork: at most this many)."),
        Option("max_requests", to_int(0), 1000, section="PreFork", metavar="N",
               doc="Connections a child serves before it is replaced (0: no limit); "
                   "each child adds a random 0..max_requests_jitter."),
        Option("max_requests_jitter", to_int(0), None, section="PreFork", metavar="N",
               doc="Most extra connections a child may serve beyond max_requests (random per child, so "
                   "the pool never recycles all at once).", show=lambda v: "max_requests/10" if v is None else str(v)),
        Option("serialize", choice("auto", *SERIALIZERS), "auto", section="PreFork",
               metavar="flock|semaphore|pipe|none",
               doc="Accept lock between children; auto is none where epoll's EPOLLEXCLUSIVE "
                   "wakes one child per connection, else flock with several listeners."),
        Option("lock_file", to_optional_str, None, section="PreFork", metavar="FILE",
               doc="File for serialize flock (a temporary file by default)."),
        Option("reuse_port", to_bool, False, section="PreFork", flag=True,
               doc="Each child also listens on its own SO_REUSEPORT socket, so the kernel spreads "
                   "connections; set net.ipv4.tcp_migrate_req=1 so a retiring child loses none."),
    )

    _tick = 0.5  # seconds between pool checks in the parent
    _child: Optional[PoolChild]  # in a pool child: its state and loop (None in the parent)

    def _personality_init(self) -> None:
        super()._personality_init()
        self._lock: AcceptLock = NoLock()
        self._lock_suspect: Optional[float] = None  # 0.0: a child exited; then when the token was first missed
        self._free_slots: List[int] = []
        self._throttle = SpawnThrottle()
        self._backoff = CrashBackoff()
        self._replacements = 0  # children that left on purpose, owed a successor now (not throttled)

    # -- parent -------------------------------------------------------------------

    def _listening(self) -> List[Tuple[Any, Any]]:
        return []  # the parent never accepts: its loop waits for signals only

    def _waiting_clients_sockets(self) -> List[Any]:
        """In a child (HTTP keep-alive asks): the stream sockets it accepts from, its own included."""
        child = self._child
        targets = child.targets if child is not None else self._host.listening()
        return [sock for sock, _ in targets if sock.type == socket.SOCK_STREAM]

    def _retiring(self) -> bool:
        """This child is leaving after its connection (the HTTP handler ends keep-alive then)."""
        child = self._child
        return child is not None and child.retire

    def _open_own_listeners(self) -> List[Any]:
        """reuse_port: this child's own socket beside each shared TCP listener (before the drop)."""
        own = []
        for listener in self._host.listeners:
            if not listener.stream or listener.target.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            sock = socket.socket(listener.target.family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if listener.target.family == socket.AF_INET6 and listener.target.v6only is not None:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listener.target.v6only))
                _copy_options(listener.socket, sock)
                sock.bind(listener.socket.getsockname())
                sock.listen(self._host.config.listen)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self._host.log(1, f"reuse_port: child {os.getpid()} could not open its own socket: {exc}")
                continue
            import copy  # reuse_port only

            mine = copy.copy(listener)
            mine.socket = sock
            own.append(mine)
        return own

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        super().serve_forever(min(poll_interval, self._tick))

    def _prepare_to_serve(self) -> None:
        super()._prepare_to_serve()
        targets = self._host.listening()
        for sock, _ in targets:
            sock.setblocking(False)  # children accept until EAGAIN, then wait in epoll
        capacity = max(1024, 4 * self._host.config.max_servers)
        self._scoreboard = Scoreboard(capacity, self._scoreboard_path())
        self._free_slots = list(range(capacity - 1, -1, -1))
        config = self._host.config
        try:
            self._lock = make_lock(self._serializer(len(targets)), config.lock_file)
        except OSError as exc:
            self._host.fatal(f"serialize: cannot open lock_file {config.lock_file}: {exc.strerror}"
                             + (" (it is a symbolic link; name the file itself)" if exc.errno == errno.ELOOP else ""))
        self._host.log(3, f"Accept serialization: {self._lock.name}")
        self._throttle.grant(self._initial_children())
        self._manage_pool(time.monotonic())  # the first children now, not after the first tick

    def _scoreboard_path(self) -> Optional[str]:
        """``scoreboard_file``, or one next to the pid file, so ``netserver status`` can read it."""
        config = self._host.config
        path = config.get("scoreboard_file")
        if path is None and config.get("pid_file"):
            path = config.pid_file + ".scoreboard"
        return path

    def _serializer(self, listeners: int) -> str:
        chosen = self._host.config.serialize
        if chosen != "auto":
            return chosen
        return "none" if EXCLUSIVE or listeners == 1 else "flock"

    def _initial_children(self) -> int:
        return self._max_servers_now()

    def _pool_children(self) -> List[Any]:
        """Live pool children, not counting those retiring (a child announces it in the scoreboard)."""
        board = self._scoreboard
        live = []
        for child in self._children.of_kind(*self._pool_kinds):
            if not child.retiring and child.slot is not None and board is not None and board.retiring(child.slot):
                child.retiring = True  # serving its last connection (max_requests): owed a successor
                self._replacements += 1
            if not child.retiring:
                live.append(child)
        return live

    def _retire_children(self, children: List[Any], replace: bool = False) -> None:
        super()._retire_children(children, replace)
        if replace:
            self._replacements += len(children)

    def service_actions(self) -> None:
        super().service_actions()
        if self._lock_suspect is not None:
            self._check_lock(time.monotonic())
        readable = self._talking_children()
        self._host.idle_loop_hook(readable)  # each pass of the parent's loop, as in Net::Server
        for sock in readable:
            self._host.child_is_talking_hook(sock)
        if not self._stop_requested:  # Engine._shutdown_request's value, read every pass
            self._manage_pool(time.monotonic())

    def _check_lock(self, now: float) -> None:
        """After a child exited: if no token is in sight and no child says it holds one, twice
        at least 0.2 s apart, the dead child took it along (kill -9): put it back (issue 14)."""
        if self._lock.token_visible() or self._scoreboard is None or self._scoreboard.lock_holders():
            self._lock_suspect = None
            return
        if not self._lock_suspect:
            self._lock_suspect = now
            return
        if now - self._lock_suspect >= 0.2:
            self._lock_suspect = None
            self._lock.restore()
            self._host.log(1, f"Accept lock ({self._lock.name}): a child died holding it; put it back")

    def _talking_children(self) -> List[Any]:
        """The ``child_communication`` sockets readable now (PreFork has them)."""
        return []

    def _manage_pool(self, now: float) -> None:
        """Keep ``max_servers`` children: spawn what is missing, retire any excess (TTOU)."""
        live = self._pool_children()
        excess = len(live) - self._max_servers_now()
        if excess > 0:
            self._retire_children(self._idle_first(live)[:excess])
        self._spawn(self._max_servers_now() - len(live), now)

    def _idle_first(self, children: List[Any]) -> List[Any]:
        board = self._scoreboard
        return sorted(children, key=lambda c: (board.state(c.slot) != IDLE, -c.started))

    def _spawn(self, wanted: int, now: float) -> int:
        """Fork up to ``wanted`` pool children, within the spawn rate and crash back-off.

        Successors of children that left on purpose (``max_requests``, a HUP
        without re-exec) are forked at once: only growth goes through the
        spawn rate.  What the plan does not want of them is forgotten.
        """
        replacing, self._replacements = self._replacements, 0
        if self._backoff.announce:  # once per pause, as it starts
            self._backoff.announce = False
            self._host.log(0, f"Children are exiting as soon as they start; pausing spawning for "
                        f"{self._backoff.delay:.0f}s")
        if wanted <= 0 or self._backoff.paused(now):
            return 0
        count = min(wanted, replacing)
        count += self._throttle.allow(wanted - count, now)
        if count > 0:
            self._host.run_n_children_hook(count)
        for _ in range(count):
            if not self._free_slots:
                break
            slot = self._free_slots.pop()
            self._scoreboard.claim(slot)
            pid = self._fork_pool_child(slot)
            if pid is None:
                self._scoreboard.release(slot)
                self._free_slots.append(slot)
                break
            self._scoreboard.assign_pid(slot, pid)
        return count

    def _fork_pool_child(self, slot: int) -> Optional[int]:
        """Fork one pool child that serves from scoreboard ``slot``; its pid, or None."""
        return self._fork_child("prefork", self._child_loop, slot, (slot,))

    def _child_exited(self, exit: Exit) -> None:
        super()._child_exited(exit)
        child = exit.child
        assert child is not None  # _reap_children passes only the server's own children here
        if self._lock.lost_with_holder:
            self._lock_suspect = 0.0  # it may have died holding the token: look on the next passes
        ready = True
        if child.slot is not None and self._scoreboard is not None:
            ready = self._scoreboard.state(child.slot) != STARTING  # it reached its accept loop
            self._scoreboard.release(child.slot)
            self._free_slots.append(child.slot)
        if child.kind in self._pool_kinds and not child.retiring and not exit.failed and self._stop_mode is None:
            self._replacements += 1  # it left on its own (max_requests) before the parent saw its flag
        if child.kind in self._pool_kinds and not child.retiring:
            # Only a child that died before it was ready is a crash at start; one killed while idle or
            # serving (kill -9 from outside, the OOM killer) is replaced at once.
            self._backoff.record(time.monotonic() - child.started, exit.failed and not ready
                                 and not killed_from_outside(exit.status), time.monotonic())

    def _end_serving(self) -> None:
        super()._end_serving()
        if not self._restart_requested:
            self._lock.close()
            if self._scoreboard is not None:
                self._scoreboard.close()

    # -- child --------------------------------------------------------------------

    def _new_child(self, kind: str, slot: Optional[int], parent: int) -> PoolChild:
        """In a new child, right after ``fork``: its state.  A dequeue child gets one too, for its
        HUP/QUIT handlers, but no slot, no budget, and never runs the loop."""
        config = self._host.config
        return PoolChild(slot if slot is not None else -1, parent, self._scoreboard, self._lock,
                         self._host.accept_from, self._handle_connection, self._host.reopen_logs,
                         request_limit(config.max_requests, config.max_requests_jitter) if kind == "prefork" else 0)

    def _child_prepare(self) -> None:
        """Before ``child_init_hook`` (which may install handlers of its own)."""
        super()._child_prepare()
        child = self._child
        assert child is not None  # _become_child made it
        self._lock.after_fork()  # flock needs this child's own open file, opened before the drop
        if self._host.config.reuse_port:
            child.own_listeners = self._open_own_listeners()  # binding may need the privileges about to go
        child.listen_on([(listener.socket, listener) for listener in child.own_listeners] + self._host.listening())
        child.wakeup = SignalQueue()
        _signal.signal(_SIGHUP, child.on_retire)  # _signal: no enum conversions to copy (issue 15)
        _signal.signal(_SIGQUIT, child.on_retire)

    def _child_loop(self, slot: int) -> None:
        """Serve connections until ``max_requests``, retirement or the parent's end."""
        child = self._child
        assert child is not None and child.slot == slot
        child.serve()


class PreForkSimple(PreForkSimpleMixIn, Server):
    """``max_servers`` preforked children over every listener."""

    @classmethod
    def available(cls) -> bool:
        return hasattr(os, "fork") and hasattr(select, "epoll")
