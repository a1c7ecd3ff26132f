"""The INET personality: the connection is on stdin/stdout, as inetd hands it over."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from harness import ROOT, TIMEOUT, python_env, read_all
from procfs import alive
from waiting import wait_until

pytestmark = pytest.mark.process  # some tests here start the server as a process

COMMAND = [sys.executable, "-m", "netserver", "INET"]


def expected(pid: int, lines) -> bytes:
    out = f'Welcome to "INET" ({pid})\r\n'
    for line in list(lines) + ["quit"]:
        out += f'INET:{pid}: You said "{line}"\r\n'
    return out.encode()


def connected_pair():
    """(client end, server end) of a real loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        server_end, _ = listener.accept()
    return client, server_end


def reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(TIMEOUT)


def test_inet_on_a_socket():
    client, server_end = connected_pair()
    client_port = client.getsockname()[1]
    with client:
        proc = subprocess.Popen(COMMAND + ["--log_level", "3"], stdin=server_end, stdout=server_end,
                                stderr=subprocess.PIPE, env=python_env(), cwd=ROOT)
        server_end.close()  # the child holds the only server-side reference now
        try:
            rfile = client.makefile("rb")
            greeting = rfile.readline()
            assert greeting == f'Welcome to "INET" ({proc.pid})\r\n'.encode()
            client.sendall(b"over a socket\r\n")
            assert rfile.readline() == f'INET:{proc.pid}: You said "over a socket"\r\n'.encode()
            client.sendall(b"quit\r\n")
            assert rfile.readline() == f'INET:{proc.pid}: You said "quit"\r\n'.encode()
            assert rfile.read() == b""  # connection closed after quit
            assert proc.wait(TIMEOUT) == 0
            log = proc.stderr.read().decode()
        finally:
            reap(proc)
            proc.stderr.close()
    # The peer is known: inetd mode logs who connected, and nothing was bound.
    assert f"CONNECT [127.0.0.1]:{client_port}" in log
    assert "Binding to" not in log
    assert "Traceback" not in log


def test_inet_on_a_socket_applies_access_rules():
    client, server_end = connected_pair()
    with client:
        proc = subprocess.Popen(COMMAND + ["--cidr_deny", "127.0.0.0/8"], stdin=server_end, stdout=server_end,
                                stderr=subprocess.PIPE, env=python_env(), cwd=ROOT)
        server_end.close()
        try:
            assert read_all(client) == b""
            assert proc.wait(TIMEOUT) == 0
            log = proc.stderr.read().decode()
        finally:
            reap(proc)
            proc.stderr.close()
    assert "Denying connection from [127.0.0.1]" in log


def test_inet_on_pipes():
    proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=python_env(), cwd=ROOT)
    try:
        out, err = proc.communicate(b"through a pipe\nsecond line\nquit\n", timeout=TIMEOUT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert out == expected(proc.pid, ["through a pipe", "second line"])
    assert b"Traceback" not in err


def test_inet_on_pipes_ends_at_eof():
    proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=python_env(), cwd=ROOT)
    try:
        out, err = proc.communicate(b"no quit, just eof\n", timeout=TIMEOUT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert out == (f'Welcome to "INET" ({proc.pid})\r\n'
                   f'INET:{proc.pid}: You said "no quit, just eof"\r\n').encode()


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "TERM"), (signal.SIGINT, "INT")])
def test_inet_stops_cleanly_on_term_and_int(signum, name):
    """inetd/systemd stop a running INET server with TERM: it exits 0, without a traceback."""
    proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=python_env(), cwd=ROOT)
    try:
        assert proc.stdout.readline().startswith(b'Welcome to "INET"')  # now waiting for the client
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        reap(proc)
    assert b"Traceback" not in err, err.decode()
    assert f"Received {name}".encode() in err
    assert proc.returncode == 0


# ---------------------------------------------------------------------------
# A real inetd-style launcher: socat forks one INET server per connection
# ---------------------------------------------------------------------------


def _start_socat(tmp_path):
    """socat on port 0 of 127.0.0.1; the port it got is read from its log (``-d -d``).

    Ready when socat itself logs "listening on …:PORT".  Returns (proc, port, log path).
    """
    exec_command = " ".join(COMMAND)
    log_path = tmp_path / "socat.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", f"EXEC:{exec_command}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=python_env(), cwd=ROOT,
            start_new_session=True)

    def listening():
        assert proc.poll() is None, "socat exited: " + log_path.read_text(errors="replace")
        return re.search(r"listening on AF=2 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))

    try:
        port = int(wait_until(listening, what="socat to listen").group(1))
    except BaseException:
        _stop(proc)
        raise
    return proc, port, log_path


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # any INET child socat left behind
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int) -> None:
    """Wait until ``pid`` has exited (gone, or a zombie waiting for socat to reap it)."""
    wait_until(lambda: not alive(pid), what=f"INET server {pid} to exit after its client left")


def _serve_one(client: socket.socket, text: bytes) -> bytes:
    with client:
        client.settimeout(TIMEOUT)
        client.sendall(text + b"\nquit\n")
        return read_all(client)


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_inet_under_socat(tmp_path):
    proc, port, log_path = _start_socat(tmp_path)
    try:
        one = _serve_one(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), b"first client")
        two = _serve_one(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), b"second client")
        pids = []
        for reply, said in ((one, "first client"), (two, "second client")):
            greeting = reply.split(b"\r\n", 1)[0].decode()
            assert greeting.startswith('Welcome to "INET" ('), reply
            pid = int(greeting.rsplit("(", 1)[1].rstrip(")"))
            assert reply == expected(pid, [said])
            pids.append(pid)
        assert pids[0] != pids[1]  # one INET process per connection
        assert proc.poll() is None  # the launcher keeps listening
        for pid in pids:  # each INET server ends by itself after its client's quit
            _wait_gone(pid)
    finally:
        _stop(proc)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    assert "INET (type INET) starting!" in log  # the children's log went to socat's stderr


LOCAL_END = """
import socketserver
import netserver


class Where(socketserver.StreamRequestHandler):
    def handle(self):
        client = self.server.client
        self.wfile.write(f"{client.peeraddr} {client.peerport} {client.sockaddr} {client.sockport}\\n".encode())


netserver.INET.run(Where)
"""


def test_inet_client_knows_both_ends_of_the_connection(tmp_path):
    """``self.server.client.sockaddr``/``sockport`` under INET: the local end of the socket inetd
    handed over (it raised AttributeError: there is no listener to ask)."""
    script = tmp_path / "where.py"
    script.write_text(LOCAL_END)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        server_end, _ = listener.accept()
        port = listener.getsockname()[1]
    client_port = client.getsockname()[1]
    with client:
        proc = subprocess.Popen([sys.executable, str(script)], stdin=server_end, stdout=server_end,
                                stderr=subprocess.PIPE, env=python_env(), cwd=ROOT)
        server_end.close()
        try:
            answer = client.makefile("rb").readline().decode().split()
            assert proc.wait(TIMEOUT) == 0, proc.stderr.read().decode()
        finally:
            reap(proc)
            proc.stderr.close()
    assert answer == ["127.0.0.1", str(client_port), "127.0.0.1", str(port)]
