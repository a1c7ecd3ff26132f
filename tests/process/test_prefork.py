"""PreFork as a real process: pool size under load and idle, max_requests, TTIN/TTOU, kill -9.

The pool is observed from outside: the parent's children are read from
/proc/PID/task/PID/children, each child's state from /proc/CHILD/stat.  A
held connection (greeted by the echo handler, then silent) occupies one
child, so the number of greeted connections is the number of children
serving at once.
"""

from __future__ import annotations

import os
import platform
import signal

import pytest

from harness import echo_exchange
from proctools import (
    LOOPBACK, accept_queue, children, complete_reply, finish_one_then_the_rest, greeted_count, greeting_pid, holds_for,
    live_children, serving_pids, ttou_down_to_one, wait_until, zombie_children,
)

FAST = ["--check_for_spawn", "0.1", "--check_for_waiting", "0.5", "--min_child_ttl", "0.2"]


def prefork(servers, *options):
    return servers.start(["PreFork", *LOOPBACK, *FAST, *options])


@pytest.mark.slow
def test_starts_min_servers_children(servers):
    server = prefork(servers, "--min_servers", "3", "--max_servers", "6",
                     "--min_spare_servers", "1", "--max_spare_servers", "4")
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children")
    # Idle, the pool neither grows nor shrinks.
    assert holds_for(lambda: len(live_children(server.pid)) == 3, 0.6), live_children(server.pid)
    for child in live_children(server.pid):
        with open(f"/proc/{child}/cmdline", "rb") as fh:
            assert b"netserver" in fh.read()


@pytest.mark.slow
def test_grows_to_max_servers_and_no_further_then_shrinks(servers, clients):
    server = prefork(servers, "--min_servers", "2", "--max_servers", "4",
                     "--min_spare_servers", "1", "--max_spare_servers", "2")
    address = ("127.0.0.1", server.port)
    wait_until(lambda: len(live_children(server.pid)) == 2, what="the initial 2 children")

    held = [clients(address) for _ in range(6)]
    wait_until(lambda: greeted_count(held) == 4, what="4 held connections to be served")
    # At max_servers: the two extra connections wait in the kernel's queue; no fifth child.
    assert holds_for(lambda: greeted_count(held) == 4 and len(live_children(server.pid)) <= 4, 1.0), \
        (greeted_count(held), live_children(server.pid))
    assert accept_queue(server.port) == 2, "the extra connections wait in the kernel's queue"
    serving = {client.pid for client in held if client.pid}
    assert len(serving) == 4 and serving <= set(live_children(server.pid))

    # Releasing a held connection lets a queued one in, one for one.
    first = [client for client in held if client.pid]
    first[0].finish_checked()
    wait_until(lambda: greeted_count(held) == 5, what="a queued connection to be served")
    first[1].finish_checked()
    wait_until(lambda: greeted_count(held) == 6, what="the last queued connection to be served")
    for client in held:
        if not client.finished:
            client.finish_checked()

    # Idle again: surplus idle children are retired down to the bounds, never below min_servers.
    samples = []

    def shrunk():
        count = len(live_children(server.pid))
        samples.append(count)
        return count == 2

    wait_until(shrunk, what="the pool to shrink back to 2")
    assert min(samples) >= 2, samples
    assert holds_for(lambda: len(live_children(server.pid)) == 2, 0.8)
    assert not zombie_children(server.pid)


@pytest.mark.slow
def test_max_requests_recycles_children(servers):
    server = prefork(servers, "--min_servers", "2", "--max_servers", "2", "--max_requests", "5")
    address = ("127.0.0.1", server.port)
    served = serving_pids(address, 60)
    assert server.pid not in served
    # 5 connections per child (5 // 10 == 0: no jitter), so at least 12 children served.
    assert max(served.values()) <= 5, served
    assert len(served) >= 12, served
    wait_until(lambda: not zombie_children(server.pid), what="no zombie children")


@pytest.mark.slow
def test_ttin_ttou_change_how_many_are_served_at_once(servers, clients):
    server = prefork(servers, "--min_servers", "1", "--max_servers", "2", "--min_spare_servers", "1",
                     "--max_spare_servers", "1", "--log_level", "3")
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(3)]
    wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
    assert holds_for(lambda: greeted_count(held) == 2, 0.7), "a third connection was served at max_servers 2"

    server.signal(signal.SIGTTIN)
    server.wait_for(r"Received TTIN, max_servers is now 3")
    wait_until(lambda: greeted_count(held) == 3, what="the third connection to be served after TTIN")
    for client in held:
        client.finish_checked()

    ttou_down_to_one(server)
    wait_until(lambda: len(live_children(server.pid)) == 1, what="the pool to shrink to 1 after TTOU")

    held = [clients(address) for _ in range(2)]
    wait_until(lambda: greeted_count(held) == 1, what="1 connection served")
    assert holds_for(lambda: greeted_count(held) == 1, 0.7), "a second connection was served at max_servers 1"
    finish_one_then_the_rest(held)
    assert "Traceback" not in server.log_text()


