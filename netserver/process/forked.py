"""What any forked child knows of itself: its parent, and a USR1 not yet acted on.

Its own module so that a Fork child (one connection, then exit) needs none
of the pool's machinery (the scoreboard, the accept locks) that
:class:`~netserver.process.child.PoolChild` adds for PreForkSimple and
PreFork.
"""

from __future__ import annotations


from ..signals import SignalQueue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["ChildState"]


class ChildState:
    """Any forked child (Fork's too): its parent, and a USR1 not yet acted on.

    A Fork child serves one connection and exits, so it never reads
    ``reopen_log``; its handler is there so that USR1 does not kill it.
    """

    __slots__ = ("parent_pid", "reopen_log", "wakeup")

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.reopen_log = False  # USR1 came: reopen the log between connections
        self.wakeup: Optional[SignalQueue] = None  # a pool child's wake-up pipe (in its epoll set)

    def on_usr1(self, signum: int, frame: Any) -> None:
        """The USR1 handler: ask for the log to be reopened between connections."""
        self.reopen_log = True
        if self.wakeup is not None:
            self.wakeup.wake()
