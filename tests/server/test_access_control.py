"""Access control seen from clients: who gets a greeting and who is cut off.

A denied client is closed without a word; the log names it.  Denied clients
send nothing, so the close is a clean EOF (unread data would turn it into a
reset).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import socketserver
import tempfile
import threading
import time

import pytest

from harness import TIMEOUT, echo_exchange, open_fds, read_all, serving

import netserver
from netserver.proto.resolve import bindv6only, ipv6_usable

pytestmark = pytest.mark.process  # some tests here start the server as a process

dual_stack = pytest.mark.skipif(not ipv6_usable() or bindv6only(),
                                reason="needs IPv6 and a dual-stack '::' socket (bindv6only 0)")


# In-process servers name the test process's own user, so that no test depends on
# what a server does with no ``user`` (it keeps the identity and, as root, warns).
SELF = {"user": pwd.getpwuid(os.geteuid()).pw_name}


def _connected(address, source=None) -> socket.socket:
    """A TCP connection to ``address`` (IPv4 or IPv6), from ``source`` if given, with ``TIMEOUT`` on each operation."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        if source:
            sock.bind((source, 0))
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def served(address, source=None) -> bool:
    """True if the server greets and echoes; False if it closes at once."""
    with _connected(address, source) as sock:
        try:
            first = sock.recv(4096)
        except ConnectionResetError:
            return False
        if not first:
            return False
        assert first.startswith(b"Welcome to ")
        sock.sendall(b"ping\nquit\n")
        rest = read_all(sock)
        assert b'You said "ping"' in first + rest
        return True


def denied_port(address, source=None) -> int:
    """Connect, expect to be closed without a greeting; return our local port."""
    with _connected(address, source) as sock:
        port = sock.getsockname()[1]
        try:
            assert sock.recv(4096) == b"", "a denied client was greeted"
        except ConnectionResetError:
            pass
        return port


@dual_stack
def test_cidr_deny_ipv4_on_dual_stack_socket():
    with serving(["Single", "--port", "0", "--host", "*", "--cidr_deny", "127.0.0.0/8",
                  "--cidr_allow", "0.0.0.0/0, ::/0"]) as server:
        assert server.bindings == [("TCP", server.port, "::")]
        port = denied_port(("127.0.0.1", server.port))
        # The peer is named in its IPv4 form, not as ::ffff:127.0.0.1.
        server.wait_for(rf"Denying connection from \[127\.0\.0\.1\]:{port}\b")
        assert served(("::1", server.port))
        assert "::ffff:" not in server.log_text()


@dual_stack
def test_cidr_allow_mixed_list_lets_ipv6_in_only():
    with serving(["Single", "--port", "0", "--cidr_allow", "10.0.0.0/8, ::1/128"]) as server:
        assert served(("::1", server.port))
        port = denied_port(("127.0.0.1", server.port))
        server.wait_for(rf"Denying connection from \[127\.0\.0\.1\]:{port}")


@dual_stack
def test_mapped_form_cidr_rule_matches_ipv4_client():
    with serving(["Single", "--port", "0", "--cidr_allow", "::ffff:127.0.0.0/104"]) as server:
        assert served(("127.0.0.1", server.port))
        denied_port(("::1", server.port))
        server.wait_for(r"Denying connection from \[::1\]:\d+")


def test_allow_regex():
    with serving(["Single", "--port", "127.0.0.1:0", "--allow", r"127\.0\.0\.1"]) as server:
        assert served(("127.0.0.1", server.port))
        port = denied_port(("127.0.0.1", server.port), source="127.0.0.2")
        server.wait_for(rf"Denying connection from \[127\.0\.0\.2\]:{port}")


def test_allow_regex_is_anchored():
    # Net::Server matches /^$pattern$/: '127' alone does not allow 127.0.0.1.
    with serving(["Single", "--port", "127.0.0.1:0", "--allow", "127"]) as server:
        denied_port(("127.0.0.1", server.port))
        server.wait_for(r"Denying connection from \[127\.0\.0\.1\]")


@pytest.mark.parametrize("rules", [
    ["--allow", r"127\..*", "--deny", r"127\.0\.0\.1"],
    ["--allow", r"127\..*", "--cidr_deny", "127.0.0.1/32"],
    ["--cidr_allow", "127.0.0.0/8", "--deny", r"127\.0\.0\.1"],
    ["--cidr_allow", "127.0.0.0/8", "--cidr_deny", "127.0.0.1"],
])
def test_deny_wins_over_allow(rules):
    with serving(["Single", "--port", "127.0.0.1:0", *rules]) as server:
        denied_port(("127.0.0.1", server.port))
        server.wait_for(r"Denying connection from \[127\.0\.0\.1\]")
        # The allow rule still lets in what the deny rule does not name.
        assert served(("127.0.0.1", server.port), source="127.0.0.2")


