"""PreForkSimple as a real process: a fixed pool of max_servers children."""

from __future__ import annotations

import os
import signal

import pytest

from harness import echo_exchange
from proctools import (
    LOOPBACK, complete_reply, greeted_count, holds_for, live_children, serving_pids, wait_until, zombie_children,
)


def preforksimple(servers, *options):
    return servers.start(["PreForkSimple", *LOOPBACK, *options])


@pytest.mark.slow
def test_fixed_pool_of_max_servers_whatever_the_load(servers, clients):
    server = preforksimple(servers, "--max_servers", "3")
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children")
    assert holds_for(lambda: len(live_children(server.pid)) == 3, 0.5)
    pool = set(live_children(server.pid))

    held = [clients(("127.0.0.1", server.port)) for _ in range(5)]
    wait_until(lambda: greeted_count(held) == 3, what="3 connections served")
    assert holds_for(lambda: greeted_count(held) == 3 and set(live_children(server.pid)) == pool, 0.7), \
        "the fixed pool served more than max_servers at once, or changed"
    assert {client.pid for client in held if client.pid} == pool
    for client in [c for c in held if c.pid]:
        client.finish_checked()
    wait_until(lambda: greeted_count(held) == 5, what="the queued connections to be served")
    for client in held:
        if not client.finished:
            client.finish_checked()
    assert set(live_children(server.pid)) == pool


def test_max_requests_recycles_children(servers):
    server = preforksimple(servers, "--max_servers", "2", "--max_requests", "5")
    address = ("127.0.0.1", server.port)
    served = serving_pids(address, 20)
    assert max(served.values()) <= 5, served
    assert len(served) >= 4, served
    wait_until(lambda: len(live_children(server.pid)) == 2 and not zombie_children(server.pid),
               what="the pool back at 2 without zombies")


def test_kill_9_child_is_replaced(servers):
    server = preforksimple(servers, "--max_servers", "2")
    wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
    victim = live_children(server.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(live_children(server.pid)) == 2 and victim not in live_children(server.pid),
               what="a replacement child")
    server.wait_for(rf"Child {victim} \(prefork\) exited abnormally: killed by SIGKILL")
    wait_until(lambda: not zombie_children(server.pid), what="no zombies")
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))


@pytest.mark.slow
def test_ttin_ttou_resize_the_pool(servers):
    server = preforksimple(servers, "--max_servers", "2", "--log_level", "3")
    wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
    server.signal(signal.SIGTTIN)
    server.wait_for(r"Received TTIN, max_servers is now 3")
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children after TTIN")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 2")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 1")
    wait_until(lambda: len(live_children(server.pid)) == 1, what="1 child after TTOU")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, but max_servers is already 1")
    assert holds_for(lambda: len(live_children(server.pid)) == 1, 0.6)
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))
