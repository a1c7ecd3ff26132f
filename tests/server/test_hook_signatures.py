"""Hooks written as Net::Server's are (``def post_accept_hook(self):``) are called.

Net::Server passes its hooks nothing but the server; netserver passes some of
them an argument (the connection, a pid, a child's kind).  An override is
given the arguments it names and the rest are left out, as in Perl; one that
needs more than netserver passes is refused when its class is made, instead of
failing on every connection.
"""

from __future__ import annotations

import signal
import socketserver
import textwrap

import pytest

from harness import TIMEOUT, echo_exchange, serving
from waiting import wait_until

import netserver
from netserver.hooks import fitted

pytestmark = pytest.mark.process


def test_an_override_without_arguments_is_called_without_them():
    class S(netserver.Server):
        def post_accept_hook(self):
            return "no arguments"

        def fatal_hook(self, message):
            return message

    server = S(None, None, bind_and_activate=False)
    assert server.post_accept_hook("the connection") == "no arguments"
    assert server.fatal_hook("the message", "module", "file", 12) == "the message"
    assert S.post_accept_hook.__name__ == "post_accept_hook"


def test_an_override_that_takes_the_arguments_is_left_as_it_is():
    def post_accept_hook(self, request):
        return request

    def any_arguments(self, *args):
        return args

    assert fitted("post_accept_hook", post_accept_hook, 1) is post_accept_hook
    assert fitted("post_accept_hook", any_arguments, 1) is any_arguments

    class S(netserver.Server):
        @staticmethod
        def pre_fork_hook():
            return "static"

    assert S.pre_fork_hook() == "static"


def test_an_override_that_needs_more_than_netserver_passes_is_refused_with_its_class():
    with pytest.raises(TypeError, match=r"post_accept_hook takes 2 argument\(s\) after self, but netserver "
                                        r"calls post_accept_hook with 1: post_accept_hook\(self, request\)"):
        class S(netserver.Server):
            def post_accept_hook(self, request, extra):
                pass


NET_SERVER_STYLE = """
import os, socketserver, sys
import netserver

OUT = sys.argv.pop(1)


def note(*words):
    with open(OUT, "a") as fh:
        fh.write(" ".join(str(w) for w in words) + "\\n")


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


{server}

{run}
"""

HOOKS = """
    def child_init_hook(self):
        note("child_init", os.getpid())

    def child_finish_hook(self):
        note("child_finish", os.getpid())

    def post_accept_hook(self):
        note("post_accept", os.getpid())

    def allow_deny_hook(self):
        note("allow_deny", os.getpid())
        return True

    def post_process_request_hook(self):
        note("post_process_request", os.getpid())

    def post_client_connection_hook(self):
        note("post_client_connection", os.getpid())

    def delete_child_hook(self):
        note("delete_child")

    def dequeue(self):
        note("dequeue", os.getpid())
"""


