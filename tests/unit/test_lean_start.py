"""Issue 15: what ``import netserver`` leaves out, and the small pieces changed to keep children lean.

The import checks run in a fresh interpreter (this test process has imported
everything already).  They guard against a top-level import creeping back:
each module named here costs start-up time, and every forked child shares a
larger, more scattered heap.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

import netserver
from netserver.proto.listener import Listener

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Loaded only by the configurations that need them (syslog, pid/lock files, an unknown
# option word, --help, the other personalities, the first fork).
NOT_AT_IMPORT = ["logging.handlers", "tempfile", "shutil", "difflib", "random", "ctypes", "queue",
                 "heapq", "netserver.options.reference", "netserver.personalities.thread",
                 "netserver.personalities.multiplex", "netserver.personalities.inet",
                 "netserver.personalities.multitype"]


def modules_after(code: str) -> set:
    script = f"import sys, json\nbefore = set(sys.modules)\n{code}\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("code", ["import netserver\nnetserver.PreFork", "import netserver.cli"])
def test_import_leaves_out_what_only_some_configurations_need(code):
    assert sorted(modules_after(code) & set(NOT_AT_IMPORT)) == []


def test_import_netserver_loads_nothing_until_a_name_is_used():
    assert modules_after("import netserver") == {"netserver", "netserver.version"}


# What a drop-in server may load beyond what the standard module loads: netserver's own modules
# and nothing else.  Every other module is memory each fork copies, an extension module a few
# more mappings, logging a lock taken around every fork (issue 12).
DROP_IN = {
    "compat": "import compat.socketserver as s\nS = s.ForkingTCPServer",
    "mixin": "import socketserver, netserver\n"
             "class S(netserver.ForkMixIn, socketserver.TCPServer):\n    max_servers = 40",
}


@pytest.mark.parametrize("kind", sorted(DROP_IN))
def test_a_drop_in_forking_server_loads_only_netserver_beyond_the_standard_module(kind):
    stdlib = modules_after("import socketserver\n"
                           "socketserver.ForkingTCPServer(('127.0.0.1', 0), socketserver.BaseRequestHandler)"
                           ".server_close()")
    upgraded = modules_after(DROP_IN[kind] + "\nS(('127.0.0.1', 0), __import__('socketserver').BaseRequestHandler)"
                             ".server_close()")
    # Built into the interpreter (pwd, on most builds) costs no mapping; signal: the loop handles signals.
    foreign = sorted(name for name in upgraded - stdlib
                     if name.split(".")[0] not in ("netserver", "compat") and name not in sys.builtin_module_names)
    assert set(foreign) <= {"signal"}, foreign
    # Modules of options the server was not given.  (privileges, proxy and clientstdio are imported
    # with the server: pure Python, their extension modules grp and _struct are not; the check above
    # holds that line.)
    features = {"netserver.daemon", "netserver.handlers", "netserver.process.scoreboard", "netserver.process.serialize",
                "netserver.personalities.prefork", "netserver.loghandlers"}
    assert sorted(upgraded & features) == []


SERVE_ONE = """
import socket, socketserver, threading
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())
server = S(('127.0.0.1', 0), Echo)
def client():
    try:
        with socket.create_connection(server.server_address, timeout=10) as c:
            c.sendall(b"x\\n")
            assert c.makefile("rb").readline() == b"x\\n"
    finally:
        server.shutdown()
