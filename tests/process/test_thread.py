"""The Thread personality from the command line: bounded workers in one process."""

from __future__ import annotations

import os
import signal
import time

import pytest

from proctools import (
    LOOPBACK, accept_queue, assert_group_gone, finish_one_then_the_rest, greeted_count, holds_for, live_children,
    wait_until,
)

@pytest.mark.slow
def test_max_servers_bounds_the_clients_served_at_once(servers, clients):
    server = servers.start(["Thread", *LOOPBACK, "--max_servers", "2"])
    server.wait_for(r"\(type Thread\) starting!")
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(3)]
    wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
    assert holds_for(lambda: greeted_count(held) == 2, 0.7), "a third connection was served at max_servers 2"
    assert accept_queue(server.port) == 1, "the third connection waits in the kernel's queue, not accepted"
    assert {client.pid for client in held if client.pid} == {server.pid}, "served by threads of the server"
    assert not live_children(server.pid)

    finish_one_then_the_rest(held)

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    server.wait_for(r"Received TERM")
    assert_group_gone(server)


def test_term_stops_now_with_connections_in_progress(servers, clients):
    server = servers.start(["Thread", *LOOPBACK, "--max_servers", "4"])
    held = [clients(("127.0.0.1", server.port)) for _ in range(2)]
    for client in held:
        client.wait_greeted()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for(r"Received TERM")
    # The echo handler's idle timeout is 30s: only a server that stops now exits within 3s.
    assert holds_for(lambda: server.proc.poll() is None, 3.0) is False, "TERM did not stop the server"
    assert time.monotonic() - started < 3.5


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_out_of_descriptors_backs_off_and_logs(servers, clients, write_script):
    """Issue 14: with ``ulimit -n`` exhausted the listener stays readable and accept fails with
    EMFILE; the main thread must not spin at 100% CPU, and must say why it is not accepting."""
    script = write_script("""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        from netserver.cli import main
        main()
    """)
    server = servers.start(["Thread", *LOOPBACK, "--max_servers", "100", "--user", "root"], script=script)
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(45)]  # more than the server has descriptors for
    server.wait_for(r"Cannot accept connections: Too many open files")
    before = _cpu_seconds(server.pid)
    started = time.monotonic()
    time.sleep(1.0)  # measuring CPU use over a second, not waiting for an event
    used = _cpu_seconds(server.pid) - before
    assert used < 0.3 * (time.monotonic() - started), f"the server spun: {used:.2f}s of CPU in 1s"
    waiting = [client for client in held if not client.greeted(0.01)]
    assert waiting, "every connection was served: the limit was never reached"
    # Freed descriptors let the waiting connections in.
    for client in [c for c in held if c not in waiting][:len(waiting) + 5]:
        client.finish_checked()
    for client in waiting:
        client.wait_greeted()
