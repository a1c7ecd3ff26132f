"""The parent's record of its children, kept exact by ``waitpid`` alone.

A child is known from the moment ``fork`` returns its pid until ``waitpid``
reports its exit; the table itself guesses nothing from ``kill(pid, 0)``.
(The parent's ``check_for_dead`` pass does probe with it, rarely, to forget a
child some other ``waitpid`` reaped: ``personalities/parent.py``.)  Exits
of pids the server never started are returned separately, for
``other_child_died_hook``.
"""

from __future__ import annotations

import os
import signal
import time

from ..records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["Child", "ChildTable", "Exit", "describe_status"]


class Child:
    """One child process: its pid, what it is for, its scoreboard slot, when it started."""

    __slots__ = ("pid", "kind", "slot", "started", "retiring", "sock")

    def __init__(self, pid: int, kind: str, slot: Optional[int] = None, started: Optional[float] = None):
        self.pid = pid
        self.kind = kind  # "prefork", "fork", "dequeue", "old" (from before a HUP)
        self.slot = slot
        self.started = time.monotonic() if started is None else started  # monotonic seconds
        self.retiring = False
        self.sock: Any = None  # PreFork child_communication: the parent's end of the socketpair

    def __repr__(self) -> str:
        return f"Child({self.pid}, {self.kind!r}, slot={self.slot})"


class Exit(NamedTuple):
    child: Optional[Child]  # None for a pid the server did not start
    pid: int
    status: int

    @property
    def failed(self) -> bool:
        return not (os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0)


def describe_status(status: int) -> str:
    """``exit 0``, ``exit 3``, ``killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"killed by {name}" + (" (core dumped)" if os.WCOREDUMP(status) else "")
    if os.WIFEXITED(status):
        return f"exit {os.WEXITSTATUS(status)}"
    return f"status {status}"


class ChildTable:
    """pid → :class:`Child`, with counts by kind.

    The counts are kept as children come and go, not computed: a Fork parent
    asks for its count on every pass of its loop, and walking the table would
    touch every ``Child`` object, so every page holding one is written (a
    reference count) and copy-on-write faulted again after each fork.
    """

    def __init__(self) -> None:
        self.children: Dict[int, Child] = {}
        self._counts: Dict[str, int] = {}

    def add(self, child: Child) -> Child:
        self.remove(child.pid)
        self.children[child.pid] = child
        self._counts[child.kind] = self._counts.get(child.kind, 0) + 1
        return child

    def remove(self, pid: int) -> Optional[Child]:
        """Forget ``pid`` (reaped, or vanished); its :class:`Child`, or None if it was not ours."""
        child = self.children.pop(pid, None)
        if child is not None:
            self._counts[child.kind] -= 1
        return child

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.children.values()))

    def __contains__(self, pid: int) -> bool:
        return pid in self.children

    def get(self, pid: int) -> Optional[Child]:
        return self.children.get(pid)

    def of_kind(self, *kinds: str) -> List[Child]:
        return [c for c in self.children.values() if c.kind in kinds]

    def count(self, *kinds: str) -> int:
        counts, total = self._counts, 0
        for kind in kinds:
            total += counts.get(kind, 0)
        return total

    def reap(self) -> List[Exit]:
        """Collect every exited child without blocking."""
        exits: List[Exit] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            exits.append(Exit(self.remove(pid), pid, status))
        return exits

    def signal_all(self, signum: int, kinds: Tuple[str, ...] = ()) -> None:
        for child in self:
            if kinds and child.kind not in kinds:
                continue
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                pass
