"""Fixtures for the process-level tests: servers, held clients and scripts, all cleaned up."""

from __future__ import annotations

import contextlib

import pytest

from harness import started_servers
from proctools import HeldClient


@pytest.fixture
def servers():
    """``servers.start(args, script=...)``: a ServerProcess; every process of its group is killed after the test."""
    yield from started_servers(wait_ready=True)


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


