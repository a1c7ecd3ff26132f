"""Fixtures for the process-level tests: servers, held clients and scripts, all cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from harness import ServerProcess
from proctools import HeldClient, group_members


@pytest.fixture
def servers():
    """Start servers with ``servers.start(args, ...)``; every process of their groups is killed after the test."""
    started = []

    class Starter:
        def start(self, args, **kwargs) -> ServerProcess:
            server = ServerProcess(args, wait=False, **kwargs)
            started.append(server)
            server.wait_ready(kwargs.get("bindings", 1))
            return server

    yield Starter()
    for server in started:
        members = group_members(server.pid)
        server.stop()
        # Shown by pytest when the test failed.
        print(f"--- log of {' '.join(server.command[1:])} (pid {server.pid}) ---\n{server.log_text()}")
        for pid in members:  # anything that left the group's leader behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def clients():
    """``clients(address)`` opens a HeldClient; every one is closed after the test."""
    opened = []

    def open_client(address) -> HeldClient:
        client = HeldClient(address)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        with contextlib.suppress(OSError):
            client.close()


