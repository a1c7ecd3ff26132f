"""Fork as a real process (and the command's default, which is Fork)."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from harness import echo_exchange
from proctools import (
    LOOPBACK, accept_queue, children, complete_reply, exists, finish_one_then_the_rest, greeted_count, greeting_pid,
    holds_for, live_children, state, ttou_down_to_one, wait_until, zombie_children,
)

@pytest.mark.slow
def test_default_command_is_an_echo_server_of_type_fork(servers):
    server = servers.start(LOOPBACK)
    server.wait_for(r"\(type Fork\) starting! pid\(%d\)" % server.pid)
    address = ("127.0.0.1", server.port)
    first, second = echo_exchange(address), echo_exchange(address)
    assert complete_reply(first) and complete_reply(second)
    pids = {greeting_pid(first), greeting_pid(second)}
    assert server.pid not in pids and len(pids) == 2, "each connection is served by a new child"
    wait_until(lambda: not children(server.pid), what="the per-connection children to be reaped")


@pytest.mark.slow
def test_max_servers_and_ttin_ttou(servers, clients):
    server = servers.start(["Fork", *LOOPBACK, "--max_servers", "2", "--log_level", "3"])
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(3)]
    wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
    assert holds_for(lambda: greeted_count(held) == 2 and len(live_children(server.pid)) == 2, 0.7), \
        "a third connection was served at max_servers 2"
    assert accept_queue(server.port) == 1, "the third connection waits in the kernel's queue"

    server.signal(signal.SIGTTIN)
    server.wait_for(r"Received TTIN, max_servers is now 3")
    wait_until(lambda: greeted_count(held) == 3, what="the third connection to be served after TTIN")
    assert len({client.pid for client in held}) == 3
    for client in held:
        client.finish_checked()

    ttou_down_to_one(server)

    held = [clients(address) for _ in range(2)]
    wait_until(lambda: greeted_count(held) == 1, what="1 connection served")
    assert holds_for(lambda: greeted_count(held) == 1, 0.7), "a second connection was served at max_servers 1"
    finish_one_then_the_rest(held)


def test_kill_9_of_a_child_is_logged_reaped_and_frees_its_place(servers, clients):
    server = servers.start(["Fork", *LOOPBACK, "--max_servers", "1"])
    address = ("127.0.0.1", server.port)
    victim_client = clients(address)
    victim = victim_client.wait_greeted()
    waiting = clients(address)
    assert not waiting.greeted(0.3)
    os.kill(victim, signal.SIGKILL)
    server.wait_for(rf"Child {victim} \(fork\) exited abnormally: killed by SIGKILL")
    wait_until(lambda: not exists(victim), what="the killed child to be reaped")
    # Its place is free again: the queued connection is served by a new child.
    assert waiting.wait_greeted() != victim
    waiting.finish_checked()
    wait_until(lambda: not zombie_children(server.pid), what="no zombies")


def test_udp_is_served_by_a_child(servers):
    server = servers.start(["Fork", "--host", "127.0.0.1", "--port", "0", "--proto", "udp"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(b"ping", ("127.0.0.1", server.port))
        reply, _ = sock.recvfrom(4096)
    assert b'You said "ping"' in reply
    pid = int(reply.split(b":")[1])
    assert pid != server.pid
    assert state(server.pid) is not None