def notes(path):
    try:
        return [line.split() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("base", ["netserver.PreFork", "netserver.PreForkMixIn, socketserver.TCPServer"])
def test_net_server_style_hooks_run_in_a_pool_and_its_dequeue_child(tmp_path, base):
    if base == "netserver.PreFork":
        server_class = f"class S({base}):" + HOOKS
        run = "S.run(Echo)"
    else:  # a mixin over the standard class: the program's own hooks, through the host
        server_class = f"class S({base}):\n    command_line = True\n" + HOOKS
        run = textwrap.dedent("""
            server = S(("127.0.0.1", 0), Echo)
            print(f"Binding to TCP port {server.server_address[1]} on host 127.0.0.1 with IPv4",
                  file=sys.stderr, flush=True)  # the line the harness waits for, as netserver's own bind writes it
            server.serve_forever()
        """)
    script = tmp_path / "hooks.py"
    script.write_text(textwrap.dedent(NET_SERVER_STYLE.format(server=server_class, run=run)))
    out = tmp_path / "notes.txt"
    port = ["--port", "127.0.0.1:0"] if base == "netserver.PreFork" else []  # a mixin binds its own address
    args = [str(out), *port, "--min_servers", "1", "--max_servers", "2",
            "--max_dequeue", "1", "--check_for_dequeue", "0.1"]
    with serving(args, script=str(script)) as server:
        assert echo_exchange(("127.0.0.1", server.port), [b"hello"]) == b"hello\n"
        wait_until(lambda: any(w[0] == "dequeue" for w in notes(out)), what="a dequeue child", timeout=TIMEOUT)
        wait_until(lambda: ["post_client_connection"] in [w[:1] for w in notes(out)], what="the last connection hook",
                   timeout=TIMEOUT)
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    got = notes(out)
    served_by = {w[1] for w in got if w[0] == "post_accept"}
    assert len(served_by) == 1
    child = served_by.pop()
    assert [w[0] for w in got if w[1:] == [child]][:5] == [
        "child_init", "post_accept", "allow_deny", "post_process_request", "post_client_connection"]
    dequeue_child = next(w[1] for w in got if w[0] == "dequeue")
    assert ["child_init", dequeue_child] in got and ["child_finish", dequeue_child] in got
    assert ["delete_child"] in got


def test_a_standard_class_with_its_own_process_request_refuses_the_hooks_it_cannot_call():
    import compat.socketserver as compat_socketserver

    with pytest.raises(TypeError, match="defines post_process_request_hook, but its process_request is "
                                        "socketserver.ThreadingMixIn's, which cannot call them"):
        class Threaded(compat_socketserver.ThreadingTCPServer):
            def post_process_request_hook(self):
                pass

        Threaded(("127.0.0.1", 0), socketserver.StreamRequestHandler)


class Echo(netserver.MuxHandler):
    def mux_input(self, data):
        self.write(bytes(data))
        del data[:]

    def mux_close(self):
        self.server.steps.append("mux_close")


@pytest.mark.parametrize("base", [(netserver.Multiplex,), (netserver.MultiplexMixIn, socketserver.TCPServer)])
def test_multiplex_calls_the_request_hooks_around_mux_close(base):
    """Net::Server::Multiplex's flow: mux_eof, post_process_request_hook, mux_close; then the
    connection is closed and post_client_connection_hook runs."""
    import socket
    import threading

    class Recorded(*base):
        steps: list = []

        def post_process_request_hook(self):
            self.steps.append("post_process_request")

        def post_client_connection_hook(self, request):
            self.steps.append(("post_client_connection", request.fileno()))

    server = Recorded(("127.0.0.1", 0), Echo)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
            client.sendall(b"ping\n")
            assert client.recv(100) == b"ping\n"
        wait_until(lambda: len(Recorded.steps) == 3, what="the connection's last hook")
        assert Recorded.steps == ["post_process_request", "mux_close", ("post_client_connection", -1)]
    finally:
        server.shutdown()
        serving.join(TIMEOUT)
        server.server_close()


def test_a_method_that_only_shares_a_name_netserver_calls_when_asked_is_left_alone():
    """``dequeue(self, job)``: netserver calls ``dequeue`` only with ``max_dequeue``; a program's
    own method of that name is no hook and is not refused."""

    class JobServer(netserver.Server):
        def dequeue(self, job):
            return job

    assert JobServer(None, None, bind_and_activate=False).dequeue("a job") == "a job"


def test_a_process_request_that_takes_any_arguments_is_not_taken_for_net_servers():
    class Wrapped(netserver.Server):
        def process_request(self, *args):
            return super().process_request(*args)

    assert Wrapped.process_request.__name__ == "process_request"


def test_net_server_style_hooks_from_a_plain_mixin_before_the_server_class():
    class Counting:
        def post_accept_hook(self):
            return "counted"

    class S(Counting, netserver.Server):
        pass

    assert S(None, None, bind_and_activate=False).post_accept_hook("the connection") == "counted"
