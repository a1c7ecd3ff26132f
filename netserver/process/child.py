"""A forked child's own state, and the accept loop of a pool child.

What only a child has — its scoreboard slot, its parent's pid, the flags
its signal handlers set (USR1: reopen the log; HUP/QUIT: retire; QUIT:
drain the queue first), its request budget, its own ``reuse_port``
sockets — lives on the object the child creates right after ``fork``, not
on the server object it shares with its parent.  The handlers only set
flags here and wake the loop; the loop acts on them.

:class:`PoolChild` is a PreForkSimple / PreFork child, and its
:meth:`~PoolChild.serve` reads top-down::

    until it retires (a signal, the parent gone, or the budget's last connection taken):
        reopen the logs if USR1 came          (the one place a child reopens them)
        take one connection: the accept lock, then accept or wait in epoll
        serve it (the last one is marked in the scoreboard first)
    mark EXITING, serve what is already queued (QUIT, reuse_port), close

The HTTP event loop (``netserver.http.event``) runs its own loop over the
same object.  Hot path: per connection, an accept (a failed one per listener
when the queue is empty, before waiting in epoll), the handler and plain
scoreboard stores; nothing here allocates.

This module must not import the server or a personality (layer 1): the
personality hands in what the loop calls (``accept``, ``handle``,
``reopen_logs``).  Tested in tests/unit/test_child.py.
"""

from __future__ import annotations

import os
import select
import signal
import time

from ..signals import SignalQueue
from .scoreboard import BRIEF, EXITING, IDLE, Scoreboard, client_text
from .serialize import AcceptLock, NoLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["PoolChild", "LockWaitEnded", "request_limit", "wake_parent", "ORPHAN_CHECK"]

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)
ORPHAN_CHECK = 2.0  # seconds an idle child waits before checking that its parent lives
_SIGQUIT = int(signal.SIGQUIT)


