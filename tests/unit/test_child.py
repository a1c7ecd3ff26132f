"""A pool child's decisions (netserver.process.child), without sockets or fork.

The loop runs against a fake scoreboard and a fake ``accept``: what the
child serves, when it retires, what its signal handlers change, and what
it leaves the scoreboard saying.
"""

from __future__ import annotations

import os
import signal

import pytest

from netserver.process.child import LockWaitEnded, PoolChild, request_limit
from netserver.process.scoreboard import EXITING, IDLE
from netserver.process.serialize import AcceptLock, NoLock
from netserver.signals import SignalQueue


class Board:
    """Records what the child writes to its slot."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))

    def states(self):
        return [call[2] for call in self.calls if call[0] == "set_state"]


class Wakeup(SignalQueue):
    """The real wake-up pipe (the loop registers it in its epoll set), counting wake-ups."""

    woken = 0

    def wake(self):
        self.woken += 1
        super().wake()


def make_child(limit=0, lock=None, queue=None, handle=None, parent=None):
    """A child whose ``accept`` hands out ``queue`` (an endless supply if None), then EAGAIN."""
    served = []
    counter = iter(range(1000))  # no test needs more: a loop that never retires ends in StopIteration
    empty = [0]

    def accept(token):
        if queue is None:
            return f"conn{next(counter)}", ("127.0.0.1", 1)
        if not queue:
            empty[0] += 1  # the loop then waits in epoll (ORPHAN_CHECK): bound that too
            if empty[0] > 3 and not child.retire:
                raise AssertionError("the queue stayed empty and the child never retired")
            raise BlockingIOError()
        return queue.pop(0), ("127.0.0.1", 1)

    def default_handle(request, client_address):
        served.append(request)

    reopened = []
    child = PoolChild(3, os.getppid() if parent is None else parent, Board(), lock or NoLock(), accept,
                      handle or default_handle, lambda: reopened.append(True), limit)
    child.tokens = ["listener"]  # no epoll needed while accept always has one
    child.wakeup = Wakeup()
    children.append(child)
    return child, served, reopened


children = []


@pytest.fixture(autouse=True)
def close_wakeups():
    yield
    while children:
        children.pop().wakeup.close()


@pytest.mark.parametrize("limit, served, exhausted", [
    (0, 0, False), (0, 10**9, False),  # 0: no limit
    (1, 0, False), (1, 1, True),
    (1000, 999, False), (1000, 1000, True), (1000, 1001, True),
])
def test_the_budget_is_spent_after_limit_connections(limit, served, exhausted):
    child, _, _ = make_child(limit)
    assert child.exhausted(served) is exhausted


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_the_loop_serves_its_budget_and_marks_the_last_connection_before_serving_it(limit):
    marks = []
    child, served, _ = make_child(limit, handle=lambda request, _: marks.append((request, child.retire)))
    child.parent_pid = os.getpid()  # take_last wakes the "parent": SIGCHLD to ourselves is ignored
    child.serve()
    assert [request for request, _ in marks] == [f"conn{i}" for i in range(limit)]
    # Only the last is served retiring (HTTP answers it with Connection: close).
    assert [retiring for _, retiring in marks] == [False] * (limit - 1) + [True]
    calls = [call[0] for call in child.board.calls]
    assert calls.count("mark_retiring") == 1
    last_serving = len(calls) - 1 - calls[::-1].index("serving")
    assert calls.index("mark_retiring") == last_serving + 1  # as the last one is taken, before it is served
    assert ("count_request", 3, limit) in child.board.calls
    states = child.board.states()
    assert states[0] == IDLE and states[-1] == EXITING
    assert child.served == limit


def test_no_limit_means_the_loop_only_ends_on_a_signal():
    def handle(request, _):
        if request == "conn49":
            child.on_retire(int(signal.SIGHUP), None)

    child, _, _ = make_child(0, handle=handle)
    child.serve()
    assert child.served == 50 and child.retire and not child.drain
    assert child.wakeup.woken == 1
    assert "mark_retiring" not in [call[0] for call in child.board.calls]  # not a max_requests retirement


def test_quit_finishes_the_connection_then_serves_what_is_queued():
    queue = ["a", "b", "c", "d"]
    order = []

    def handle(request, _):
        order.append(request)
        if request == "a":
            child.on_retire(int(signal.SIGQUIT), None)

    child, _, _ = make_child(0, queue=queue, handle=handle)
    child.serve()
    assert child.drain
    assert order == ["a", "b", "c", "d"]  # b, c, d drained after the loop, none reset
    assert child.board.states()[-1] == EXITING


def test_hup_does_not_drain_the_shared_queue():
    queue = ["a", "b", "c"]
    order = []

    def handle(request, _):
        order.append(request)
        child.on_retire(int(signal.SIGHUP), None)

    child, _, _ = make_child(0, queue=queue, handle=handle)
    child.serve()
    assert order == ["a"] and queue == ["b", "c"]  # left for the other children


def test_a_later_hup_does_not_cancel_a_quit_drain():
    child, _, _ = make_child()
    child.on_retire(int(signal.SIGQUIT), None)
    child.on_retire(int(signal.SIGHUP), None)
    assert child.retire and child.drain


class _Lock(AcceptLock):
    name = "test"

    def __init__(self, child_box):
        self.child_box = child_box
        self.acquired = self.released = 0

    def acquire(self):
        self.acquired += 1
        if self.acquired == 3:  # a HUP while queued for the lock: the wait ends at once
            self.child_box[0].on_retire(int(signal.SIGHUP), None)

    def release(self):
        self.released += 1


def test_a_retire_signal_ends_the_wait_for_the_accept_lock():
    box = []
    lock = _Lock(box)
    child, served, _ = make_child(0, lock=lock)
    box.append(child)
    child.serve()
    assert served == ["conn0", "conn1"]
    assert lock.acquired == 3 and lock.released == 2  # the interrupted wait held nothing
    assert not child.waiting_for_lock
    holds = [call[2] for call in child.board.calls if call[0] == "hold_lock"]
    assert holds == [True, False, True, False]


def test_the_retire_handler_raises_only_into_a_lock_wait():
    child, _, _ = make_child()
    child.waiting_for_lock = True
    with pytest.raises(LockWaitEnded):
        child.on_retire(int(signal.SIGHUP), None)
    assert child.retire and not child.waiting_for_lock
    child.on_retire(int(signal.SIGHUP), None)  # not waiting: just the flag


def test_usr1_is_acted_on_once_between_connections():
    child, _, reopened = make_child()
    child.reopen_logs_if_asked()
    assert reopened == []
    child.on_usr1(int(signal.SIGUSR1), None)
    child.on_usr1(int(signal.SIGUSR1), None)
    assert child.wakeup.woken == 2
    child.reopen_logs_if_asked()
    child.reopen_logs_if_asked()
    assert reopened == [True]


def test_usr1_during_a_connection_reopens_before_the_next():
    events = []

    def handle(request, _):
        events.append(request)
        if request == "conn0":
            child.on_usr1(int(signal.SIGUSR1), None)
        if request == "conn2":
            child.on_retire(int(signal.SIGHUP), None)

    child, _, _ = make_child(0, handle=handle)
    child.reopen_logs = lambda: events.append("reopen")
    child.serve()
    assert events == ["conn0", "reopen", "conn1", "conn2"]


def test_an_orphan_retires():
    child, _, _ = make_child()
    assert not child.parent_gone() and not child.retire
    child.parent_pid = os.getppid() + 1_000_000  # no such parent: ours is someone else
    assert child.parent_gone() and child.retire


@pytest.mark.parametrize("draw, expected", [(b"\0" * 8, 100), (b"\xff" * 8, 100 + (2**64 - 1) % 11)])
def test_request_limit_uses_the_draw_uniformly_over_the_jitter(draw, expected):
    assert request_limit(100, None, lambda n: draw) == expected
    assert request_limit(100, 0, lambda n: draw) == 100
    assert request_limit(0, 5, lambda n: draw) == 0


def test_the_brief_flag_follows_the_length_of_the_last_connection(monkeypatch):
    """A child says its connections are brief (the parent counts it spare while busy for a moment,
    if the CPUs are saturated) after one shorter than BRIEF, and unsays it after a long one; it
    writes the flag only when it changes."""
    import types

    from netserver.process import child as child_module
    from netserver.process.scoreboard import BRIEF

    clock = [1000.0]
    monkeypatch.setattr(child_module, "time", types.SimpleNamespace(time=lambda: clock[0]))
    lengths = iter([0, 0, BRIEF * 2, BRIEF / 2])

    def handle(request, _):
        clock[0] += next(lengths)
        if request == "conn3":
            child.on_retire(int(signal.SIGHUP), None)

    child, _, _ = make_child(0, handle=handle)
    child.serve()
    assert [call[2] for call in child.board.calls if call[0] == "mark_brief"] == [True, False, True]


def test_a_kept_alive_request_clears_the_brief_flag_and_a_brief_connection_sets_it_again():
    """A classic keep-alive request clears the board's brief flag (each request restarts the busy
    time, which must not read as a brief moment); the child's copy of that flag follows, so the
    next brief connection writes it again and the child counts as spare while briefly busy."""
    import time

    from netserver.personalities.parent import ProcessParentMixIn
    from netserver.process.scoreboard import Scoreboard

    child, _, _ = make_child()
    child.board = board = Scoreboard(8)
    child.note_took(0.0)
    server = object.__new__(ProcessParentMixIn)  # only its request-state step is exercised
    server._child, server._child_slot, server._scoreboard = child, child.slot, board
    server._request_state(True)
    server._request_state(False)  # the kept-alive request ended: the board's flag is cleared
    assert not board.spare(child.slot, time.time(), saturated=True)
    child.note_took(0.0)  # the next connection was brief
    board.serving(child.slot, 1, b"client")
    assert board.spare(child.slot, time.time(), saturated=True)
