"""A host class's own serve_forever and shutdown, and a program's mixin above the personality.

A netserver mixin comes first in the MRO, so the host class's overrides would never run; the
mixin runs them and puts netserver's loop in socketserver's place inside them.  These are the
shapes found in published libraries (Werkzeug's serve_forever, jsonrpclib's shutdown by name)
and the edge cases around them: a serve_forever without ``poll_interval``, one that runs its own
loop, a program's mixin with a serve_forever of its own, serving again after ``shutdown()``.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time

import pytest

from waiting import wait_until

import netserver

TIMEOUT = 10


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def exchange(server) -> bytes:
    with socket.create_connection(server.server_address, timeout=TIMEOUT) as conn:
        conn.sendall(b"ping\n")
        return conn.makefile("rb").readline()


def serving(server, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def stop(server, thread) -> None:
    server.shutdown()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "serve_forever returned after shutdown()"


def serve_one_exchange(server, **kwargs) -> None:
    """Serve, answer one client, shut down, close."""
    try:
        thread = serving(server, **kwargs)
        assert exchange(server) == b"ping\n"
        stop(server, thread)
    finally:
        server.server_close()


class SlowShutdown(socketserver.TCPServer):
    """A host whose shutdown works a moment before socketserver's: the loop may end meanwhile."""

    allow_reuse_address = True

    def shutdown(self):
        time.sleep(0.05)
        super().shutdown()


@pytest.mark.parametrize("mixin", [netserver.SingleMixIn, netserver.ThreadMixIn])
def test_serve_forever_serves_again_after_shutdown(mixin):
    server = type("S", (mixin, SlowShutdown), {})(("127.0.0.1", 0), Echo)
    try:
        for _ in range(3):
            thread = serving(server, poll_interval=0.05)
            assert exchange(server) == b"ping\n"
            stop(server, thread)
    finally:
        server.server_close()


def test_a_host_serve_forever_without_poll_interval_is_run():
    calls = []

    class Host(socketserver.TCPServer):
        def serve_forever(self):
            calls.append("Host.serve_forever")
            super().serve_forever()

    server = type("S", (netserver.ThreadMixIn, Host), {})(("127.0.0.1", 0), Echo)
    serve_one_exchange(server)
    assert calls == ["Host.serve_forever"]


def test_a_programs_mixin_above_the_personality_and_the_host_each_run_once():
    calls = []

    class Logged:
        def serve_forever(self, poll_interval=0.5):
            calls.append("Logged")
            super().serve_forever(poll_interval)

    class Host(socketserver.TCPServer):
        def serve_forever(self, poll_interval=0.5):
            calls.append("Host")
            super().serve_forever(poll_interval)

    server = type("S", (Logged, netserver.ThreadMixIn, Host), {})(("127.0.0.1", 0), Echo)
    serve_one_exchange(server, poll_interval=0.05)
    assert calls == ["Logged", "Host"]


