"""Fork: a child per connection, at most ``max_servers`` at once.

The parent accepts and forks; the child runs the whole connection flow
(``post_accept_hook``, access control, the handler) and exits.  At
``max_servers`` the parent stops accepting until a child exits, leaving new
connections in the kernel's queue rather than forking without bound.
"""

from __future__ import annotations

import os
import signal

from ..options import Option
from ..options.validators import to_int
from ..server import Server
from .parent import ProcessParentMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Tuple

__all__ = ["ForkMixIn", "Fork"]

# As plain numbers for ``_signal``: ``signal.signal`` converts through the Signals/Handlers enums,
# objects a child would then write and copy (see parent.py).
_FINISH_ANYWAY = (int(signal.SIGHUP), int(signal.SIGQUIT))
_SIGCHLD = int(signal.SIGCHLD)


class ForkMixIn(ProcessParentMixIn):
    """Fork per connection (see the module docstring)."""

    _personality = "Fork"
    _pool_kinds = ("fork",)
    _child_ignores = _FINISH_ANYWAY  # a child's connection is finished whatever happens

    OPTIONS: Tuple[Option, ...] = (
        # max_servers is declared by Fork (256), PreForkSimple/PreFork (50) and Thread (256): Net::Server's
        # own defaults, which differ because a pool is forked ahead of load while Fork and Thread only
        # bound what load creates; a MultiType takes the chosen personality's.
        Option("max_servers", to_int(1), 256, section="Fork", metavar="N",
               doc="Most children serving at once; the server stops accepting at this number."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._pool_full = False
        self._full_pipe: Tuple[int, ...] = ()  # (read, write) while serving: see _flag_full
        self._free_slots: List[int] = []  # slots of the scoreboard not in use (with child_timeout)
        # Whether a child's exit wakes the loop (SIGCHLD writes the wake-up pipe): off while the pool
        # accepts, since the loop reaps on every pass as ForkingMixIn does and a wake per exit would
        # be a second pass per connection; on when full and while stopping.
        self._child_exit_wakes = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == _SIGCHLD and not self._child_exit_wakes:
            return  # reaped on the loop's next pass
        super()._on_signal(signum, frame)

    def _accepting(self) -> bool:
        accepting = self._children.count("fork") < self._max_servers_now()
        if not accepting and not self._child_exit_wakes:
            # Full: from now on a child's exit must wake the loop, and one that exited before is reaped now.
            self._child_exit_wakes = True
            self._reap_children()
            accepting = self._children.count("fork") < self._max_servers_now()
        self._child_exit_wakes = not accepting
        if accepting == self._pool_full and self._full_pipe:
            self._flag_full(not accepting)
        return accepting

    # -- "the pool is full": a pipe children poll, so an idle keep-alive connection yields ------
    # A child serves one connection and never sees the listeners; at max_servers new clients queue
    # in the kernel.  The parent keeps one byte in this pipe while it is full, so HTTP's handler
    # closes a connection idle that long first (issue 14; see _waiting_clients_sockets).

    def _flag_full(self, full: bool) -> None:
        self._pool_full = full
        if full:
            os.write(self._full_pipe[1], b"F")
        else:
            try:
                os.read(self._full_pipe[0], 64)
            except BlockingIOError:
                pass

    def _waiting_clients_sockets(self) -> List[Any]:
        return [self._full_pipe[0]] if self._full_pipe and self._in_child else []

    def _serve_from(self, token: Any) -> None:
        """Accept in the parent, serve in a new child."""
        self._host.pre_accept_hook()
        try:
            request, client_address = self._host.accept_from(token)
        except OSError:
            return
        slot = self._free_slots.pop() if self._free_slots else None
        pid = self._fork_child("fork", self._serve_in_child, slot, (request, client_address))
        if pid is None:
            self._release_slot(slot)
            self.shutdown_request(request)
        else:
            self.close_request(request)  # the child has its own copy
            if slot is not None:
                self._scoreboard.assign_pid(slot, pid)

    # -- child_timeout: a scoreboard of when each child's current request began ----------------

    def _prepare_to_serve(self) -> None:
        super()._prepare_to_serve()
        if not self._full_pipe:
            self._full_pipe = os.pipe()
            os.set_blocking(self._full_pipe[0], False)
            os.set_blocking(self._full_pipe[1], False)
        if self._host.config.child_timeout and self._scoreboard is None:
            from ..process.scoreboard import Scoreboard  # only child_timeout needs one

            capacity = max(1024, 4 * self._host.config.max_servers)
            self._scoreboard = Scoreboard(capacity)
            self._free_slots = list(range(capacity - 1, -1, -1))

    def _end_serving(self) -> None:
        self._child_exit_wakes = True  # the base waits for the children to exit
        super()._end_serving()
        if self._full_pipe and not self._in_child:
            for fd in self._full_pipe:
                os.close(fd)
            self._full_pipe, self._pool_full = (), False

    def _release_slot(self, slot: Any) -> None:
        if slot is not None:
            self._scoreboard.release(slot)
            self._free_slots.append(slot)

    def _child_exited(self, exit: Any) -> None:
        super()._child_exited(exit)
        if exit.child.kind == "fork":
            self._release_slot(exit.child.slot)

    def _handle_request_noblock(self) -> None:
        self._serve_from(self._listening()[0][1])

    def _serve_in_child(self, request: Any, client_address: Any) -> None:
        if self._child_slot is not None:
            from ..process.scoreboard import client_text

            self._scoreboard.serving(self._child_slot, 0, client_text(client_address))
        if self._full_pipe:
            os.close(self._full_pipe[1])  # the parent's end
        reply_socket = request[1] if isinstance(request, tuple) else None
        for sock, _ in self._listening():
            if sock is not reply_socket:  # a datagram is answered on the socket it came in on
                sock.close()  # the child never accepts (and never removes a socket file)
        self._handle_connection(request, client_address)


class Fork(ForkMixIn, Server):
    """Net::Server's Fork over every listener."""

    @classmethod
    def available(cls) -> bool:
        return hasattr(os, "fork")
