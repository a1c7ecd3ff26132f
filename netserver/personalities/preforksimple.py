"""PreForkSimple: a fixed pool of ``max_servers`` children, each serving up to ``max_requests``.

The child loop here is shared with PreFork, and it is the hot path: accept
on a non-blocking listener (one system call per connection while there is
work), serve, and only when the queue is empty wait in ``epoll`` with
``EPOLLEXCLUSIVE`` so one child is woken per connection — no thundering
herd and, on Linux, no accept lock.  The child reports its state in the
shared scoreboard with plain memory writes.
"""

from __future__ import annotations

import copy
import os
import random
import select
import signal
import socket
import time
from typing import Any, List, Optional, Tuple

from ..options import Option
from ..options.validators import choice, to_bool, to_int, to_optional_str
from ..process.children import Exit
from ..process.pool import CrashBackoff, SpawnThrottle
from ..process.scoreboard import EXITING, IDLE, STARTING, Scoreboard
from ..process.serialize import SERIALIZERS, NoLock, make_lock
from ..server import Server
from ..signals import SignalQueue
from .forking import ProcessParentMixIn

__all__ = ["PreForkSimpleMixIn", "PreForkSimple"]

_EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


def killed_from_outside(status: int) -> bool:
    """Killed by a signal an operator or supervisor sends (not by its own fault: SEGV, ABRT, BUS...)."""
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT,
                                                             signal.SIGQUIT, signal.SIGHUP)


