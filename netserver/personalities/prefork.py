"""PreFork: Net::Server's managed pool, sized by load between its bounds.

``min_servers`` children at start; at least ``min_spare_servers`` and at
most ``max_spare_servers`` idle; never more than ``max_servers``.  The
parent reads the children's states from the scoreboard every
``check_for_spawn`` seconds and applies :func:`netserver.process.pool.plan`:
spawning at Apache's doubling rate, retiring surplus idle children every
``check_for_waiting`` seconds once they are ``min_child_ttl`` old.
"""

from __future__ import annotations

import select
import socket
import time

from ..options import Option
from ..options.validators import to_bool, to_float, to_int
from ..process.children import Exit
from ..process.cgroup import cgroup_quota
from ..process.cpuload import CPUIdle
from ..process.pool import Limits, plan
from ..process.scoreboard import BUSY, IDLE, STARTING
from ..server import Server
from .preforksimple import PreForkSimple, PreForkSimpleMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

__all__ = ["PreForkMixIn", "PreFork"]


class PreForkMixIn(PreForkSimpleMixIn):
    """A pool that grows under load and shrinks when idle (see the module docstring)."""

    _personality = "PreFork"

    OPTIONS: Tuple[Option, ...] = (
        Option("min_servers", to_int(1), 5, section="PreFork", metavar="N",
               doc="Children started at once, and the fewest kept."),
        Option("min_spare_servers", to_int(0), 2, section="PreFork", metavar="N",
               doc="Fewest idle children; more are spawned below it."),
        Option("max_spare_servers", to_int(1), 10, section="PreFork", metavar="N",
               doc="Most idle children; the surplus is retired."),
        Option("check_for_spawn", to_float, 0.5, section="PreFork", metavar="SECONDS",
               doc="How often the parent reads the scoreboard to spawn children."),
        Option("check_for_waiting", to_float, 10.0, section="PreFork", metavar="SECONDS",
               doc="How often surplus idle children are retired."),
        Option("min_child_ttl", to_float, 10.0, section="PreFork", metavar="SECONDS",
               doc="A child is not retired for being idle before it is this old."),
        Option("child_communication", to_bool, False, section="PreFork", flag=True,
               doc="A socketpair per child: the child writes to self.parent_sock, the parent's "
                   "child_is_talking_hook(sock) reads."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._last_waiting_check = time.monotonic()
        self._cpu = CPUIdle(quota=cgroup_quota())  # whether busy children with brief requests count as spare
        self._talk: Optional[Any] = None  # epoll over the parents' ends of the children's socketpairs
        self._talk_socks: Dict[int, socket.socket] = {}
        self._statuses: Dict[int, str] = {}  # pid -> last status given to parent_read_hook
        self._last_status = ""  # the last notify_status text
        # While one child is forked: its end of the socketpair, and the parents' ends it must close.
        self._new_child_talk: Optional[Tuple[socket.socket, List[socket.socket]]] = None

    # -- TTIN / TTOU: min_servers and max_servers together, as Net::Server ------------

    def _sig_ttin(self) -> None:
        self._throttle.grant(1)  # the new minimum starts a child at once, not at the spawn rate
        super()._sig_ttin()

    def _servers_now_text(self) -> str:
        return f"{super()._servers_now_text()}, min_servers {self._limits().min_servers}"

    # -- child_communication -----------------------------------------------------------

    def _prepare_to_serve(self) -> None:
        if self._host.config.child_communication and self._talk is None:
            self._talk = select.epoll()
        super()._prepare_to_serve()

    def _listening(self) -> List[Any]:
        # The parent wakes as soon as a child talks (its loop otherwise waits for signals only).
        return [(self._talk, _TALK)] if self._talk is not None else []

    def _serve_from(self, token: Any) -> None:
        """A child's socket is readable: the hooks run in ``service_actions`` of this pass."""

    def _talking_children(self) -> List[Any]:
        if self._talk is None:
            return []
        socks = self._talk_socks
        return [socks[fd] for fd, _ in self._talk.poll(0) if fd in socks]

    def _fork_pool_child(self, slot: int) -> Optional[int]:
        if self._talk is None:
            return super()._fork_pool_child(slot)
        parent_end, child_end = socket.socketpair()
        self._new_child_talk = (child_end, [*self._talk_socks.values(), parent_end])
        try:
            pid = super()._fork_pool_child(slot)
        finally:
            self._new_child_talk = None
            child_end.close()
        if pid is None:
            parent_end.close()
            return None
        child = self._children.get(pid)
        assert child is not None  # _fork_child has just added it
        child.sock = parent_end
        self._talk_socks[parent_end.fileno()] = parent_end
        self._talk.register(parent_end.fileno(), select.EPOLLIN)
        return pid

    def _child_prepare(self) -> None:
        """In a new child: ``self.parent_sock`` is its end (before ``child_init_hook``, as in Net::Server)."""
        super()._child_prepare()
        if self._new_child_talk is not None:
            child_end, parents_ends = self._new_child_talk
            for sock in parents_ends:  # this and the other children's parent ends
                sock.close()
            if self._talk is not None:
                self._talk.close()
            self._talk, self._talk_socks, self._new_child_talk = None, {}, None
            self.parent_sock = child_end  # Net::Server's name, for the program's hooks

    def _child_exited(self, exit: Exit) -> None:
        super()._child_exited(exit)
        child = exit.child
        assert child is not None  # _reap_children passes only the server's own children here
        sock = child.sock
        if sock is not None:
            child.sock = None
            if self._talk is not None:
                self._talk_socks.pop(sock.fileno(), None)
                self._talk.unregister(sock.fileno())
            sock.close()
        if self._statuses.pop(exit.pid, None) is not None:
            self._child_status(exit.pid, "exiting")

    def _end_serving(self) -> None:
        super()._end_serving()
        if self._talk is not None and not self._restart_requested:
            for sock in self._talk_socks.values():
                sock.close()
            self._talk_socks = {}
            self._talk.close()
            self._talk = None

    # -- parent_read_hook ------------------------------------------------------------

    def _report_statuses(self, live: List[Any]) -> None:
        """Net::Server's children write ``"<pid> waiting|processing"``; here the scoreboard says it."""
        board = self._scoreboard
        for child in live:
            state = board.state(child.slot)
            status = "processing" if state == BUSY else "waiting"
            if self._statuses.get(child.pid) != status:
                self._statuses[child.pid] = status
                self._child_status(child.pid, status)

    def _child_status(self, pid: int, status: str) -> None:
        if self._host.parent_read_hook(f"{pid} {status}\n"):
            self._host.log(2, "parent_read_hook returned true: stopping the server")
            self._stop("now")

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._tick = max(min(self._host.config.check_for_spawn, poll_interval), 0.05)
        super().serve_forever(self._tick)

    def _initial_children(self) -> int:
        return self._limits().min_servers

    @property
    def _reports_status(self) -> bool:
        return self._host.defines_hook("parent_read_hook")

    def _limits(self) -> Limits:
        config = self._host.config
        maximum = self._max_servers_now()
        minimum = min(max(config.min_servers + self._servers_delta, 1), maximum)
        return Limits(minimum, maximum, min(config.min_spare_servers, maximum),
                      max(config.max_spare_servers, 1))

    def _manage_pool(self, now: float) -> None:
        live = self._pool_children()
        board = self._scoreboard
        if self._reports_status:
            self._report_statuses(live)
        wall = time.time()
        saturated = self._cpu.saturated()  # brief requests count as spare only then (process/cpuload.py)
        spare = [c for c in live if board.spare(c.slot, wall, saturated)]
        may_retire = now - self._last_waiting_check >= self._host.config.check_for_waiting
        wanted = plan(len(live), len(spare), self._limits(), may_retire)
        if wanted.retire:
            if may_retire:
                self._last_waiting_check = now
            idle = [c for c in spare if board.state(c.slot) in (IDLE, STARTING)]  # never one in a request
            self._retire_children(self._retirable(idle, now, over_max=len(live) > self._limits().max_servers)
                                 [:wanted.retire])
        self._spawn(wanted.spawn, now)
        status = f"{len(live)} children, {len(spare)} spare, max_servers {self._max_servers_now()}"
        if status != self._last_status:
            self._last_status = status
            self._host.notify_status(status)

    def _retirable(self, idle: List[Any], now: float, over_max: bool) -> List[Any]:
        """Idle children old enough to retire (any idle child when over ``max_servers``), oldest first."""
        started_before = now - self._host.config.min_child_ttl
        chosen = [c for c in idle if over_max or c.started <= started_before]
        return sorted(chosen, key=lambda c: c.started)


_TALK = object()  # the listening() token of the child_communication poller


class PreFork(PreForkMixIn, Server):
    """Net::Server's PreFork over every listener."""

    available = PreForkSimple.available
