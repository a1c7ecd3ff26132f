"""PreFork: Net::Server's managed pool, sized by load between its bounds.

``min_servers`` children at start; at least ``min_spare_servers`` and at
most ``max_spare_servers`` idle; never more than ``max_servers``.  The
parent reads the children's states from the scoreboard every
``check_for_spawn`` seconds and applies :func:`netserver.process.pool.plan`:
spawning at Apache's doubling rate, retiring surplus idle children every
``check_for_waiting`` seconds once they are ``min_child_ttl`` old.
"""

from __future__ import annotations

import time
from typing import Any, List

from ..options import Option
from ..options.validators import to_float, to_int
from ..process.pool import Limits, plan
from ..process.scoreboard import IDLE, STARTING
from ..server import Server
from .preforksimple import PreForkSimple, PreForkSimpleMixIn

__all__ = ["PreForkMixIn", "PreFork"]


class PreForkMixIn(PreForkSimpleMixIn):
    """A pool that grows under load and shrinks when idle (see the module docstring)."""

    _personality = "PreFork"

    OPTIONS = (
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
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._last_waiting_check = time.monotonic()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._tick = max(min(self._host.config.check_for_spawn, poll_interval), 0.05)
        super().serve_forever(self._tick)

    def _initial_children(self) -> int:
        return min(self._host.config.min_servers, self._max_servers_now())

    def _limits(self) -> Limits:
        config = self._host.config
        maximum = self._max_servers_now()
        minimum = min(config.min_servers, maximum)
        return Limits(minimum, maximum, min(config.min_spare_servers, maximum),
                      max(config.max_spare_servers, 1))

    def _manage_pool(self, now: float) -> None:
        live = self._pool_children()
        board = self._scoreboard
        idle = [c for c in live if board.state(c.slot) in (IDLE, STARTING)]
        may_retire = now - self._last_waiting_check >= self._host.config.check_for_waiting
        wanted = plan(len(live), len(idle), self._limits(), may_retire)
        if wanted.retire:
            if may_retire:
                self._last_waiting_check = now
            self._retire_children(self._retirable(idle, now, over_max=len(live) > self._limits().max_servers)
                                 [:wanted.retire])
        self._spawn(wanted.spawn, now)
        status = f"{len(live)} children, {len(idle)} idle, max_servers {self._max_servers_now()}"
        if status != self._last_status:
            self._last_status = status
            self._host.notify_status(status)

    _last_status = ""

    def _retirable(self, idle: List[Any], now: float, over_max: bool) -> List[Any]:
        """Idle children old enough to retire (any idle child when over ``max_servers``), oldest first."""
        started_before = now - self._host.config.min_child_ttl
        chosen = [c for c in idle if over_max or c.started <= started_before]
        return sorted(chosen, key=lambda c: c.started)


class PreFork(PreForkMixIn, Server):
    """Net::Server's PreFork over every listener."""

    available = PreForkSimple.available
