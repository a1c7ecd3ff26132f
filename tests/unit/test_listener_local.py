"""``Listener.local_address``: the local end every accepted connection has, when the bind fixes it.

Each row binds a real socket, accepts a real connection and compares the
listener's answer with the connection's own ``getsockname()``.
"""

import os
import socket
import tempfile

import pytest

from netserver.client import ClientInfo
from netserver.proto import listener_for_socket


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def accepted(family, bind_host, connect_host):
    """(listener, accepted connection) over loopback, the listener bound to ``bind_host``."""
    server = socket.socket(family)
    server.bind((bind_host, 0))
    server.listen()
    client = socket.create_connection((connect_host, server.getsockname()[1]), timeout=5)
    conn, _ = server.accept()
    return listener_for_socket(server), conn, client


@pytest.mark.parametrize("family, bind_host, connect_host, fixed", [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", True),
    (socket.AF_INET, "0.0.0.0", "127.0.0.1", False),  # a wildcard bind: each connection says
    pytest.param(socket.AF_INET6, "::1", "::1", True,
                 marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")),
    pytest.param(socket.AF_INET6, "::", "::1", False,
                 marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")),
    pytest.param(socket.AF_INET6, "::ffff:0.0.0.0", "127.0.0.2", False,  # every IPv4 address, dual-stack
                 marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")),
])
def test_a_specific_bind_fixes_the_local_address_and_a_wildcard_does_not(family, bind_host, connect_host, fixed):
    listener, conn, client = accepted(family, bind_host, connect_host)
    try:
        if fixed:
            assert listener.local_address() == conn.getsockname()
        else:
            assert listener.local_address() is None
        info = ClientInfo(conn, client.getsockname(), listener)
        assert info.local_address == conn.getsockname()  # from the listener or from the socket alike
        assert info.sockport == listener.socket.getsockname()[1]
    finally:
        for sock in (conn, client, listener.socket):
            sock.close()


def test_a_transparent_socket_is_asked_per_connection():
    """IP_TRANSPARENT (TPROXY) accepts connections for addresses it is not bound to."""
    if not hasattr(socket, "IP_TRANSPARENT"):
        pytest.skip("no IP_TRANSPARENT here")
    server = socket.socket()
    try:
        try:
            server.setsockopt(socket.IPPROTO_IP, socket.IP_TRANSPARENT, 1)
        except PermissionError:
            pytest.skip("IP_TRANSPARENT needs CAP_NET_ADMIN")
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert listener_for_socket(server).local_address() is None
    finally:
        server.close()


def test_a_unix_socket_and_a_replaced_socket():
    with tempfile.TemporaryDirectory() as directory:
        server = socket.socket(socket.AF_UNIX)
        server.bind(os.path.join(directory, "s"))
        listener = listener_for_socket(server)
        assert listener.local_address() is None
        server.close()
    replacement = socket.socket()
    replacement.bind(("127.0.0.1", 0))
    listener.socket = replacement  # a program may set a new socket (bind_and_activate=False)
    try:
        assert listener.local_address() == replacement.getsockname()
    finally:
        replacement.close()