threading.Thread(target=client).start()
server.serve_forever(poll_interval=0.05)
server.server_close()
"""


@pytest.mark.parametrize("kind", sorted(DROP_IN))
def test_a_drop_in_forking_server_that_has_served_still_loads_only_netserver(kind):
    """Forking and serving load nothing either: ctypes (for the parent-death signal) costs every
    later fork 25 more mappings to copy, and a Fork child ignores that signal (HUP) anyway."""
    stdlib = modules_after("import socketserver\nS = socketserver.ForkingTCPServer" + SERVE_ONE)
    upgraded = modules_after(DROP_IN[kind] + SERVE_ONE)
    foreign = sorted(name for name in upgraded - stdlib
                     if name.split(".")[0] not in ("netserver", "compat") and name not in sys.builtin_module_names)
    assert set(foreign) <= {"signal"}, foreign


def test_the_http_personality_loads_tls_cgi_and_page_modules_only_when_used():
    """ssl (and OpenSSL's libraries), subprocess, html's entity table, cookies, traceback and
    email.utils (which loads random, re-seeded in every child after each fork) are imported where
    a TLS listener, a CGI script, an error page, a cookie log field or a failing app needs them."""
    pytest.importorskip("httptools")
    loaded = modules_after("from netserver.personalities import load\nload('HTTP')\n"
                           "import netserver.http.event, netserver.personalities.prefork")
    late = {"ssl", "subprocess", "html", "http.cookies", "traceback", "email.utils", "random"}
    assert sorted(loaded & late) == []


def test_lazy_names_resolve_on_first_use_and_are_listed():
    loaded = modules_after("import netserver\nfrom netserver import Thread, MuxHandler, INET, MultiType")
    assert {"netserver.personalities.thread", "netserver.personalities.multiplex"} <= loaded
    for name in netserver.__all__:
        assert getattr(netserver, name) is not None
        assert name in dir(netserver)
    assert netserver.ThreadMixIn.__module__ == "netserver.personalities.thread"
    assert netserver.HTTP.__module__ == "netserver.http"  # DESIGN's public HTTP, as production.md uses it
    with pytest.raises(AttributeError):
        getattr(netserver, "NoSuchPersonality")  # noqa: B009 - the lookup itself is the test


def test_syslog_handler_class_is_built_on_first_use():
    from netserver import log, loghandlers

    assert loghandlers.syslog_handler_class().priority_map["NOTICE"] == "notice"
    assert loghandlers.syslog_handler_class() is loghandlers.syslog_handler_class()  # built once
    assert "daemon" in log.syslog_facility_names()


@pytest.mark.parametrize("limit, jitter, low, high", [(1000, None, 1000, 1100), (10, 0, 10, 10), (50, 5, 50, 55),
                                                      (0, None, 0, 0), (0, 7, 0, 0)])
def test_request_limit_draws_within_max_requests_plus_jitter(limit, jitter, low, high):
    from netserver.process.child import request_limit

    drawn = {request_limit(limit, jitter) for _ in range(2000)}
    assert min(drawn) >= low and max(drawn) <= high
    if high - low <= 10:
        assert drawn == set(range(low, high + 1))  # every value of the range comes up


class _OwnSocket(socket.socket):
    accepted = 0

    def accept(self):
        type(self).accepted += 1
        return super().accept()


@pytest.mark.parametrize("sock_class", [socket.socket, _OwnSocket])
@pytest.mark.parametrize("listener_blocking", [True, False])
def test_get_request_accepts_as_socket_accept_does(sock_class, listener_blocking):
    listener = Listener.__new__(Listener)
    _OwnSocket.accepted = 0
    server = sock_class(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(listener_blocking)
    listener.socket = server
    try:
        for _ in range(2):  # the second call uses the numbers taken by the first
            with socket.create_connection(server.getsockname(), timeout=5) as client:
                if not listener_blocking:
                    import select
                    assert select.select([server], [], [], 5)[0]
                conn, address = listener.get_request()
                with conn:
                    assert type(conn) is socket.socket
                    assert conn.family == socket.AF_INET and conn.type == socket.SOCK_STREAM
                    assert conn.gettimeout() is None  # blocking, as socket.accept() leaves it
                    assert address == client.getsockname()
                    client.sendall(b"x")
                    assert conn.recv(1) == b"x"
        if sock_class is _OwnSocket:
            assert _OwnSocket.accepted == 2  # a socket of its own class keeps its own accept
    finally:
        server.close()


STDERR_LINES = """
import sys, time
from netserver.log import ServerLog, TIME_FORMAT
log = ServerLog()
log.write(2, "started")
log.write("err", "two\\nlines")
log.write(4, "below the level")
print("logging" in sys.modules, time.strftime(TIME_FORMAT))
import logging  # the program's own: from now on the lines go through netserver's private logger
log.write(1, "after logging")
log.write(2, "started")
print(log._logger is not None)
"""


def test_the_default_stderr_log_is_written_without_importing_logging():
    """logging's at-fork hooks (a lock around every fork, every handler's lock re-made in every
    child) cost each forked child about 20 pages of its own: a server that logs to stderr, the
    default, writes its lines itself while the program has not imported logging, in the format
    the logger writes once it has."""
    # A zone 5.5 hours from UTC, without tzdata: a line stamped in UTC would be caught.
    out = subprocess.run([sys.executable, "-c", STDERR_LINES], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=ROOT, TZ="XST-5:30"))
    assert out.returncode == 0, out.stderr
    imported, local_now, switched = out.stdout.split()
    assert imported == "False", "writing to stderr imported logging"
    assert switched == "True", "once the program imports logging, the lines go through the logger"
    stamp = r"\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d \d+ "
    lines = out.stderr.splitlines()
    assert len(lines) == 5, lines
    for line, expected in zip(lines, ["NOTICE started", "ERROR two", "lines", "WARNING after logging",
                                      "NOTICE started"], strict=True):
        assert re.fullmatch((stamp if expected != "lines" else "") + expected, line), (line, expected)
    assert lines[0].split(" ", 1)[1] == lines[4].split(" ", 1)[1], "the same line, with and without logging"
    import datetime

    stamped = datetime.datetime.strptime(lines[0].split()[0], "%Y/%m/%d-%H:%M:%S")
    assert abs(stamped - datetime.datetime.strptime(local_now, "%Y/%m/%d-%H:%M:%S")).total_seconds() < 30


PREFORK_AT_DEFAULTS = """
import json, socket, socketserver, sys
import netserver
class Report(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"%d" % ("logging" in sys.modules))
netserver.PreFork.run(Report, port="127.0.0.1:" + sys.argv[1], min_servers=1, max_servers=1,
                      min_spare_servers=0, max_spare_servers=1, **json.loads(sys.argv[2]))
"""


@pytest.mark.parametrize("options", [{}, {"user": "nobody", "group": "nogroup"}], ids=["defaults", "user"])
def test_a_pool_at_the_default_log_target_never_imports_logging(options):
    """The parent writes its start-up lines (NOTICE, level 2: the default) and its children serve;
    neither has imported logging, also where the parent preloads modules before a privilege drop."""
    if options and os.geteuid() != 0:
        pytest.skip("changing user needs root")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", PREFORK_AT_DEFAULTS, str(port), json.dumps(options)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.PIPE, text=True)
    try:
        reply = None
        deadline = time.monotonic() + 20
        while reply is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    reply = conn.recv(10)
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.05)
        assert reply is not None and reply != b"", "the server never answered"
        assert reply == b"0", "a child imported logging"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert re.search(r"\d+ NOTICE PreFork .*starting", err), err
