"""PreFork's policy as pure functions: what to spawn, what to retire, how fast.

Tested with tables and a fake clock; the personality applies the plan with
a few lines of fork and kill.
"""

from __future__ import annotations

from ..records import NamedTuple

__all__ = ["Limits", "Plan", "plan", "SpawnThrottle", "CrashBackoff"]


class Limits(NamedTuple):
    min_servers: int
    max_servers: int
    min_spare_servers: int
    max_spare_servers: int


class Plan(NamedTuple):
    spawn: int
    retire: int


def plan(total: int, idle: int, limits: Limits, may_retire_idle: bool = True) -> Plan:
    """How many children to start and how many idle ones to retire.

    ``total`` counts live pool children (starting, idle or busy, not those
    already exiting); ``idle`` those waiting for a connection (starting
    ones count as idle: they will be).  Spawning restores ``min_servers``
    and ``min_spare_servers`` without passing ``max_servers``; retiring
    trims idle children above ``max_spare_servers`` (only when
    ``may_retire_idle``: every ``check_for_waiting``) and any excess over
    ``max_servers`` (at once: TTOU).
    """
    spawn = max(limits.min_servers - total, limits.min_spare_servers - idle, 0)
    spawn = max(min(spawn, limits.max_servers - total), 0)
    retire = 0
    if total > limits.max_servers:
        retire = min(idle, total - limits.max_servers)
    elif may_retire_idle and idle > limits.max_spare_servers and total > limits.min_servers:
        retire = min(idle - limits.max_spare_servers, total - limits.min_servers)
    return Plan(spawn, retire)


class SpawnThrottle:
    """Apache's spawn rate: 1, 2, 4 … up to ``cap`` children a second while the need lasts.

    ``allow(wanted, now)`` returns how many may be forked now.  The rate
    doubles each second in which spawning was wanted and falls back to 1
    after a second without need.  An initial burst (the start-up pool) is
    granted by ``grant``.
    """

    def __init__(self, cap: int = 32):
        self.cap = cap
        self.rate = 1
        self.window = -1.0
        self.used = 0
        self.granted = 0

    def grant(self, count: int) -> None:
        self.granted += count

    def allow(self, wanted: int, now: float) -> int:
        if wanted <= 0:
            return 0
        if self.granted:
            take = min(wanted, self.granted)
            self.granted -= take
            return take
        if now - self.window >= 1.0:
            exhausted = self.used >= self.rate and now - self.window < 2.0
            self.rate = min(self.rate * 2, self.cap) if exhausted else 1
            self.window, self.used = now, 0
        take = min(wanted, self.rate - self.used)
        self.used += take
        return take


class CrashBackoff:
    """Stops a fork loop when children die as soon as they start.

    ``record(lifetime, failed, now)`` is told of each pool child's exit.
    After ``threshold`` consecutive early failures (a child that failed
    within ``early`` seconds), spawning pauses for 1, 2, 4 … up to
    ``longest`` seconds; a child that lives longer resets everything.
    ``paused(now)`` says whether to hold off; ``announce`` is True once per
    pause, so the log gets one line per burst, not one per death.
    """

    def __init__(self, threshold: int = 5, early: float = 1.0, longest: float = 30.0):
        self.threshold = threshold
        self.early = early
        self.longest = longest
        self.failures = 0
        self.delay = 0.0
        self.until = 0.0
        self.announce = False

    def record(self, lifetime: float, failed: bool, now: float) -> None:
        if failed and lifetime < self.early:
            self.failures += 1
            if self.failures >= self.threshold and now >= self.until:
                self.delay = min(self.delay * 2 if self.delay else 1.0, self.longest)
                self.until = now + self.delay
                self.announce = True
        elif lifetime >= self.early:
            self.failures = 0
            self.delay = 0.0
            self.until = 0.0

    def paused(self, now: float) -> bool:
        return now < self.until