@pytest.mark.slow
def test_kill_9_child_is_replaced_and_logged(servers):
    server = prefork(servers, "--min_servers", "3", "--max_servers", "3", "--min_spare_servers", "0")
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children")
    before = set(live_children(server.pid))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in live_children(server.pid) and len(live_children(server.pid)) == 3,
               what="the killed child to be replaced")
    server.wait_for(rf"Child {victim} \(prefork\) exited abnormally: killed by SIGKILL")
    wait_until(lambda: victim not in children(server.pid), what="the killed child to be reaped")

    # Every child at once.
    everyone = set(live_children(server.pid))
    for pid in everyone:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(live_children(server.pid)) == 3 and not everyone & set(children(server.pid)),
               what="the pool to be rebuilt")
    for pid in everyone:
        server.wait_for(rf"Child {pid} \(prefork\) exited abnormally: killed by SIGKILL")
    assert not zombie_children(server.pid)
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))



# -- serialize (issue 14): the accept lock really locks, and a holder's kill -9 is no deadlock ---------

# x86_64 system call numbers, read from /proc/PID/syscall while a child is blocked.
_EPOLL_WAITS = {"232", "281", "441"}  # epoll_wait, epoll_pwait, epoll_pwait2


def _blocked_in(pid):
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            return fh.read().split()[0]
    except (OSError, IndexError):
        return None


def _waiting_in_epoll(server):
    return [kid for kid in live_children(server.pid) if _blocked_in(kid) in _EPOLL_WAITS]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86_64 system call numbers from /proc")
@pytest.mark.parametrize("serialize", ["flock", "semaphore", "pipe"])
@pytest.mark.slow
def test_serialize_lets_one_child_wait_and_survives_the_holder_killed(servers, serialize):
    server = prefork(servers, "--min_servers", "3", "--max_servers", "3", "--min_spare_servers", "1",
                     "--max_spare_servers", "3", "--serialize", serialize)
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children")
    # Exactly one child waits for connections; the others wait for the lock.
    wait_until(lambda: len(_waiting_in_epoll(server)) == 1 and
               all(_blocked_in(kid) is not None for kid in live_children(server.pid)),
               what=f"one child in epoll ({serialize} held), the others queued for the lock")
    assert holds_for(lambda: len(_waiting_in_epoll(server)) <= 1, 0.5), "more than one child holds the lock"
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))

    # Between two connections the lock changes hands: wait until a child holds it again.
    holder = wait_until(lambda: _waiting_in_epoll(server), what="a child waiting in epoll")[0]
    os.kill(holder, signal.SIGKILL)  # it dies holding the lock
    assert complete_reply(echo_exchange(("127.0.0.1", server.port))), "the pool deadlocked"
    wait_until(lambda: len(_waiting_in_epoll(server)) == 1, what="a new holder")
    server.signal(signal.SIGQUIT)  # children queued for the lock still leave at once
    assert server.wait_exit() == 0


# The parent's own tick is made a minute long: whatever happens below happens because the
# parent was woken, not because it polled.
SLOW_TICK = """
    import netserver

    class SlowTick(netserver.{personality}):
        _tick = 60.0

        def serve_forever(self, poll_interval=0.5):
            super().serve_forever(60.0)

    SlowTick.run()
"""


@pytest.mark.parametrize("personality", ["PreFork", "PreForkSimple"])
@pytest.mark.slow
def test_a_retiring_child_is_replaced_at_once_not_at_the_next_tick(servers, clients, write_script, personality):
    options = ["--check_for_spawn", "60", "--min_spare_servers", "0"] if personality == "PreFork" else []
    server = servers.start([*LOOPBACK, "--min_servers", "1", "--max_servers", "1", "--max_requests", "1",
                            *options], script=write_script(SLOW_TICK.format(personality=personality)))
    address = ("127.0.0.1", server.port)
    wait_until(lambda: len(live_children(server.pid)) == 1, what="the first child")

    # The child takes its last connection: it says so in the scoreboard and wakes the parent, which
    # forks the successor while the old child is still serving.
    held = clients(address)
    old = held.wait_greeted()
    wait_until(lambda: len(live_children(server.pid)) == 2, what="the successor to start beside the old child")
    assert old in live_children(server.pid)
    held.finish_checked()
    wait_until(lambda: old not in children(server.pid), what="the old child to exit and be reaped")

    # Recycling after every connection, far faster than the spawn rate (1, 2, 4... a second) and the
    # tick: every connection is served, by a new child each time.
    served = []
    for _ in range(12):
        reply = echo_exchange(address)
        assert complete_reply(reply), reply
        served.append(greeting_pid(reply))
    assert len(set(served)) == 12, served
    # The last one's child exits and is reaped; its successor waits; no more are forked.
    wait_until(lambda: len(children(server.pid)) == 1 and served[-1] not in children(server.pid),
               what="only the last child's successor left")
    assert holds_for(lambda: len(children(server.pid)) == 1, 0.3), children(server.pid)
    assert "exited abnormally" not in server.log_text()