def test_deny_rules_alone_refuse_every_other_client_as_in_net_server():
    """Net::Server: "If allow or deny options are given, the incoming client must match an allow
    and not match a deny"; a configuration with deny rules alone serves nobody, and says so."""
    with serving(["Single", "--port", "127.0.0.1:0", "--cidr_deny", "10.0.0.0/8", "--deny", r"192\.168\..*"]) as server:
        server.wait_for(r"deny/cidr_deny without allow/cidr_allow refuses every client")
        port = denied_port(("127.0.0.1", server.port))
        server.wait_for(rf"Denying connection from \[127\.0\.0\.1\]:{port}: no allow rule: deny rules alone "
                        rf"refuse every other client")


def test_many_denied_connections_leak_nothing():
    with serving(["Single", "--port", "127.0.0.1:0", "--cidr_deny", "127.0.0.1/32",
                  "--cidr_allow", "127.0.0.0/8"]) as server:
        address = ("127.0.0.1", server.port)
        for _ in range(5):  # warm up: anything opened lazily on the first denial
            denied_port(address)
        server.wait_for(r"Denying connection", count=5)
        before = open_fds(server.pid)
        for _ in range(300):
            denied_port(address)
        server.wait_for(r"Denying connection", count=305)
        # The log line comes just before the close: let the last connection's fd go.
        deadline = time.monotonic() + TIMEOUT
        while (after := open_fds(server.pid)) > before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert after <= before, f"server fds grew from {before} to {after} over 300 denied connections"
        assert served(address, source="127.0.0.2")


def test_unix_client_is_served_despite_ip_rules():
    sockdir = tempfile.mkdtemp(prefix="ns", dir="/tmp")
    os.chmod(sockdir, 0o1777)
    try:
        path = os.path.join(sockdir, "s.sock")
        args = ["Single", "--port", "127.0.0.1:0", "--port", f"{path}|unix",
                "--cidr_allow", "10.0.0.0/8", "--allow", r"10\..*"]
        with serving(args, bindings=2) as server:
            reply = echo_exchange(path, [b"local"])
            assert reply.startswith(b"Welcome to ") and b'You said "local"' in reply
            denied_port(("127.0.0.1", server.port))
            server.wait_for(r"Denying connection from \[127\.0\.0\.1\]")
            assert "Denying connection from UNIX" not in server.log_text()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# In process: allow_deny_hook and request_denied_hook
# ---------------------------------------------------------------------------


def test_allow_deny_hook_refuses_and_request_denied_hook_is_called(monkeypatch):
    monkeypatch.setattr("sys.argv", ["test"])
    handled = []
    denied = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            handled.append(self.client_address)
            self.request.sendall(b"served\n")

    class Picky(netserver.Server):
        refuse = True

        def allow_deny_hook(self, request):
            return not self.refuse

        def request_denied_hook(self, request):
            denied.append((request, self.client.peeraddr, self.client.peerport))

    with Picky(("127.0.0.1", 0), Handler, log_level=0, **SELF) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                local_port = client.getsockname()[1]
                assert read_all(client) == b""
            assert handled == []
            assert len(denied) == 1
            request, peeraddr, peerport = denied[0]
            assert (peeraddr, peerport) == ("127.0.0.1", local_port)
            assert isinstance(request, socket.socket)
            server.refuse = False
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                assert read_all(client) == b"served\n"
            assert len(handled) == 1 and len(denied) == 1
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


@pytest.mark.parametrize("hook", ["post_accept_hook", "allow_deny_hook", "verify_request_lookup"])
def test_an_exception_in_an_access_hook_ends_that_connection_only(monkeypatch, hook):
    """Issue 14, finding 6: a failing hook must end that connection, logged, never the server."""
    monkeypatch.setattr("sys.argv", ["test"])
    lines = []
    failures = [1]

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"served\n")

    def explode(self, *args):
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("hook blew up")
        return True if hook == "allow_deny_hook" else (
            netserver.Server.get_client_info(self, *args) if hook == "verify_request_lookup" else None)

    name = "get_client_info" if hook == "verify_request_lookup" else hook
    Fragile = type("Fragile", (netserver.Server,), {name: explode,
                                                    "write_to_log_hook": lambda self, level, msg: lines.append(msg)})
    with Fragile(("127.0.0.1", 0), Handler, log_level=1, **SELF) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                assert read_all(client) == b""
            assert thread.is_alive(), "the serving thread died"
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                assert read_all(client) == b"served\n"
            assert any("hook blew up" in line for line in lines), lines
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


@pytest.mark.parametrize("personality", ["Thread"])
def test_a_raising_verify_request_override_does_not_cost_a_worker(monkeypatch, personality):
    """Thread with max_servers 1: if the failure killed the worker, nothing would serve again."""
    monkeypatch.setattr("sys.argv", ["test"])
    failures = [2]

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"served\n")

    class Fragile(getattr(netserver, personality)):
        def verify_request(self, request, client_address):
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("verify blew up")
            return True

    with Fragile(("127.0.0.1", 0), Handler, log_level=0, max_servers=1, **SELF) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            for _ in range(2):
                with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                    assert read_all(client) == b""
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
                assert read_all(client) == b"served\n"
        finally:
            server.shutdown()
            thread.join(TIMEOUT)
