"""Side-by-side tests: one scenario run against Perl's Net::Server and against netserver.

Perl's Net::Server 2.013 is the Debian package ``libnet-server-perl``
(``.ci/run`` installs it).  Without it every test here is skipped with a
message saying so.  Each test writes the same tiny server twice — a Perl
script over Net::Server and a Python script over netserver — runs both as
real processes on 127.0.0.1 port 0, drives them the same way and compares
what a client or the hooks observed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "process"))  # proctools

from harness import started_servers  # noqa: E402


def _have_net_server() -> bool:
    try:
        done = subprocess.run(["perl", "-MNet::Server", "-e", "1"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


HAVE_NET_SERVER = _have_net_server()


@pytest.fixture(autouse=True)
def _needs_perl_net_server():
    if not HAVE_NET_SERVER:
        pytest.skip("Perl's Net::Server is not installed (apt-get install libnet-server-perl): "
                    "side-by-side test skipped")


@pytest.fixture
def servers():
    """``servers.start(args, script=...)``: a ServerProcess; every process of its group is killed after the test."""
    yield from started_servers(wait_ready=False)
