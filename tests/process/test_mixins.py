"""The personality mixins over the standard library's socketserver classes.

``class S(netserver.PreForkMixIn, socketserver.TCPServer)`` must be a
preforking TCPServer serving a plain ``socketserver`` handler, with its
options as constructor keywords or class attributes.  Each server runs as a
small script with ``serve_forever()`` in its main thread and is stopped by
TERM; ThreadMixIn is also run in-process, as socketserver's ThreadingMixIn is.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading

import pytest

from harness import TIMEOUT, echo_exchange
from proctools import (
    HeldClient, accept_queue, assert_group_gone, complete_reply, finish_one_then_the_rest, greeted_count, greeting_pid,
    holds_for, live_children, wait_until,
)

import netserver

SCRIPT = '''
import os, socketserver, sys
import netserver


class Echo(socketserver.StreamRequestHandler):
    """A plain socketserver handler speaking the echo handler's protocol."""

    def handle(self):
        pid = os.getpid()
        self.wfile.write(b'Welcome to "mixin" (%d)\\r\\n' % pid)
        for line in self.rfile:
            text = line.rstrip(b"\\r\\n")
            self.wfile.write(b'mixin:%d: You said "%s"\\r\\n' % (pid, text))
            if text == b"quit":
                return


class Datagram(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(b"%d " % os.getpid() + self.rfile.read())


class S(netserver.{mixin}, socketserver.{base}):
{attributes}


ADDRESS = {address}
server = S(ADDRESS, {handler}, **{options!r})
address = server.server_address
if isinstance(address, str):
    sys.stderr.write("Binding to UNIX socket %s\\n" % address)
else:
    sys.stderr.write("Binding to {proto} port %d on host %s with IPv4\\n" % (address[1], address[0]))
sys.stderr.flush()
try:
    server.serve_forever()
finally:
    server.server_close()
sys.stderr.write("clean exit\\n")
'''


def mixin_server(servers, write_script, mixin, base="TCPServer", attributes="    allow_reuse_address = True",
                 options=None, address='("127.0.0.1", 0)', handler="Echo"):
    proto = "UDP" if "UDP" in base else "TCP"
    script = write_script(SCRIPT.format(mixin=mixin, base=base, attributes=attributes, address=address,
                                        handler=handler, options=options or {}, proto=proto))
    return servers.start([], script=script)


def stop_with_term(server) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.log_text()
    server.wait_for(r"clean exit")
    assert "Traceback" not in server.log_text()
    assert_group_gone(server)


@pytest.mark.slow
def test_prefork_mixin_over_tcpserver(servers, write_script, clients):
    server = mixin_server(servers, write_script, "PreForkMixIn",
                          options={"min_servers": 2, "max_servers": 3, "min_spare_servers": 1,
                                   "check_for_spawn": 0.1})
    wait_until(lambda: len(live_children(server.pid)) == 2, what="min_servers (constructor keyword) children")
    address = ("127.0.0.1", server.port)
    reply = echo_exchange(address)
    assert complete_reply(reply) and greeting_pid(reply) in live_children(server.pid)

    held = [clients(address) for _ in range(4)]
    wait_until(lambda: greeted_count(held) == 3, what="the pool to grow to max_servers 3")
    assert holds_for(lambda: greeted_count(held) == 3 and len(live_children(server.pid)) <= 3, 0.5)
    for client in [c for c in held if c.pid]:
        client.finish_checked()
    last = next(client for client in held if not client.pid)
    last.wait_greeted()
    last.finish_checked()
    stop_with_term(server)


@pytest.mark.slow
def test_prefork_simple_mixin_with_class_attributes(servers, write_script, clients):
    server = mixin_server(servers, write_script, "PreForkSimpleMixIn",
                          attributes="    allow_reuse_address = True\n    max_servers = 2\n    max_requests = 3")
    wait_until(lambda: len(live_children(server.pid)) == 2, what="max_servers (class attribute) children")
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(3)]
    wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
    assert holds_for(lambda: greeted_count(held) == 2, 0.5), "a fixed pool of 2 served 3 at once"
    for client in held:
        client.wait_greeted()
        client.finish_checked()
    pids = {greeting_pid(echo_exchange(address)) for _ in range(9)}
    assert len(pids) >= 3, f"max_requests = 3 (class attribute) should recycle children: {pids}"
    stop_with_term(server)


@pytest.mark.slow
def test_fork_mixin_over_tcpserver(servers, write_script, clients):
    server = mixin_server(servers, write_script, "ForkMixIn", options={"max_servers": 1})
    address = ("127.0.0.1", server.port)
    first, second = echo_exchange(address), echo_exchange(address)
    assert complete_reply(first) and complete_reply(second)
    pids = {greeting_pid(first), greeting_pid(second)}
    assert len(pids) == 2 and server.pid not in pids
    held = [clients(address) for _ in range(2)]
    wait_until(lambda: greeted_count(held) == 1, what="1 connection served")
    assert holds_for(lambda: greeted_count(held) == 1, 0.5), "max_servers=1 served 2 at once"
    next(c for c in held if c.pid).finish_checked()
    other = next(c for c in held if not c.pid)
    other.wait_greeted()
    other.finish_checked()
    stop_with_term(server)


@pytest.mark.slow
def test_thread_mixin_over_tcpserver_in_a_script(servers, write_script, clients):
    server = mixin_server(servers, write_script, "ThreadMixIn", options={"max_servers": 2})
    address = ("127.0.0.1", server.port)
    held = [clients(address) for _ in range(3)]
    wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
    assert holds_for(lambda: greeted_count(held) == 2, 0.5)
    assert {c.pid for c in held if c.pid} == {server.pid}
    finish_one_then_the_rest(held)
    stop_with_term(server)


def test_prefork_mixin_over_unix_stream_server(servers, write_script, tmp_path):
    path = str(tmp_path / "echo.sock")
    server = mixin_server(servers, write_script, "PreForkMixIn", base="UnixStreamServer", attributes="    pass",
                          address=repr(path), options={"min_servers": 2, "max_servers": 2})
    assert server.bindings[0][1] == path
    wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
    replies = [echo_exchange(path) for _ in range(4)]
    assert all(complete_reply(reply) for reply in replies), replies
    assert {greeting_pid(reply) for reply in replies} <= set(live_children(server.pid))
    stop_with_term(server)


def test_fork_mixin_over_udp_server(servers, write_script):
    server = mixin_server(servers, write_script, "ForkMixIn", base="UDPServer", attributes="    pass",
                          handler="Datagram")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(b"ping", ("127.0.0.1", server.port))
        reply, _ = sock.recvfrom(4096)
    pid, _, data = reply.partition(b" ")
    assert data == b"ping" and int(pid) != server.pid


# -- ThreadMixIn in-process --------------------------------------------------------------


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b'Welcome to "inproc" (%d)\r\n' % os.getpid())
        for line in self.rfile:
            text = line.rstrip(b"\r\n")
            self.wfile.write(b'inproc:%d: You said "%s"\r\n' % (os.getpid(), text))
            if text == b"quit":
                return


class ThreadedTCP(netserver.ThreadMixIn, socketserver.TCPServer):
    allow_reuse_address = True


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("netserver-worker")]


@pytest.fixture
def threaded():
    """A ThreadMixIn TCPServer serving in a background thread; shut down and closed afterwards."""
    made = []

    def start(**options):
        server = ThreadedTCP(("127.0.0.1", 0), Echo, **options)
        loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        loop.start()
        made.append((server, loop))
        return server, loop

    yield start
    for server, loop in made:
        if loop.is_alive():
            threading.Thread(target=server.shutdown, daemon=True).start()
            loop.join(TIMEOUT)
        server.server_close()


@pytest.mark.slow
def test_thread_mixin_in_process_bounds_concurrency_and_joins_workers(threaded):
    before = set(worker_threads())
    server, loop = threaded(max_servers=2)
    address = server.server_address
    held = [HeldClient(address) for _ in range(3)]
    try:
        wait_until(lambda: greeted_count(held) == 2, what="2 connections served")
        assert holds_for(lambda: greeted_count(held) == 2, 0.5), "max_servers=2 served a third connection"
        assert accept_queue(address[1]) == 1, "the third connection waits in the kernel's queue"
        assert len(set(worker_threads()) - before) == 2
        finish_one_then_the_rest(held)
    finally:
        for client in held:
            client.close()
    server.shutdown()
    loop.join(TIMEOUT)
    assert not loop.is_alive()
    server.server_close()
    assert not (set(worker_threads()) - before), "server_close() joins the worker threads"
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()


def test_thread_mixin_shutdown_does_not_wait_for_handlers_but_server_close_does(threaded):
    server, loop = threaded(max_servers=2)
    client = HeldClient(server.server_address)
    try:
        client.wait_greeted()
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(1.5)
        shutdown_returned = not stopper.is_alive()  # socketserver: shutdown() only stops the loop
        if shutdown_returned:
            closer = threading.Thread(target=server.server_close, daemon=True)
            closer.start()
            assert holds_for(closer.is_alive, 0.3), "server_close() should wait for the handler (block_on_close)"
    finally:
        client.finish()
    assert shutdown_returned, "shutdown() blocked while a connection was in progress"
    closer.join(TIMEOUT)
    assert not closer.is_alive()


HANDLER_SHUTDOWN = '''
import socketserver, sys, threading
import netserver


class Stopper(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        self.server.shutdown()   # fine with socketserver.ThreadingMixIn: the loop runs in another thread
        self.wfile.write(b"stopped\\n")


class S(netserver.ThreadMixIn, socketserver.TCPServer):
    allow_reuse_address = True


server = S(("127.0.0.1", 0), Stopper)
sys.stderr.write("Binding to TCP port %d on host 127.0.0.1 with IPv4\\n" % server.server_address[1])
sys.stderr.flush()
loop = threading.Thread(target=server.serve_forever)
loop.start()
loop.join()
server.server_close()
sys.stderr.write("clean exit\\n")
'''


def test_thread_mixin_handler_may_call_shutdown(servers, write_script):
    server = servers.start([], script=write_script(HANDLER_SHUTDOWN))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"stop\n")
        assert sock.recv(100) == b"stopped\n"
    assert server.wait_exit(timeout=3) == 0
    server.wait_for("clean exit")


FREEZE_SCRIPT = '''
import gc, socket, socketserver, sys, threading
import netserver


class Count(socketserver.BaseRequestHandler):
    def handle(self):
        # prctl is built by the parent just before its first fork of a pool child (_ctypes, for
        # PR_SET_PDEATHSIG): whether its class is among the objects this child's collections visit.
        from netserver.personalities import parent
        built = parent._prctl is not None
        young = built and any(o is type(parent._prctl) for o in gc.get_objects())
        self.request.sendall(b"%d %d %d" % (gc.get_freeze_count(), young, built))


class S(netserver.{mixin}, socketserver.TCPServer):
    pass


class Cycle:
    def __init__(self):
        self.me = self


if sys.argv[1] == "frozen":
    gc.freeze()  # the program's own choice
before = gc.get_freeze_count()
preloaded = "_ctypes" in sys.modules  # then the check of the children's young objects proves nothing
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
server = S(("127.0.0.1", 0), Count)
replies = []


def client():
    try:
        for _ in range(30):
            with socket.create_connection(server.server_address, timeout=10) as conn:
                replies.append(tuple(map(int, conn.recv(100).split())))
            for _ in range(gc.get_threshold()[0] // 2):  # garbage the parent makes while it serves
                Cycle()
    finally:
        server.shutdown()


threading.Thread(target=client).start()
server.serve_forever(poll_interval=0.05)
server.server_close()
print(before, min(r[0] for r in replies), gc.get_freeze_count(), len(collections), max(r[1] for r in replies),
      int(preloaded), min(r[2] for r in replies))
'''


@pytest.mark.parametrize("mixin", ["ForkMixIn", "PreForkMixIn"])
@pytest.mark.parametrize("program", ["plain", "frozen"])
def test_children_inherit_the_parents_objects_frozen_and_the_parent_keeps_collecting(tmp_path, mixin, program):
    """A child's garbage collections skip the objects it inherited (each would otherwise write to
    every page they are on: copied per child). The parent freezes once, at its first fork, so what
    it made to serve (a pool's prctl) is frozen too and its later garbage is still
    collected, fork after fork; a program that froze objects itself keeps what it froze and nothing
    more."""
    import subprocess
    import sys

    script = tmp_path / "freeze.py"
    script.write_text(FREEZE_SCRIPT.replace("{mixin}", mixin))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(netserver.__file__)),
                                                                      os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(script), program], capture_output=True, text=True, timeout=TIMEOUT,
                          env=env)
    assert done.returncode == 0, done.stderr
    before, in_child, after, collections, young_prctl, preloaded, built = map(int, done.stdout.split())
    if program == "frozen":
        assert after == before and in_child > 1000, "the program's freeze is left as it was"
    else:  # (3.12 freezes a few hundred objects of its own at start)
        assert in_child > before + 1000, "the child's collections skip what it inherited"
        assert after > before + 1000, "frozen once, at the first fork"
        # A pool builds prctl for its children's PR_SET_PDEATHSIG at its first fork (Fork's children,
        # which ignore HUP, never do: there the check only guards against a regression).
        assert not preloaded, "_ctypes was loaded before the server was: nothing left for the check below"
        assert built == (mixin == "PreForkMixIn"), "a pool's children follow their parent, Fork's do not"
        assert not young_prctl, "prctl, built for the children, is frozen with the rest"
    assert collections >= 5, "15 thresholds' worth of cyclic garbage made while serving: the parent collects"
