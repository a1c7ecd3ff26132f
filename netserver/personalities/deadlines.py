"""Deadlines for children: ``child_timeout`` and ``graceful_timeout``.

``child_timeout`` is gunicorn's ``--timeout`` for a process that serves one
connection at a time: each child records in the scoreboard when its current
request began (plain memory stores, no system call); every pass of its loop
the parent looks for a child busy on one request longer than the limit,
logs it with the client, sends it TERM, starts a replacement at once, and
sends KILL if it is still there ``stop_timeout`` seconds later.  Between two
requests of a kept-alive HTTP connection the clock is stopped.

``graceful_timeout`` bounds what Net::Server leaves unbounded: the
connections children finish after QUIT, or after being retired (a HUP, a
TTOU, a surplus idle child).  When it passes, the children still at work are
sent TERM, then KILL after ``stop_timeout``, and the log says so.

The parent's side is :meth:`_check_deadlines` (called from the loop); the
child's is :meth:`_request_state` (called by handlers that serve several
requests per connection).  Both work over ``netserver.Server`` and over a
socketserver class.
"""

from __future__ import annotations

import os
import signal
import time

from ..options import Option
from ..options.validators import to_float
from .base import PersonalityMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

__all__ = ["ChildDeadlinesMixIn"]


class ChildDeadlinesMixIn(PersonalityMixIn):
    """``child_timeout`` and ``graceful_timeout`` for the forking personalities (see the module docstring)."""

    OPTIONS: Tuple[Option, ...] = (
        Option("child_timeout", to_float, 0.0, section="Processes", metavar="SECONDS",
               doc="Longest a child may spend on one request (one connection, unless the handler marks "
                   "requests, as HTTP does); then it is stopped (TERM, KILL after stop_timeout) and "
                   "replaced. 0: no limit."),
        Option("graceful_timeout", to_float, 0.0, section="Processes", metavar="SECONDS",
               doc="After QUIT (or a HUP, or any retirement), how long children may take to finish their "
                   "connections before they are stopped (TERM, KILL after stop_timeout). 0: no limit, "
                   "as in Net::Server."),
    )

    # Set by the personality: PreForkSimple/PreFork when they start serving, Fork on first need.
    _scoreboard: Any = None  # the Scoreboard: when each child's current request began
    _child_slot: Optional[int] = None  # in a child: its scoreboard slot (Fork's children have one too)

    def _personality_init(self) -> None:
        super()._personality_init()
        self._deadlines: Dict[int, Tuple[float, int, str]] = {}  # pid -> (when, signal, why)

    # -- in a child -----------------------------------------------------------------

    def _request_state(self, busy: bool) -> None:
        """In a child: a request began (``True``) or ended with the connection kept open (``False``).

        ``child_timeout`` counts from the start of the current request, and not
        while the connection waits for the next one.
        """
        if self._child_slot is not None and self._scoreboard is not None:
            self._scoreboard.request_state(self._child_slot, busy)

    # -- in the parent ----------------------------------------------------------------

    def _busy_children(self) -> List[Tuple[Any, float, str]]:
        """``(child, seconds on the current request, client)`` for each child serving one now."""
        board = self._scoreboard
        if board is None:
            return []
        from ..process.scoreboard import BUSY  # a board exists: its module is loaded

        now = time.time()
        busy = []
        for child in self._children:
            if child.slot is None or child.retiring:
                continue
            view = board.read(child.slot)
            if view.state == BUSY and view.pid == child.pid:
                busy.append((child, now - view.changed, view.client))
        return busy

    def _check_deadlines(self, now: float) -> None:
        """Every pass of the parent loop: stop children over ``child_timeout``; act on deadlines due."""
        limit = self._host.config.child_timeout
        if limit:
            for child, seconds, client in self._busy_children():
                if seconds > limit:
                    self._host.log(1, f"Child {child.pid} has been busy {seconds:.1f}s with {client or 'a client'} "
                                f"(child_timeout {limit:g}s): stopping it and starting another")
                    child.retiring = True  # the pool replaces it now, without waiting for its exit
                    self._send(child.pid, signal.SIGTERM)
                    self._kill_after(child.pid, self._host.config.stop_timeout, signal.SIGKILL,
                                    f"it ignored TERM for stop_timeout ({self._host.config.stop_timeout:g}s)")
        for pid, (when, signum, why) in list(self._deadlines.items()):
            if pid not in self._children:
                del self._deadlines[pid]
            elif now >= when:
                del self._deadlines[pid]
                self._host.log(1, f"Child {pid} still running: {why}; sending {signal.Signals(signum).name}")
                self._send(pid, signum)
                if signum == signal.SIGTERM:
                    self._kill_after(pid, self._host.config.stop_timeout, signal.SIGKILL,
                                    f"it ignored TERM for stop_timeout ({self._host.config.stop_timeout:g}s)")

    def _kill_after(self, pid: int, seconds: float, signum: int, why: str) -> None:
        """Send ``signum`` to ``pid`` in ``seconds`` if it is still a child then (logging ``why``)."""
        self._deadlines[pid] = (time.monotonic() + seconds, signum, why)

    def _retire_by_deadline(self, pids: List[int]) -> None:
        """Children asked to finish (HUP, QUIT…): stopped ``graceful_timeout`` from now if still there."""
        limit = self._host.config.graceful_timeout
        if limit:
            for pid in pids:
                if pid not in self._deadlines:
                    self._kill_after(pid, limit, signal.SIGTERM,
                                    f"not done {limit:g}s (graceful_timeout) after it was asked to finish")

    @staticmethod
    def _send(pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
