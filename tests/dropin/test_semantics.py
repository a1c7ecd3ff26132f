"""What a socketserver program can tell about its server, kept as the stdlib has it (or better, where asked).

Each scenario is a small program run as a process: in-flight requests
survive ``shutdown()``, several listeners are all served, a ``socket`` set
late is served, the program's own signal handlers, ignored signals and
``KeyboardInterrupt`` stay the program's, and ``python -m compat.http_server``
serves a directory like ``python -m http.server``.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
import time

import pytest

from procfs import live_children
from waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 10

PRELUDE = f"""
import os, signal, socket, sys, threading, time
sys.path.insert(0, {ROOT!r})
import socketserver
import compat.socketserver
import netserver


class Slow(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        time.sleep(float(line or 0))
        self.wfile.write(b"done %d\\n" % os.getpid())


def ready(server):
    where = server.server_address
    print("READY", where if isinstance(where, str) else where[1], flush=True)
"""


class Program:
    def __init__(self, tmp_path, body: str):
        script = tmp_path / "program.py"
        script.write_text(PRELUDE + body)
        self.log_path = tmp_path / "program.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), line + self.log()
        self.where = line.split()[1]

    @property
    def port(self) -> int:
        return int(self.where)

    def log(self) -> str:
        return self.log_path.read_text()

    def say(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, code: int = 0) -> str:
        assert self.proc.wait(TIMEOUT) == code, self.log()
        return self.proc.stdout.read()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def program(tmp_path):
    started = []

    def start(body: str) -> Program:
        started.append(Program(tmp_path, body))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def ask(port: int, delay: float = 0.0, family=socket.AF_INET, address=None) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(address or ("127.0.0.1", port))
        sock.sendall(b"%f\n" % delay)
        return sock.makefile("rb").readline()


SHUTDOWN_WHILE_SERVING = """
class S({mixin}, socketserver.TCPServer):
    allow_reuse_address = True
    max_servers = 2

server = S(("127.0.0.1", 0), Slow)

def stop():
    sys.stdin.readline()
    server.shutdown()

stopper = threading.Thread(target=stop)
stopper.start()
ready(server)
server.serve_forever()
stopper.join()
server.server_close()
print("CLOSED", flush=True)
"""


@pytest.mark.parametrize("mixin", ["netserver.ForkMixIn", "netserver.PreForkMixIn", "netserver.PreForkSimpleMixIn",
                                   "netserver.ThreadMixIn", "socketserver.ForkingMixIn"])
@pytest.mark.slow
def test_shutdown_lets_a_request_in_flight_finish(program, mixin):
    server = program(SHUTDOWN_WHILE_SERVING.format(mixin=mixin))
    replies = []
    client = threading.Thread(target=lambda: replies.append(ask(server.port, delay=1.0)))
    client.start()
    time.sleep(0.3)  # the request is being served (it takes 1 s)
    server.say("shutdown")
    client.join(TIMEOUT)
    assert replies and replies[0].startswith(b"done "), (replies, server.log())
    assert "CLOSED" in server.finish(0)
    assert "abnormally" not in server.log() and "Traceback" not in server.log(), server.log()


def test_a_compat_server_serves_every_listener(program, tmp_path):
    path = tmp_path / "second.sock"
    server = program(f"""
server = compat.socketserver.TCPServer(("127.0.0.1", 0), Slow, port=["127.0.0.1:0", "{path}|unix"])
ready(server)
server.serve_forever()
server.server_close()
print("CLOSED", flush=True)
""")
    assert ask(server.port).startswith(b"done ")
    assert ask(0, family=socket.AF_UNIX, address=str(path)).startswith(b"done ")
    server.proc.send_signal(signal.SIGTERM)  # netserver's gain: TERM ends serve_forever cleanly
    assert "CLOSED" in server.finish(0)


def test_a_socket_set_after_bind_and_activate_false_is_served(program):
    """Werkzeug's reloader pattern: the socket comes from a descriptor the parent bound."""
    server = program("""
bound = socket.socket()
bound.bind(("127.0.0.1", 0))
bound.listen()
server = compat.socketserver.TCPServer(("127.0.0.1", 0), Slow, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=os.dup(bound.fileno()))
server.server_address = server.socket.getsockname()
ready(server)
server.serve_forever()
""")
    assert ask(server.port).startswith(b"done ")


KEYBOARD = """
class S({mixin}, socketserver.TCPServer):
    allow_reuse_address = True
    max_servers = 2

server = S(("127.0.0.1", 0), netserver.MuxEchoHandler if "Multiplex" in "{mixin}" else Slow)
ready(server)
try:
    server.serve_forever()
except KeyboardInterrupt:
    print("KEYBOARD INTERRUPT", flush=True)
server.server_close()
"""


@pytest.mark.parametrize("mixin", ["compat.socketserver.ThreadingMixIn", "netserver.PreForkMixIn",
                                   "netserver.ThreadMixIn", "netserver.MultiplexMixIn"])
def test_ctrl_c_reaches_the_programs_except_keyboardinterrupt(program, mixin):
    base = "compat.socketserver.TCPServer" if mixin.startswith("compat") else "socketserver.TCPServer"
    server = program(KEYBOARD.format(mixin=mixin).replace("socketserver.TCPServer", base))
    if "PreFork" in mixin:
        wait_until(lambda: len(live_children(server.proc.pid)) == 2, what="the pool")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as client:
        client.sendall(b"0\n")
        assert client.recv(100), "the server is in serve_forever"
    os.killpg(server.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    assert "KEYBOARD INTERRUPT" in server.finish(0)
    assert not live_children(server.proc.pid)


def test_the_programs_own_handler_and_an_ignored_signal_stay(program):
    server = program("""
def on_term(signum, frame):
    print("PROGRAM'S TERM HANDLER", flush=True)
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
server = compat.socketserver.TCPServer(("127.0.0.1", 0), Slow, log_level=3)
ready(server)
server.serve_forever()
server.server_close()
print("CLOSED", flush=True)
""")
    server.proc.send_signal(signal.SIGUSR1)  # ignored: neither default death nor netserver's reopen
    assert ask(server.port).startswith(b"done ")
    assert "USR1" not in server.log()
    server.proc.send_signal(signal.SIGTERM)
    out = server.finish(0)
    assert "PROGRAM'S TERM HANDLER" in out and "CLOSED" in out


@pytest.mark.parametrize("server_class", ["compat.socketserver.TCPServer", "PreFork"])
def test_sigint_the_program_set_to_its_default_action_kills_it_as_before(program, server_class):
    """``signal.signal(SIGINT, SIG_DFL)``: the program asked to die of Ctrl-C, not to stop cleanly."""
    build = ("compat.socketserver.TCPServer(('127.0.0.1', 0), Slow)" if server_class.startswith("compat")
             else "type('P', (netserver.PreForkMixIn, socketserver.TCPServer), {'max_servers': 2})(('127.0.0.1', 0), Slow)")
    server = program(f"""
signal.signal(signal.SIGINT, signal.SIG_DFL)
server = {build}
ready(server)
server.serve_forever()
print("SERVE_FOREVER RETURNED", flush=True)
""")
    assert ask(server.port).startswith(b"done ")
    server.proc.send_signal(signal.SIGINT)
    assert "SERVE_FOREVER RETURNED" not in server.finish(-signal.SIGINT)


def test_python_m_compat_http_server_serves_the_current_directory(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the directory\n")
    with socket.socket() as probe:  # a free port for the command line (the command takes a number)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "compat.http_server", "-b", "127.0.0.1", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert "Serving HTTP on 127.0.0.1 port" in proc.stdout.readline()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        connection.request("GET", "/hello.txt")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b"hello from the directory\n"
        connection.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0  # "Keyboard interrupt received, exiting." as http.server says
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_signal_the_program_ignores_stays_ignored_in_the_children_too(program):
    """A job started in the background ignores SIGINT: so do its pool's children (as with ForkingMixIn)."""
    server = program("""
signal.signal(signal.SIGINT, signal.SIG_IGN)

class S(netserver.PreForkMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    min_servers = max_servers = 2

server = S(("127.0.0.1", 0), Slow)
ready(server)
server.serve_forever()
server.server_close()
print("CLOSED", flush=True)
""")
    wait_until(lambda: len(live_children(server.proc.pid)) == 2, what="the pool")
    children = set(live_children(server.proc.pid))
    os.killpg(server.proc.pid, signal.SIGINT)
    assert ask(server.port).startswith(b"done ")
    assert set(live_children(server.proc.pid)) == children, "a child died of the ignored SIGINT"
    server.proc.send_signal(signal.SIGTERM)
    assert "CLOSED" in server.finish(0)
    assert "abnormally" not in server.log()


USR1_PROGRAM = """
class S({mixin}, socketserver.TCPServer):
    allow_reuse_address = True
    min_servers = max_servers = 2
    sig_passthrough = {passthrough!r}

server = S(("127.0.0.1", 0), Slow)
ready(server)
server.serve_forever()
server.server_close()
print("CLOSED", flush=True)
"""


@pytest.mark.parametrize("mixin, passthrough", [("netserver.PreForkSimpleMixIn", []),
                                                ("netserver.ForkMixIn", ["USR1"])])
def test_usr1_to_a_child_or_passed_through_leaves_everything_serving(program, mixin, passthrough):
    """Both used to end a process: USR1 killed a PreForkSimpleMixIn child; a passed-through USR1 raised
    out of ForkMixIn's serve_forever (the mixins called sig_usr1, which only netserver.Server had)."""
    server = program(USR1_PROGRAM.format(mixin=mixin, passthrough=passthrough))
    if "PreFork" in mixin:
        wait_until(lambda: len(live_children(server.proc.pid)) == 2, what="the pool")
        children = set(live_children(server.proc.pid))
        for child in children:
            os.kill(child, signal.SIGUSR1)
        assert ask(server.port).startswith(b"done ")
        assert set(live_children(server.proc.pid)) == children, "USR1 ended a child"
    else:
        assert ask(server.port).startswith(b"done ")  # serve_forever runs: its handlers are in place
        server.proc.send_signal(signal.SIGUSR1)
        assert ask(server.port).startswith(b"done ")
        wait_until(lambda: not live_children(server.proc.pid), what="the earlier children to exit")
        with ThreadPoolExecutor(1) as pool:  # and a Fork child ignores USR1 mid-connection
            reply = pool.submit(ask, server.port, 1.0)
            child = wait_until(lambda: live_children(server.proc.pid), what="the connection's child")[0]
            os.kill(child, signal.SIGUSR1)
            assert reply.result(TIMEOUT) == b"done %d\n" % child
    assert server.proc.poll() is None
    server.proc.send_signal(signal.SIGTERM)
    assert "CLOSED" in server.finish(0)
    assert "Traceback" not in server.log() and "abnormally" not in server.log(), server.log()


HOST_WITH_ITS_OWN_LOOP = """
class LibServer(socketserver.TCPServer):
    '''A library's server class that wraps socketserver's loop (as Werkzeug's BaseWSGIServer does).'''
    allow_reuse_address = True

    def serve_forever(self, poll_interval=0.5):
        print("LibServer.serve_forever", flush=True)
        try:
            super().serve_forever(poll_interval)
        except KeyboardInterrupt:
            print("LibServer caught KeyboardInterrupt", flush=True)
        finally:
            print("LibServer.serve_forever done", flush=True)

    def shutdown(self):
        print("LibServer.shutdown", flush=True)
        super().shutdown()


class S({mixin}, LibServer):
    max_servers = 2


server = S(("127.0.0.1", 0), Slow)
ready(server)


def stop():
    how = sys.stdin.readline().strip()
    sys.stdin.readline()  # once the client has been served
    server.shutdown() if how == "shutdown" else os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=stop).start()
server.serve_forever(poll_interval=0.1)
# As jsonrpclib's server_close does: the standard class's shutdown, by name, after the loop ended.
socketserver.TCPServer.shutdown(server)
print("STANDARD SHUTDOWN RETURNED", flush=True)
server.server_close()
"""


@pytest.mark.parametrize("how", ["shutdown", "ctrl-c"])
@pytest.mark.parametrize("mixin", ["socketserver.ThreadingMixIn", "netserver.SingleMixIn", "netserver.ThreadMixIn",
                                   "netserver.ForkMixIn", "netserver.PreForkMixIn"])
def test_a_host_classs_own_serve_forever_and_shutdown_run_around_the_loop(program, mixin, how):
    """A mixin's loop comes first in the MRO; the host class's own ``serve_forever`` (which here
    catches KeyboardInterrupt, as Werkzeug's does) and ``shutdown`` still run, and the standard
    ``shutdown`` called by name after the loop returns instead of waiting forever."""
    server = program(HOST_WITH_ITS_OWN_LOOP.format(mixin=mixin))
    server.say(how)
    assert ask(server.port).startswith(b"done")
    server.say("now")
    expected = ["LibServer.serve_forever", "LibServer.serve_forever done", "STANDARD SHUTDOWN RETURNED"]
    expected[1:1] = ["LibServer.shutdown"] if how == "shutdown" else ["LibServer caught KeyboardInterrupt"]
    assert server.finish(0).split("\n")[:4] == expected


STOPPED_BY_THE_STANDARD_FLAG = """
class Stopper(socketserver.StreamRequestHandler):
    def handle(self):
        self.server._BaseServer__shutdown_request = True  # a common recipe for stopping from a handler
        self.wfile.write(b"stopping\\n")


server = {server}(("127.0.0.1", 0), Stopper)
ready(server)
server.serve_forever(poll_interval=0.1)
print("SERVE_FOREVER RETURNED", flush=True)
server.server_close()
"""


@pytest.mark.parametrize("server_class", ["socketserver.TCPServer", "compat.socketserver.TCPServer",
                                          "compat.socketserver.ThreadingTCPServer"])
def test_a_handler_that_sets_socketservers_own_stop_flag_stops_the_loop(program, server_class):
    server = program(STOPPED_BY_THE_STANDARD_FLAG.format(server=server_class))
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as client:
        assert client.makefile("rb").readline() == b"stopping\n"
    assert "SERVE_FOREVER RETURNED" in server.finish(0)