def test_a_decorated_or_delegating_host_serve_forever_is_run():
    import functools

    calls = []

    def logged(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            calls.append("decorator")
            return method(self, *args, **kwargs)
        return wrapper

    class Decorated(socketserver.TCPServer):
        @logged
        def serve_forever(self, poll_interval=0.5):
            calls.append("Decorated")
            super().serve_forever(poll_interval)

    class Delegating(socketserver.TCPServer):
        def serve_forever(self, poll_interval=0.5):
            calls.append("Delegating")
            self._run(poll_interval)

        def _run(self, poll_interval):
            socketserver.TCPServer.serve_forever(self, poll_interval)

    for host in (Decorated, Delegating):
        serve_one_exchange(type("S", (netserver.ThreadMixIn, host), {})(("127.0.0.1", 0), Echo), poll_interval=0.05)
    assert calls == ["decorator", "Decorated", "Delegating"]


def test_a_host_loop_of_its_own_is_replaced_by_netservers(tmp_path):
    """A serve_forever that never runs socketserver's loop (a handle_request loop): netserver's
    loop runs instead, as it did before hosts' overrides were honoured (its pid file shows it)."""

    class Host(socketserver.TCPServer):
        def serve_forever(self, poll_interval=0.5):
            while True:
                self.handle_request()

    pid_file = tmp_path / "server.pid"
    server = type("S", (netserver.ThreadMixIn, Host), {})(("127.0.0.1", 0), Echo, pid_file=str(pid_file))
    try:
        thread = serving(server)
        assert exchange(server) == b"ping\n"
        assert pid_file.read_text().strip() == str(os.getpid())
        stop(server, thread)
    finally:
        server.server_close()


def test_a_host_that_runs_socketservers_loop_twice_gets_netservers_loop_twice():
    rounds = []
    between = threading.Event()

    class Host(socketserver.TCPServer):
        def serve_forever(self, poll_interval=0.5):
            for number in (1, 2):
                rounds.append(number)
                socketserver.BaseServer.serve_forever(self, poll_interval)
                # Not at once: a loop restarted before shutdown() has seen the first one end
                # clears the "stopped" event under it (the standard loop's race as well).
                between.wait(TIMEOUT)

    server = type("S", (netserver.ThreadMixIn, Host), {})(("127.0.0.1", 0), Echo)
    try:
        thread = serving(server, poll_interval=0.05)
        assert exchange(server) == b"ping\n"
        server.shutdown()  # ends round 1; round 2 starts netserver's loop again
        between.set()
        wait_until(lambda: rounds == [1, 2], what="the second round")
        assert exchange(server) == b"ping\n"
        stop(server, thread)
    finally:
        server.server_close()
    assert rounds == [1, 2]


def test_a_process_request_of_the_programs_own_may_call_the_post_hooks_itself():
    """Refused only over socketserver's ThreadingMixIn/ForkingMixIn, which cannot call them."""

    class S(netserver.SingleMixIn, socketserver.TCPServer):
        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            self.post_process_request_hook()

        def post_process_request_hook(self):
            self.hooked = True

    server = S(("127.0.0.1", 0), Echo)
    serve_one_exchange(server, poll_interval=0.05)
    assert server.hooked


def _refused(server) -> bool:
    with socket.create_connection(server.server_address, timeout=TIMEOUT) as conn:
        conn.sendall(b"ping\n")
        return conn.makefile("rb").readline() == b""


@pytest.mark.parametrize("base", ["compat", "SingleMixIn", "ThreadMixIn"])
@pytest.mark.parametrize("calls_super", [False, True])
def test_access_rules_hold_over_a_programs_own_verify_request(base, calls_super):
    """socketserver's verify_request only returns True, so a program's override rarely calls
    super(): Net::Server's rules run first all the same, once, and a refused client never reaches
    the override; handle_request() keeps them too."""
    import compat.socketserver

    bases = (compat.socketserver.TCPServer,) if base == "compat" else (getattr(netserver, base), socketserver.TCPServer)
    seen = []

    def verify_request(self, request, client_address):
        seen.append(client_address[0])
        return super(S, self).verify_request(request, client_address) if calls_super else True

    def post_accept_hook(self):
        seen.append("post_accept_hook")

    S = type("S", bases, {"verify_request": verify_request, "post_accept_hook": post_accept_hook})
    server = S(("127.0.0.1", 0), Echo, cidr_allow=["10.0.0.0/8"])
    try:
        thread = serving(server, poll_interval=0.05)
        assert _refused(server)
        stop(server, thread)
        client = threading.Thread(target=lambda: seen.append(_refused(server)))
        client.start()
        server.handle_request()
        client.join(TIMEOUT)
    finally:
        server.server_close()
    assert seen == ["post_accept_hook", "post_accept_hook", True], "the rules refused both, before the override"


def test_a_programs_verify_request_that_calls_super_runs_the_rules_once():
    import compat.socketserver

    seen = []

    class S(compat.socketserver.TCPServer):
        def verify_request(self, request, client_address):
            seen.append("verify_request")
            return super().verify_request(request, client_address)

        def post_accept_hook(self):
            seen.append("post_accept_hook")

    server = S(("127.0.0.1", 0), Echo, cidr_allow=["127.0.0.0/8"])
    serve_one_exchange(server, poll_interval=0.05)
    assert seen == ["post_accept_hook", "verify_request"]
