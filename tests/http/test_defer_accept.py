"""``defer_accept``: an HTTP listener hands a connection to a child once its first bytes arrive.

Observed from outside: a child's open sockets (``/proc/PID/fd``) grow by one
when it accepts a connection.  Runs against event children and, with
``NETSERVER_TEST_HTTP_EVENT=0``, the classic loop alike.
"""

import sys

import pytest

from httpkit import Raw, serve
from procfs import fd_links, live_children
from waiting import holds_for, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_DEFER_ACCEPT is Linux's")

ONE_CHILD = ["--app", "wsgiapps:app", "--server_type", "PreForkSimple", "--max_servers", "1"]


def sockets_of(pid: int) -> int:
    return sum(1 for link in fd_links(pid).values() if link.startswith("socket:"))


def only_child(proc) -> int:
    return wait_until(lambda: live_children(proc.pid), what="the child")[0]


@pytest.mark.parametrize("extra", [[], ["--reuse_port"]])  # reuse_port: the child's own socket too
def test_a_silent_connection_reaches_no_child_until_it_sends(app_dir, extra):
    with serve(ONE_CHILD + extra, app_dir=app_dir) as proc:
        child = only_child(proc)
        before = sockets_of(child)
        silent = []
        with Raw(proc.port) as conn:
            for _ in range(5):  # reuse_port spreads connections over the shared and the child's socket
                silent.append(Raw(proc.port))
            assert holds_for(lambda: sockets_of(child) == before, 0.5)  # connected, but not the child's
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().body == b"hello\n"
            assert sockets_of(child) == before + 1  # now it is
        for other in silent:
            other.close()


def test_defer_accept_0_hands_a_silent_connection_over_at_once(app_dir):
    with serve(ONE_CHILD + ["--defer_accept", "0"], app_dir=app_dir) as proc:
        child = only_child(proc)
        before = sockets_of(child)
        with Raw(proc.port) as conn:
            wait_until(lambda: sockets_of(child) == before + 1, what="the child's accept")
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().body == b"hello\n"