class PreForkSimpleMixIn(ProcessParentMixIn):
    """Keeps exactly ``max_servers`` children (TTIN/TTOU adjust it); replaces any that exit."""

    personality = "PreForkSimple"

    OPTIONS = (
        Option("max_servers", to_int(1), 50, section="PreFork", metavar="N",
               doc="Children in the pool (PreFork: at most this many)."),
        Option("max_requests", to_int(0), 1000, section="PreFork", metavar="N",
               doc="Connections a child serves before it is replaced (0: no limit); "
                   "each child adds up to 10% jitter."),
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

    pool_kinds = ("prefork",)
    tick = 0.5  # seconds between pool checks in the parent
    orphan_check = 2.0  # seconds an idle child waits before checking that its parent lives

    def _personality_init(self) -> None:
        super()._personality_init()
        self.scoreboard: Optional[Scoreboard] = None
        self._lock = NoLock()
        self._free_slots: List[int] = []
        self._throttle = SpawnThrottle()
        self._backoff = CrashBackoff()
        self._replacements = 0  # children that left on purpose, owed a successor now (not throttled)
        self._retire = False
        self._drain = False

    # -- parent -------------------------------------------------------------------

    def listening(self) -> List[Tuple[Any, Any]]:
        return []  # the parent never accepts: its loop waits for signals only

    def waiting_clients_sockets(self) -> List[Any]:
        return [sock for sock, _ in self.accept_targets() if sock.type == socket.SOCK_STREAM]

    def accept_targets(self) -> List[Tuple[Any, Any]]:
        if self.is_netserver():
            own = [(listener.socket, listener) for listener in self._own_listeners]
            return own + [(listener.socket, listener) for listener in self.listeners]
        return [(self.socket, None)]

    _own_listeners: List[Any] = []

    def post_configure(self) -> None:
        super().post_configure()
        if self.config.reuse_port:
            self.allow_reuse_port = True  # the shared listeners join the SO_REUSEPORT group too
            if _read_sysctl("net/ipv4/tcp_migrate_req") == "0":
                self.log(1, "reuse_port: net.ipv4.tcp_migrate_req is 0, so connections queued on a "
                            "retiring child's socket are reset; set it to 1")

    def _open_own_listeners(self) -> None:
        """reuse_port: this child's own socket beside each shared TCP listener (before the drop)."""
        own = []
        for listener in self.listeners:
            if not listener.stream or listener.target.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            sock = socket.socket(listener.target.family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if listener.target.family == socket.AF_INET6 and listener.target.v6only is not None:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listener.target.v6only))
                sock.bind(listener.socket.getsockname())
                sock.listen(self.config.listen)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self.log(1, f"reuse_port: child {os.getpid()} could not open its own socket: {exc}")
                continue
            mine = copy.copy(listener)
            mine.socket = sock
            own.append(mine)
        self._own_listeners = own

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        super().serve_forever(min(poll_interval, self.tick))

    def prepare_to_serve(self) -> None:
        super().prepare_to_serve()
        self._parent_pid = os.getpid()
        targets = self.accept_targets()
        for sock, _ in targets:
            sock.setblocking(False)  # children accept until EAGAIN, then wait in epoll
        capacity = max(1024, 4 * self.config.max_servers)
        self.scoreboard = Scoreboard(capacity, self.scoreboard_path())
        self._free_slots = list(range(capacity - 1, -1, -1))
        self._lock = make_lock(self._serializer(len(targets)), self.config.lock_file)
        self.log(3, f"Accept serialization: {self._lock.name}")
        self._throttle.grant(self.initial_children())
        self.manage_pool(time.monotonic())  # the first children now, not after the first tick

    def scoreboard_path(self) -> Optional[str]:
        """``scoreboard_file``, or one next to the pid file, so ``netserver status`` can read it."""
        config = self.config
        path = config.get("scoreboard_file")
        if path is None and config.get("pid_file"):
            path = config.pid_file + ".scoreboard"
        return path

    def _serializer(self, listeners: int) -> str:
        chosen = self.config.serialize
        if chosen != "auto":
            return chosen
        return "none" if _EXCLUSIVE or listeners == 1 else "flock"

    def initial_children(self) -> int:
        return self.max_servers_now()

    def pool_children(self) -> List[Any]:
        """Live pool children, not counting those retiring (a child announces it in the scoreboard)."""
        board = self.scoreboard
        live = []
        for child in self.children.of_kind(*self.pool_kinds):
            if not child.retiring and child.slot is not None and board is not None and board.retiring(child.slot):
                child.retiring = True  # serving its last connection (max_requests): owed a successor
                self._replacements += 1
            if not child.retiring:
                live.append(child)
        return live

    def retire_children(self, children: List[Any], replace: bool = False) -> None:
        super().retire_children(children, replace)
        if replace:
            self._replacements += len(children)

    def service_actions(self) -> None:
        super().service_actions()
        if not self._shutdown_request:
            self.manage_pool(time.monotonic())

    def manage_pool(self, now: float) -> None:
        """Keep ``max_servers`` children: spawn what is missing, retire any excess (TTOU)."""
        live = self.pool_children()
        excess = len(live) - self.max_servers_now()
        if excess > 0:
            self.retire_children(self._idle_first(live)[:excess])
        self.spawn(self.max_servers_now() - len(live), now)

    def _idle_first(self, children: List[Any]) -> List[Any]:
        board = self.scoreboard
        return sorted(children, key=lambda c: (board.state(c.slot) != IDLE, -c.started))

    def spawn(self, wanted: int, now: float) -> int:
        """Fork up to ``wanted`` pool children, within the spawn rate and crash back-off.

        Successors of children that left on purpose (``max_requests``, a HUP
        without re-exec) are forked at once: only growth goes through the
        spawn rate.  What the plan does not want of them is forgotten.
        """
        replacing, self._replacements = self._replacements, 0
        if self._backoff.announce:  # once per pause, as it starts
            self._backoff.announce = False
            self.log(0, f"Children are exiting as soon as they start; pausing spawning for "
                        f"{self._backoff.delay:.0f}s")
        if wanted <= 0 or self._backoff.paused(now):
            return 0
        count = min(wanted, replacing)
        count += self._throttle.allow(wanted - count, now)
        for _ in range(count):
            if not self._free_slots:
                break
            slot = self._free_slots.pop()
            self.scoreboard.claim(slot)
            pid = self.fork_child("prefork", lambda slot=slot: self.child_loop(slot), slot)
            if pid is None:
                self.scoreboard.release(slot)
                self._free_slots.append(slot)
                break
            self.scoreboard.assign_pid(slot, pid)
        return count

    def child_exited(self, exit: Exit) -> None:
        super().child_exited(exit)
        child = exit.child
        ready = True
        if child.slot is not None and self.scoreboard is not None:
            ready = self.scoreboard.state(child.slot) != STARTING  # it reached its accept loop
            self.scoreboard.release(child.slot)
            self._free_slots.append(child.slot)
        if child.kind in self.pool_kinds and not child.retiring and not exit.failed and self._stop_mode is None:
            self._replacements += 1  # it left on its own (max_requests) before the parent saw its flag
        if child.kind in self.pool_kinds and not child.retiring:
            # Only a child that died before it was ready is a crash at start; one killed while idle or
            # serving (kill -9 from outside, the OOM killer) is replaced at once.
            self._backoff.record(time.monotonic() - child.started, exit.failed and not ready
                                 and not killed_from_outside(exit.status), time.monotonic())

    def end_serving(self) -> None:
        super().end_serving()
        if not getattr(self, "_restart_requested", False):
            self._lock.close()
            if self.scoreboard is not None:
                self.scoreboard.close()

    # -- child --------------------------------------------------------------------

    def child_loop(self, slot: int) -> None:
        """Serve connections until ``max_requests``, retirement or the parent's end."""
        board = self.scoreboard
        wakeup = self._signals
        targets = self.accept_targets()
        poller = select.epoll()
        by_fd = {}
        for sock, token in targets:
            poller.register(sock.fileno(), select.EPOLLIN | _EXCLUSIVE)
            by_fd[sock.fileno()] = token
        poller.register(wakeup.fileno(), select.EPOLLIN)
        tokens = [token for _, token in targets]
        limit = self._request_limit()
        accept_from, handle = self.accept_from, self.handle_connection
        locked = not isinstance(self._lock, NoLock)
        served = 0
        board.set_state(slot, IDLE)
        while not self._retire and (not limit or served < limit):
            request = None
            if locked:
                self._lock.acquire()
            try:
                ready = tokens
                while request is None and not self._retire:
                    for token in ready:
                        try:
                            request, client_address = accept_from(token)
                            break
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            continue  # the peer gave up (ECONNABORTED…)
                    if request is None and not self._retire:
                        events = poller.poll(self.orphan_check)
                        if not events and os.getppid() != self._parent_pid:
                            self._retire = True  # the parent is gone: do not linger as an orphan
                        ready = [by_fd[fd] for fd, _ in events if fd in by_fd]
                        if len(ready) < len(events):
                            wakeup.drain()
                        if self._reopen_log:
                            self._reopen_log = False
                            self.reopen_logs()
            finally:
                if locked:
                    self._lock.release()
            if self._reopen_log:
                self._reopen_log = False
                self.reopen_logs()
            if request is None:
                break
            board.serving(slot, served, _client_text(client_address))
            if limit and served + 1 >= limit:
                # The last connection: let the parent fork the successor while this one is served,
                # and let the handler know (HTTP ends keep-alive: the successor is already there).
                board.mark_retiring(slot)
                _wake_parent(self._parent_pid)
                self._retire = True
            handle(request, client_address)
            served += 1
            board.count_request(slot, served)
            board.set_state(slot, IDLE)
        board.set_state(slot, EXITING)
        if self._drain:
            self._drain_queue(tokens)
        elif self._own_listeners:  # what the kernel queued on this child's own sockets
            self._drain_queue(self._own_listeners)
        for listener in self._own_listeners:
            listener.socket.close()
        poller.close()

    def child_prepare(self) -> None:
        """Before ``child_init_hook`` (which may install handlers of its own)."""
        super().child_prepare()
        self._lock.after_fork()  # flock needs this child's own open file, opened before the drop
        if self.is_netserver() and self.config.reuse_port:
            self._open_own_listeners()  # binding may need the privileges the child is about to drop
        self._signals = SignalQueue()
        signal.signal(signal.SIGHUP, self._child_retire)
        signal.signal(signal.SIGQUIT, self._child_retire)
        signal.signal(signal.SIGUSR1, self._child_reopen_log)

    def _child_reopen_log(self, signum: int, frame: Any) -> None:
        self._reopen_log = True
        self._signals.wake()

    _reopen_log = False

    def _child_retire(self, signum: int, frame: Any) -> None:
        """SIGHUP/SIGQUIT in a child: finish the current connection, then exit."""
        self._retire = True
        self._drain = self._drain or signum == signal.SIGQUIT
        self._signals.wake()

    def _drain_queue(self, tokens: List[Any]) -> None:
        """On a graceful stop, serve what the kernel already queued, so it is not reset."""
        for token in tokens:
            while True:
                try:
                    request, client_address = self.accept_from(token)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                self.handle_connection(request, client_address)

    def _request_limit(self) -> int:
        """``max_requests`` plus up to 10% jitter, so a pool never recycles all at once."""
        limit = self.config.max_requests
        return limit + random.randint(0, limit // 10) if limit else 0


def _wake_parent(parent: int) -> None:
    """SIGCHLD wakes the parent's loop (it handles the signal; nothing else is implied)."""
    try:
        os.kill(parent, signal.SIGCHLD)
    except OSError:
        pass


def _read_sysctl(name: str) -> Optional[str]:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def _client_text(client_address: Any) -> bytes:
    if isinstance(client_address, tuple):
        return f"{client_address[0]}:{client_address[1]}".encode()[:48]
    return b"unix"


class PreForkSimple(PreForkSimpleMixIn, Server):
    """``max_servers`` preforked children over every listener."""

    @classmethod
    def available(cls) -> bool:
        return hasattr(os, "fork") and hasattr(select, "epoll")
