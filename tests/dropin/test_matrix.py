"""Every personality mixin over every kind of host, as a program runs it.

Cells: Fork, PreForkSimple, PreFork, Thread, Multiplex × TCPServer,
UDPServer, UnixStreamServer, ThreadingTCPServer, HTTPServer,
SimpleXMLRPCServer, WSGIServer, a program's own subclass and
netserver.Server.  Each cell is a script with ``serve_forever()`` in its
main thread; the test serves through the host's own protocol, sends USR1
(logs reopen, the server goes on), HUP where the personality handles it
(the forking ones replace their children), then ``shutdown()`` from another
thread and ``server_close()``: exit 0, no traceback, no child left.  A
combination that cannot work (two mixins that each decide where a request
runs) is refused with a clear error instead.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import xmlrpc.client

import pytest

from hosts import HOSTS, MIXINS, REFUSED
from procfs import live_children
from waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
import os, sys, threading
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import socketserver, http.server, xmlrpc.server, wsgiref.simple_server
import netserver
from hosts import OwnServer

MIXIN = getattr(netserver, {mixin!r})
HOST = {host_expr}
KIND = {kind!r}


class LineHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"pong %d\n" % os.getpid())


class DatagramHandler(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(b"pong %d\n" % os.getpid())


class HTTPHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"pong %d\n" % os.getpid()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class MuxLine(netserver.MuxHandler):
    def mux_input(self, data):
        while b"\n" in data or (data and self._connection.stream is False):
            end = data.find(b"\n")
            del data[:end + 1 if end >= 0 else len(data)]
            self.write(b"pong %d\n" % os.getpid())


class S(MIXIN, HOST):
    allow_reuse_address = True
    max_servers = 2
    min_servers = 2
    max_spare_servers = 2


if {mixin!r} == "MultiplexMixIn":
    handler = MuxLine
else:
    handler = {{"line": LineHandler, "unix": LineHandler, "udp": DatagramHandler, "http": HTTPHandler,
               "wsgi": Quiet}}.get(KIND)
address = {address!r}
if KIND == "xmlrpc" and handler is None:
    server = S(address, logRequests=False)
    server.register_function(os.getpid, "pid")
else:
    server = S(address, handler)
if KIND == "wsgi":
    server.set_app(lambda environ, start: (start("200 OK", [("Content-Type", "text/plain")]),
                                           [b"pong %d\n" % os.getpid()])[1])


def wait_for_shutdown():
    sys.stdin.readline()
    server.shutdown()
    print("SHUTDOWN RETURNED", flush=True)


stopper = threading.Thread(target=wait_for_shutdown, daemon=True)
stopper.start()
where = server.server_address
print("READY", where if isinstance(where, str) else where[1], flush=True)
server.serve_forever(poll_interval=0.1)
stopper.join()
server.server_close()
print("CLOSED", flush=True)
'''

FORKING = {"ForkMixIn", "PreForkSimpleMixIn", "PreForkMixIn"}
POOLS = {"PreForkSimpleMixIn", "PreForkMixIn"}
TIMEOUT = 10


class Cell:
    def __init__(self, proc: subprocess.Popen, where: str, kind: str, mixin: str):
        self.proc, self.where, self.kind, self.mixin = proc, where, kind, mixin

    def ask(self) -> int:
        """One request in the host's own protocol; the pid that answered it."""
        kind = "line" if self.mixin == "MultiplexMixIn" and self.kind not in ("udp", "unix") else self.kind
        if kind in ("line", "unix"):
            family, address = (socket.AF_UNIX, self.where) if kind == "unix" else \
                (socket.AF_INET, ("127.0.0.1", int(self.where)))
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.connect(address)
                sock.sendall(b"ping\n")
                reply = sock.makefile("rb").readline()
        elif kind == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendto(b"ping\n", ("127.0.0.1", int(self.where)))
                reply = sock.recv(100)
        elif kind in ("http", "wsgi"):
            connection = http.client.HTTPConnection("127.0.0.1", int(self.where), timeout=TIMEOUT)
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200
            reply = response.read()
            connection.close()
        else:
            return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.where}/").pid()
        assert reply.startswith(b"pong "), reply
        return int(reply.split()[1])


def start(tmp_path, mixin: str, host: str):
    _, host_expr, kind = HOSTS[host]
    imports = HOSTS[host][0]
    address = str(tmp_path / "cell.sock") if kind == "unix" else ("127.0.0.1", 0)
    script = tmp_path / "cell.py"
    script.write_text(imports + "\n" + SCRIPT.format(root=ROOT, here=os.path.dirname(__file__), mixin=mixin,
                                                      host_expr=host_expr, kind=kind, address=address))
    log = open(tmp_path / "cell.log", "w")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log, text=True, start_new_session=True)
    log.close()
    return proc, kind


CELLS = [(mixin, host) for host in HOSTS for mixin in MIXINS]


@pytest.mark.parametrize("mixin, host", CELLS, ids=[f"{m}-{h}" for m, h in CELLS])
def test_mixin_over_host(tmp_path, mixin, host):
    proc, kind = start(tmp_path, mixin, host)
    try:
        first = proc.stdout.readline()
        if (mixin, host) in REFUSED:
            proc.wait(TIMEOUT)
            text = (tmp_path / "cell.log").read_text()
            assert proc.returncode == 1 and "TypeError" in text and "ThreadingMixIn" in text, text
            return
        assert first.startswith("READY"), first + (tmp_path / "cell.log").read_text()
        cell = Cell(proc, first.split()[1], kind, mixin)
        pids = {cell.ask() for _ in range(3)}
        if mixin in FORKING:
            assert proc.pid not in pids, "a forking personality serves in its children"
        else:
            assert pids == {proc.pid}

        proc.send_signal(signal.SIGUSR1)  # logs reopen; the server goes on
        assert cell.ask() and proc.poll() is None

        if mixin in POOLS:
            before = set(live_children(proc.pid))
            assert before, "a pool has children"
            proc.send_signal(signal.SIGHUP)  # children finish and are replaced
            wait_until(lambda: (set(live_children(proc.pid)) and not set(live_children(proc.pid)) & before),
                       what="HUP to replace every child")
            assert cell.ask() not in before
        elif mixin == "ForkMixIn":
            proc.send_signal(signal.SIGHUP)
            assert cell.ask() != proc.pid and proc.poll() is None

        proc.stdin.write("shutdown\n")
        proc.stdin.flush()
        assert proc.wait(TIMEOUT) == 0
        text = proc.stdout.read()
        assert "SHUTDOWN RETURNED" in text and "CLOSED" in text, text
        log = (tmp_path / "cell.log").read_text()
        assert "Traceback" not in log and "abnormally" not in log, log
        assert not live_children(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group may outlive the cell
            except ProcessLookupError:
                pass
