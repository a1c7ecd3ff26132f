"""The parent's child table (netserver.process.children) with real, short-lived forked children.

The reaping scenarios run inside a forked child of their own (``run_forked``), so
``waitpid(-1)`` never takes a process that belongs to another test.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from forked import run_forked
from harness import TIMEOUT
from netserver.process.children import Child, ChildTable, Exit, describe_status


def spawn(code: int = 0, pause: bool = False) -> int:
    """Fork a child that exits with ``code`` at once, or waits for a signal first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if pause:
                signal.pause()
        finally:
            os._exit(code)
    return pid


def reap_all(table: ChildTable, count: int):
    """Reap until ``count`` exits have been collected (bounded)."""
    exits = []
    deadline = time.monotonic() + TIMEOUT
    while len(exits) < count:
        assert time.monotonic() < deadline, f"only {len(exits)} of {count} exits reaped"
        exits.extend(table.reap())
        time.sleep(0.005)
    return exits


# -- describe_status / Exit.failed: real statuses from real children ----------------------------

def _status_of(action) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            action()
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def _die_by(signum):
    def action():
        if signum != signal.SIGKILL:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        signal.pause()
    return action


@pytest.mark.parametrize("action, text, failed", [
    (lambda: os._exit(0), "exit 0", False),
    (lambda: os._exit(3), "exit 3", True),
    (_die_by(signal.SIGKILL), "killed by SIGKILL", True),
    (_die_by(signal.SIGTERM), "killed by SIGTERM", True),
])
def test_describe_status_and_failed(action, text, failed):
    status = _status_of(action)
    assert describe_status(status) == text
    assert Exit(None, 1, status).failed is failed


def test_describe_status_of_a_stopped_child_and_an_unknown_signal():
    # WIFSTOPPED statuses (0x7f in the low byte) only come with WUNTRACED; shown raw.
    assert describe_status((signal.SIGSTOP << 8) | 0x7F) == f"status {(signal.SIGSTOP << 8) | 0x7F}"
    assert describe_status(0x80 | signal.SIGSEGV) == "killed by SIGSEGV (core dumped)"
    assert describe_status(63) == "killed by 63"  # a real-time signal without a name


# -- the table ------------------------------------------------------------------------------------

def test_table_bookkeeping():
    table = ChildTable()
    a = table.add(Child(101, "prefork", slot=0, started=5.0))
    table.add(Child(102, "prefork", slot=1))
    table.add(Child(103, "dequeue"))
    assert len(table) == 3 and 101 in table and 999 not in table
    assert table.get(101) is a and table.get(999) is None
    assert a.started == 5.0 and not a.retiring
    assert sorted(c.pid for c in table.of_kind("prefork")) == [101, 102]
    assert table.count("prefork", "dequeue") == 3 and table.count("old") == 0
    for child in table:  # a snapshot: removing while iterating is safe
        table.children.pop(child.pid)
    assert len(table) == 0
    assert repr(a) == "Child(101, 'prefork', slot=0)"


def test_child_started_defaults_to_the_monotonic_clock():
    before = time.monotonic()
    child = Child(1, "fork")
    assert before <= child.started <= time.monotonic()


def test_reap_with_no_children_returns_nothing():
    assert run_forked(lambda: ChildTable().reap()) == []


def _reap_scenario():
    table = ChildTable()
    known = {spawn(0): "prefork", spawn(3): "prefork", spawn(0): "dequeue"}
    for pid, kind in known.items():
        table.add(Child(pid, kind))
    stranger = spawn(7)  # forked, but never put in the table
    exits = reap_all(table, 4)
    return [(e.pid, e.child.kind if e.child else None, describe_status(e.status)) for e in exits], \
        sorted(known), stranger, len(table)


def test_reap_collects_known_and_unknown_exits():
    exits, known, stranger, left = run_forked(_reap_scenario)
    by_pid = {pid: (kind, status) for pid, kind, status in exits}
    assert set(by_pid) == set(known) | {stranger}
    assert by_pid[stranger] == (None, "exit 7"), "a pid the server did not start has no Child"
    assert sorted(status for kind, status in by_pid.values() if kind) == ["exit 0", "exit 0", "exit 3"]
    assert left == 0, "every reaped child leaves the table"


def _reap_does_not_block():
    table = ChildTable()
    pid = table.add(Child(spawn(pause=True), "prefork")).pid
    started = time.monotonic()
    first = table.reap()
    took = time.monotonic() - started
    still_known = pid in table
    os.kill(pid, signal.SIGTERM)
    exits = reap_all(table, 1)
    return first, took, still_known, [(e.pid, describe_status(e.status)) for e in exits], pid


def test_reap_does_not_block_on_a_live_child():
    first, took, still_known, exits, pid = run_forked(_reap_does_not_block)
    assert first == [] and took < 1.0 and still_known
    assert exits == [(pid, "killed by SIGTERM")]


def _signal_all_scenario():
    table = ChildTable()
    pool = [table.add(Child(spawn(pause=True), "prefork")).pid for _ in range(2)]
    other = table.add(Child(spawn(pause=True), "dequeue")).pid
    table.signal_all(signal.SIGTERM, kinds=("prefork",))
    first = {e.pid: describe_status(e.status) for e in reap_all(table, 2)}
    other_alive = other in table
    table.add(Child(pool[0], "old"))  # already reaped: signalling it must not raise
    table.signal_all(signal.SIGUSR1)  # no kinds: everyone (SIGUSR1's default action ends them)
    rest = {e.pid: describe_status(e.status) for e in reap_all(table, 1)}
    return pool, other, first, other_alive, rest


def test_signal_all_by_kind():
    pool, other, first, other_alive, rest = run_forked(_signal_all_scenario)
    assert first == {pid: "killed by SIGTERM" for pid in pool}
    assert other_alive
    assert rest == {other: "killed by SIGUSR1"}