def request_limit(max_requests: int, jitter: Optional[int], draw: Callable[[int], bytes] = os.urandom) -> int:
    """``max_requests`` plus 0..``jitter`` (``max_requests // 10`` by default), so a pool never
    recycles all at once; 0 (no limit) stays 0.

    Uniform like ``random.randint``, without the random module: the child computes this, and
    random's after-fork reseed (2.5 KB of getrandom, its state rewritten) would be paid by every
    child (issue 15).
    """
    if not max_requests:
        return 0
    span = (max_requests // 10 if jitter is None else jitter) + 1
    return max_requests + int.from_bytes(draw(8), "little") % span


def wake_parent(parent: int) -> None:
    """SIGCHLD wakes the parent's loop (it handles the signal; nothing else is implied)."""
    try:
        os.kill(parent, signal.SIGCHLD)
    except OSError:
        pass


class LockWaitEnded(Exception):
    """Raised by a child's retire handler into a wait for the accept lock."""


class PoolChild:
    """One PreForkSimple / PreFork child: its flags, its budget, its loop (see the module docstring).

    Methods for the caller: :meth:`serve` (the classic loop), and for the
    HTTP event loop the steps it shares: :meth:`exhausted`,
    :meth:`take_last`, :meth:`reopen_logs_if_asked`, :meth:`parent_gone`,
    :meth:`drain_queue`, :meth:`close`.  The signal handlers are
    :meth:`on_retire` (HUP, QUIT) and :meth:`on_usr1`.
    """

    __slots__ = ("slot", "parent_pid", "board", "lock", "locked", "accept", "handle", "reopen_logs", "limit",
                 "served", "retire", "drain", "reopen_log", "waiting_for_lock", "wakeup", "own_listeners",
                 "targets", "tokens", "by_fd", "brief")

    def __init__(self, slot: int, parent_pid: int, board: Scoreboard, lock: AcceptLock,
                 accept: Callable[[Any], Tuple[Any, Any]], handle: Callable[[Any, Any], None],
                 reopen_logs: Callable[[], None], limit: int) -> None:
        self.slot = slot  # this child's scoreboard slot
        self.parent_pid = parent_pid
        self.board = board
        self.lock = lock
        self.locked = not isinstance(lock, NoLock)
        self.accept = accept  # token -> (request, client_address); OSError when none is there
        self.handle = handle  # serve one connection and close it
        self.reopen_logs = reopen_logs
        self.limit = limit  # connections to serve before retiring (0: no limit)
        self.served = 0
        self.brief = False  # what the scoreboard's brief flag says (note_took)
        self.retire = False  # HUP/QUIT, the last connection taken, or the parent gone: leave the loop
        self.drain = False  # QUIT: serve what the kernel already queued before leaving
        self.reopen_log = False  # USR1 came: reopen the log between connections
        self.wakeup: Optional[SignalQueue] = None  # the wake-up pipe in this child's epoll set
        self.waiting_for_lock = False  # a retire handler raises LockWaitEnded into the wait
        self.own_listeners: List[Any] = []  # reuse_port: this child's own listeners
        self.targets: List[Tuple[Any, Any]] = []  # (socket, token) to accept from: own ones first
        self.tokens: List[Any] = []
        self.by_fd: Dict[int, Any] = {}  # listening fd -> token, for epoll's answers

    def listen_on(self, targets: List[Tuple[Any, Any]]) -> None:
        """What this child accepts from (before the loop: ``serve``, or the HTTP event loop)."""
        self.targets = targets
        self.tokens = [token for _, token in targets]
        self.by_fd = {sock.fileno(): token for sock, token in targets}

    # -- the signal handlers ----------------------------------------------------------

    def on_usr1(self, signum: int, frame: Any) -> None:
        """SIGUSR1: reopen the log between connections."""
        self.reopen_log = True
        if self.wakeup is not None:
            self.wakeup.wake()

    def on_retire(self, signum: int, frame: Any) -> None:
        """SIGHUP/SIGQUIT: finish the current connection, then exit (QUIT: serve the queue first)."""
        self.retire = True
        self.drain = self.drain or signum == _SIGQUIT
        if self.wakeup is not None:
            self.wakeup.wake()
        if self.waiting_for_lock:
            self.waiting_for_lock = False
            raise LockWaitEnded()  # out of flock/read/sem_wait, which would retry after EINTR

    # -- decisions --------------------------------------------------------------------

    def exhausted(self, served: int) -> bool:
        """Whether ``served`` connections use up the budget (``max_requests`` plus jitter)."""
        return bool(self.limit) and served >= self.limit

    def parent_gone(self) -> bool:
        """Checked when idle: an orphan retires rather than linger (PR_SET_PDEATHSIG is Linux's)."""
        if os.getppid() != self.parent_pid:
            self.retire = True
        return self.retire

    # -- the classic loop -------------------------------------------------------------

    def serve(self) -> None:
        """Serve connections until the budget is spent, a retire signal, or the parent's end."""
        poller = select.epoll()
        for fd in self.by_fd:
            poller.register(fd, select.EPOLLIN | EXCLUSIVE)
        wakeup = self.wakeup
        if wakeup is not None:
            poller.register(wakeup.fileno(), select.EPOLLIN)
        board, slot = self.board, self.slot
        board.set_state(slot, IDLE)
        self.note_took(0.0)  # until a connection is long: busy for a moment counts as spare
        try:
            while not self.retire:  # the budget's last connection sets it too (take_last)
                self.reopen_logs_if_asked()
                taken = self._next_connection(poller)
                if taken is not None:
                    self._serve_one(*taken)
        finally:
            poller.close()
        self.close()

    def reopen_logs_if_asked(self) -> None:
        """The one place a child reopens its logs (after USR1), between connections."""
        if self.reopen_log:
            self.reopen_log = False
            self.reopen_logs()

    def _next_connection(self, poller: Any) -> Optional[Tuple[Any, Any]]:
        """One connection, under the accept lock if there is one; None when a signal or the
        parent's end came first (the loop then looks at the flags)."""
        if not self.locked:
            return self._accept_or_wait(poller)
        lock = self.lock
        self.waiting_for_lock = True  # HUP/QUIT now end the wait (on_retire raises)
        try:
            lock.acquire()
        except LockWaitEnded:
            return None
        finally:
            self.waiting_for_lock = False
        board, slot = self.board, self.slot
        board.hold_lock(slot, True)
        try:
            return self._accept_or_wait(poller)
        finally:
            board.hold_lock(slot, False)
            lock.release()

    def _accept_or_wait(self, poller: Any) -> Optional[Tuple[Any, Any]]:
        """Accept from each ready listener (all of them first); when none has one, wait in epoll."""
        accept, by_fd = self.accept, self.by_fd
        ready = self.tokens
        while not self.retire:
            for token in ready:
                try:
                    return accept(token)
                except OSError:  # empty (EAGAIN), interrupted, or the peer gave up (ECONNABORTED…)
                    continue
            events = poller.poll(ORPHAN_CHECK)
            if not events and self.parent_gone():
                return None
            ready = [by_fd[fd] for fd, _ in events if fd in by_fd]
            if len(ready) < len(events):  # the wake-up pipe: a signal set a flag
                wakeup = self.wakeup
                if wakeup is not None:
                    wakeup.drain()
                return None
        return None

    def _serve_one(self, request: Any, client_address: Any) -> None:
        board, slot = self.board, self.slot
        began = time.time()
        board.serving(slot, self.served, client_text(client_address), began)
        if self.exhausted(self.served + 1):
            self.take_last()
        self.handle(request, client_address)
        self.served += 1
        board.count_request(slot, self.served)
        self.note_took(time.time() - began)
        board.set_state(slot, IDLE)

    def note_took(self, seconds: float) -> None:
        """How long the last connection (an event child: request) took.  The scoreboard's brief
        flag says whether it was under ``BRIEF``: while the CPUs are saturated, the parent counts a
        child with brief ones as spare for a moment of being busy (``Scoreboard.spare``).  Written
        only when the answer changes (a kept-alive classic connection clears it on the board:
        ``request_state``, and the next long one writes it again)."""
        brief = seconds < BRIEF
        if brief != self.brief:
            self.brief = brief
            self.board.mark_brief(self.slot, brief)

    def take_last(self) -> None:
        """The connection just taken is the last: the parent may fork the successor while it is
        served, and the handler knows (HTTP ends keep-alive: the successor is already there)."""
        self.board.mark_retiring(self.slot)
        wake_parent(self.parent_pid)
        self.retire = True

    # -- leaving ----------------------------------------------------------------------

    def close(self) -> None:
        """Mark EXITING; serve what is queued (all listeners after QUIT, else this child's own
        reuse_port sockets, which no other child accepts from); close its own sockets."""
        self.board.set_state(self.slot, EXITING)
        if self.drain:
            self.drain_queue(self.tokens)
        elif self.own_listeners:
            self.drain_queue(self.own_listeners)
        for listener in self.own_listeners:
            listener.socket.close()

    def drain_queue(self, tokens: Sequence[Any]) -> None:
        """On a graceful stop, serve what the kernel already queued, so it is not reset."""
        for token in tokens:
            while True:
                try:
                    request, client_address = self.accept(token)
                except OSError:
                    break
                self.handle(request, client_address)
