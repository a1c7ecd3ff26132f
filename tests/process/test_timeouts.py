"""child_timeout and graceful_timeout on real processes, measured.

A handler that sleeps stands for a hung application.  child_timeout: the
parent stops the child busy too long and a queued client is served by its
replacement within the limit plus one check interval (the parent's loop tick,
0.5 s).  graceful_timeout: QUIT, or a HUP's retirement of old children, ends
with the busy children stopped once the deadline has passed.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import ROOT, TIMEOUT, python_env, read_all
from proctools import LOOPBACK, assert_group_gone, exists, holds_for, live_children, wait_until

TICK = 0.5  # the parent's check interval (PreForkSimple.tick; Fork's serve_forever poll)
SLACK = 0.5  # a loaded test machine (2 cores shared)

SLEEPY = """
    import os, socketserver, time
    import netserver

    class Sleepy(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            if line.startswith(b"sleep"):
                self.wfile.write(b"sleeping %d\\n" % os.getpid())
                time.sleep(3600)  # a hung application
            self.wfile.write(b"ok %d\\n" % os.getpid())

    netserver.{personality}.run(Sleepy)
"""

POOL = {
    "PreForkSimple": ["--max_servers", "1"],
    "PreFork": ["--min_servers", "1", "--max_servers", "1", "--min_spare_servers", "0", "--check_for_spawn", "0.1"],
    "Fork": ["--max_servers", "1"],
}


def ask(address, line: bytes) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.sendall(line)
    return sock


def reply(sock) -> bytes:
    with sock:
        return read_all(sock)


def start_sleepy(servers, write_script, personality, *options):
    script = write_script(SLEEPY.format(personality=personality))
    return servers.start([*LOOPBACK, *POOL[personality], *options], script=script)


@pytest.mark.parametrize("personality", ["PreForkSimple", "PreFork", "Fork"])
@pytest.mark.slow
def test_a_child_busy_past_child_timeout_is_replaced(servers, write_script, personality):
    limit = 1.0
    server = start_sleepy(servers, write_script, personality, "--child_timeout", str(limit))
    address = ("127.0.0.1", server.port)
    if personality != "Fork":
        wait_until(lambda: len(live_children(server.pid)) == 1, what="the pool of one child")
    hung = ask(address, b"sleep\n")
    hung_file = hung.makefile("rb")
    first = hung_file.readline()
    started = time.monotonic()
    hung_pid = int(first.split()[1])
    local = "%s:%d" % hung.getsockname()
    queued = ask(address, b"hello\n")  # waits for the only child
    answer = reply(queued)
    waited = time.monotonic() - started
    print(f"{personality}: child_timeout {limit}s, queued client served after {waited:.2f}s")
    assert answer.startswith(b"ok "), answer
    assert int(answer.split()[1]) != hung_pid
    assert limit <= waited <= limit + TICK + SLACK, waited
    assert hung_file.read() == b""  # the hung connection was closed with its child
    hung.close()
    wait_until(lambda: not exists(hung_pid), what="the hung child to be gone")
    line = server.wait_for(rf"Child {hung_pid} has been busy [\d.]+s with {re.escape(local)} "
                           rf"\(child_timeout 1s\)")[0].string
    assert "WARNING" in line


@pytest.mark.slow
def test_child_timeout_off_by_default_for_a_plain_server(servers, write_script):
    server = start_sleepy(servers, write_script, "PreForkSimple")
    hung = ask(("127.0.0.1", server.port), b"sleep\n")
    hung_pid = int(hung.makefile("rb").readline().split()[1])
    assert holds_for(lambda: exists(hung_pid) and hung_pid in live_children(server.pid), 2.0)
    assert "child_timeout" not in server.log_text()
    hung.close()


@pytest.mark.slow
def test_a_child_that_ignores_term_is_killed_after_stop_timeout(servers, write_script):
    script = write_script("""
        import os, signal, socketserver, time
        import netserver

        class Stubborn(socketserver.StreamRequestHandler):
            def handle(self):
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                self.wfile.write(b"sleeping %d\\n" % os.getpid())
                time.sleep(3600)

        netserver.PreForkSimple.run(Stubborn)
    """)
    server = servers.start([*LOOPBACK, "--max_servers", "1", "--child_timeout", "0.5", "--stop_timeout", "0.5"],
                           script=script)
    hung = ask(("127.0.0.1", server.port), b"x\n")
    pid = int(hung.makefile("rb").readline().split()[1])
    started = time.monotonic()
    wait_until(lambda: not exists(pid), what="the child ignoring TERM to be killed")
    waited = time.monotonic() - started
    print(f"TERM ignored: killed after {waited:.2f}s (child_timeout 0.5 + stop_timeout 0.5)")
    assert waited <= 0.5 + 0.5 + 2 * TICK + SLACK
    server.wait_for(rf"Child {pid} still running: it ignored TERM .*; sending SIGKILL")
    hung.close()


@pytest.mark.parametrize("personality", ["PreForkSimple", "Fork"])
@pytest.mark.slow
def test_quit_stops_busy_children_after_graceful_timeout(servers, write_script, personality):
    limit = 1.0
    server = start_sleepy(servers, write_script, personality, "--graceful_timeout", str(limit))
    hung = ask(("127.0.0.1", server.port), b"sleep\n")
    hung_pid = int(hung.makefile("rb").readline().split()[1])
    server.signal(signal.SIGQUIT)
    started = time.monotonic()
    assert server.wait_exit() == 0
    waited = time.monotonic() - started
    print(f"{personality}: QUIT with graceful_timeout {limit}s: stopped after {waited:.2f}s")
    assert limit <= waited <= limit + TICK + SLACK, waited
    assert not exists(hung_pid)
    assert "Stopping 1 children still busy after graceful_timeout (1s)" in server.log_text()
    assert_group_gone(server)
    hung.close()


@pytest.mark.slow
def test_quit_waits_for_busy_children_without_graceful_timeout(servers, write_script):
    """Net::Server's QUIT: no deadline unless one is configured."""
    server = start_sleepy(servers, write_script, "PreForkSimple")
    hung = ask(("127.0.0.1", server.port), b"sleep\n")
    hung.makefile("rb").readline()
    server.signal(signal.SIGQUIT)
    assert holds_for(lambda: server.proc.poll() is None, 2.0), "QUIT did not wait for the busy child"
    hung.close()


@pytest.mark.slow
def test_hup_retired_old_children_are_stopped_after_graceful_timeout(servers, write_script):
    limit = 1.0
    server = start_sleepy(servers, write_script, "PreForkSimple", "--graceful_timeout", str(limit))
    hung = ask(("127.0.0.1", server.port), b"sleep\n")
    hung_pid = int(hung.makefile("rb").readline().split()[1])
    server.signal(signal.SIGHUP)
    server.wait_for(r"Binding to TCP port \d+ .*\(inherited fd \d+\)")
    restarted = time.monotonic()
    wait_until(lambda: not exists(hung_pid), what="the old busy child to be stopped")
    waited = time.monotonic() - restarted
    print(f"HUP: old busy child stopped {waited:.2f}s after the new image started (graceful_timeout {limit}s)")
    assert waited <= limit + TICK + SLACK
    server.wait_for(rf"Child {hung_pid} still running: not done 1s \(graceful_timeout\)")
    assert hung.makefile("rb").read() == b""
    hung.close()
    assert reply(ask(("127.0.0.1", server.port), b"hi\n")).startswith(b"ok ")  # the new pool serves


HTTP_APP = """
import os, time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(3600)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.parametrize("server_type", ["PreFork", "Fork"])
@pytest.mark.slow
def test_http_child_timeout_counts_requests_not_keepalive_waits(servers, tmp_path, server_type):
    import http.client

    pytest.importorskip("httptools")
    (tmp_path / "sleepyapp.py").write_text(HTTP_APP)
    server = servers.start(["HTTP", *LOOPBACK, "--server_type", server_type, "--app", "sleepyapp:application",
                            "--child_timeout", "1", "--min_servers", "1", "--max_servers", "2"], cwd=str(tmp_path))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("GET", "/")
    pid = conn.getresponse().read()
    time.sleep(1.6)  # idle on a kept-alive connection, longer than child_timeout: not busy
    conn.request("GET", "/")
    assert conn.getresponse().read() == pid, "the kept-alive connection was cut"
    conn.close()
    hung = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    hung.request("GET", "/sleep")
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        hung.getresponse()
    waited = time.monotonic() - started
    print(f"HTTP over {server_type}: hung request cut after {waited:.2f}s (child_timeout 1s)")
    assert waited <= 1 + TICK + SLACK
    server.wait_for(r"has been busy [\d.]+s with 127\.0\.0\.1:\d+ \(child_timeout 1s\)")


def test_http_has_child_and_graceful_timeouts_by_default(servers, tmp_path):
    pytest.importorskip("httptools")
    (tmp_path / "sleepyapp.py").write_text(HTTP_APP)

    def run_command(words, cwd=ROOT):
        return subprocess.run([sys.executable, "-m", "netserver", *words], capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=cwd, env=python_env())

    printed = run_command(["HTTP", "--app", "sleepyapp:application", "--print-config"], cwd=str(tmp_path))
    assert printed.returncode == 0, printed.stderr
    rows = {line.split()[0]: line.split()[1:] for line in printed.stdout.splitlines()[1:]}
    assert rows["child_timeout"] == ["30.0", "default"] and rows["graceful_timeout"] == ["30.0", "default"]
    plain = run_command(["PreFork", "--print-config"])
    rows = {line.split()[0]: line.split()[1:] for line in plain.stdout.splitlines()[1:]}
    assert rows["child_timeout"] == ["0.0", "default"] and rows["graceful_timeout"] == ["0.0", "default"]
