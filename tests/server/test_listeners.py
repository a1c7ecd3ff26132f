"""Listeners: many at once, dual stack, port 0, UNIX socket files, and the
socketserver-style in-process API.

Process tests start ``python -m netserver``; in-process tests run
``serve_forever()`` in a thread.  UNIX sockets live in short private
directories under /tmp (a socket path is limited to 107 bytes).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from harness import ROOT, TIMEOUT, ServerProcess, echo_exchange, python_env, read_all, run_command, serving

import netserver
from netserver.proto.resolve import bindv6only, ipv6_usable

pytestmark = pytest.mark.process  # some tests here start the server as a process

needs_v6 = pytest.mark.skipif(not ipv6_usable(), reason="IPv6 is not usable on this host")


# In-process servers name the test process's own user, so that no test depends on
# what a server does with no ``user`` (it keeps the identity and, as root, warns).
SELF = {"user": pwd.getpwuid(os.geteuid()).pw_name}


@pytest.fixture
def sockdir():
    path = tempfile.mkdtemp(prefix="ns", dir="/tmp")
    os.chmod(path, 0o1777)  # a server that drops privileges must still create and remove its socket
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    """In-process servers read sys.argv (a configuration source): give them none of pytest's."""
    monkeypatch.setattr("sys.argv", ["test"])


def said(reply: bytes, text: str) -> bool:
    return f'You said "{text}"'.encode() in reply


def udp_echo(address, payload: bytes, family=socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(payload, address)
        data, peer = sock.recvfrom(65536)
        return data


def unix_dgram_echo(path: str, payload: bytes, client_dir: str) -> bytes:
    client_path = os.path.join(client_dir, "client.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind(client_path)  # a datagram reply needs an address to go to
        os.chmod(client_path, 0o777)  # ...that the server may write to, whichever user it runs as
        try:
            sock.sendto(payload, path)
            return sock.recv(65536)
        finally:
            os.unlink(client_path)


def tcp_listeners(port: int):
    """(family, address) of every LISTEN socket on ``port`` per /proc/net/tcp{,6}."""
    found = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{name}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state = fields[1], fields[3]
            addr, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:
                found.append((name, addr))
    return found


# ---------------------------------------------------------------------------
# Several listeners in one process
# ---------------------------------------------------------------------------


def test_every_kind_of_listener_in_one_process(sockdir):
    stream_path = os.path.join(sockdir, "s.sock")
    dgram_path = os.path.join(sockdir, "d.sock")
    ports = ["127.0.0.1:0/tcp", "127.0.0.1:0/udp", f"{stream_path}|unix", f"{dgram_path}|unixdgram"]
    if ipv6_usable():
        ports.insert(1, "[::1]:0/tcp/IPv6")
    args = ["Single"]
    for spec in ports:
        args += ["--port", spec]
    with serving(args, bindings=len(ports)) as server:
        by_kind = {}
        for proto, port, host in server.bindings:
            by_kind[(proto, host)] = port
        tcp4 = by_kind[("TCP", "127.0.0.1")]
        udp4 = by_kind[("UDP", "127.0.0.1")]
        assert by_kind[("UNIX", "")] == stream_path
        assert by_kind[("UNIXDGRAM", "")] == dgram_path
        assert len({tcp4, udp4} | ({by_kind[("TCP", "::1")]} if ipv6_usable() else set())) >= 2

        pid = server.pid
        assert said(echo_exchange(("127.0.0.1", tcp4), [b"tcp4"]), "tcp4")
        if ipv6_usable():
            assert said(echo_exchange(("::1", by_kind[("TCP", "::1")]), [b"tcp6"]), "tcp6")
        assert udp_echo(("127.0.0.1", udp4), b"udp4\n") == f'Server:{pid}: You said "udp4"\r\n'.encode()
        assert said(echo_exchange(stream_path, [b"unix"]), "unix")
        assert unix_dgram_echo(dgram_path, b"unixdgram", sockdir) == \
            f'Server:{pid}: You said "unixdgram"\r\n'.encode()
        # All in the one process: every reply names the same pid.
        assert f"({pid})".encode() in echo_exchange(stream_path)
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    # The socket files go with the server.
    assert not os.path.exists(stream_path)
    assert not os.path.exists(dgram_path)


@needs_v6
def test_host_star_is_one_dual_stack_socket():
    if bindv6only():
        pytest.skip("net.ipv6.bindv6only is 1: '*' binds two sockets here")
    with serving(["Single", "--port", "0", "--host", "*"]) as server:
        port = server.port
        assert server.bindings == [("TCP", port, "::")]
        server.wait_for(rf"Binding to TCP port {port} on host :: with IPv6")
        assert len(re.findall(r"Binding to ", server.log_text())) == 1
        assert "Not including resolved host [0.0.0.0]" in server.log_text()
        assert said(echo_exchange(("127.0.0.1", port), [b"via v4"]), "via v4")
        assert said(echo_exchange(("::1", port), [b"via v6"]), "via v6")
        listening = tcp_listeners(port)
        if listening:  # /proc/net is there (it is on Linux)
            assert listening == [("tcp6", "0" * 32)], listening


def test_port_0_on_localhost_binds_every_address_on_one_port():
    families = {info[0] for info in socket.getaddrinfo("localhost", 0, socket.AF_UNSPEC, socket.SOCK_STREAM)}
    if not ipv6_usable():
        families.discard(socket.AF_INET6)
    if len(families) < 2:
        pytest.skip("localhost resolves to one address family here")
    with serving(["Single", "--port", "0", "--host", "localhost"], bindings=2) as server:
        hosts = sorted(b[2] for b in server.bindings)
        assert hosts == ["127.0.0.1", "::1"]
        ports = {b[1] for b in server.bindings}
        assert len(ports) == 1
        port = ports.pop()
        assert said(echo_exchange(("127.0.0.1", port), [b"a"]), "a")
        assert said(echo_exchange(("::1", port), [b"b"]), "b")


@needs_v6
def test_port_0_for_both_families_gets_one_port():
    with serving(["Single", "--port", "*:0/tcp/IPv4/IPv6"], bindings=2) as server:
        assert sorted(b[2] for b in server.bindings) == ["0.0.0.0", "::"]
        ports = {b[1] for b in server.bindings}
        assert len(ports) == 1 and 0 not in ports
        port = ports.pop()
        assert said(echo_exchange(("127.0.0.1", port), [b"a"]), "a")
        assert said(echo_exchange(("::1", port), [b"b"]), "b")


def test_ipv_4_binds_only_the_ipv4_any_address():
    with serving(["Single", "--port", "0", "--ipv", "4"]) as server:
        port = server.port
        assert server.bindings == [("TCP", port, "0.0.0.0")]
        assert f"Binding to TCP port {port} on host 0.0.0.0 with IPv4" in server.log_text()
        assert said(echo_exchange(("127.0.0.1", port), [b"v4"]), "v4")
        if ipv6_usable():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("::1", port), timeout=TIMEOUT)
        listening = tcp_listeners(port)
        if listening:
            assert listening == [("tcp", "00000000")]


# ---------------------------------------------------------------------------
# UNIX socket files
# ---------------------------------------------------------------------------


def test_stale_unix_socket_file_is_replaced(sockdir):
    path = os.path.join(sockdir, "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays: what a crashed server leaves behind
    assert os.path.exists(path)
    with serving(["Single", "--port", f"{path}|unix"]) as server:
        assert server.bindings == [("UNIX", path, "")]
        assert said(echo_exchange(path, [b"fresh"]), "fresh")


def test_stale_unix_datagram_socket_file_is_replaced(sockdir):
    path = os.path.join(sockdir, "stale.dg")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(path)
    dead.close()
    with serving(["Single", "--port", f"{path}|unixdgram"]) as server:
        assert unix_dgram_echo(path, b"dg", sockdir) == f'Server:{server.pid}: You said "dg"\r\n'.encode()


def test_live_unix_socket_is_refused(sockdir):
    path = os.path.join(sockdir, "live.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(path)
        live.listen()
        result = run_command(["Single", "--port", f"{path}|unix"])
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert re.search(rf"cannot bind {re.escape(path)}: another server is listening", result.stderr)
        # The live server keeps its socket file and is still reachable.
        assert os.path.exists(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(TIMEOUT)
            client.connect(path)
            live.settimeout(TIMEOUT)
            conn, _ = live.accept()
            conn.close()


def test_live_netserver_unix_socket_is_refused_and_keeps_serving(sockdir):
    path = os.path.join(sockdir, "s.sock")
    with serving(["Single", "--port", f"{path}|unix"]) as first:
        result = run_command(["Single", "--port", f"{path}|unix"])
        assert result.returncode == 1
        assert "another server is listening" in result.stderr
        assert said(echo_exchange(path, [b"still here"]), "still here")
        assert f"({first.pid})".encode() in echo_exchange(path)


def test_regular_file_at_socket_path_is_refused_and_kept(sockdir):
    path = os.path.join(sockdir, "precious")
    with open(path, "w") as fh:
        fh.write("do not delete me\n")
    result = run_command(["Single", "--port", f"{path}|unix"])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(rf"cannot bind {re.escape(path)}: it exists and is not a socket", result.stderr)
    with open(path) as fh:
        assert fh.read() == "do not delete me\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_unix_socket_file_removed_when_server_stops(sockdir, signum):
    path = os.path.join(sockdir, "s.sock")
    with serving(["Single", "--port", f"{path}|unix"]) as server:
        assert os.path.exists(path)
        # A served connection shows the loop (and its signal handling) is running.
        assert said(echo_exchange(path), "hello")
        server.signal(signum)
        assert server.wait_exit() == 0
    assert not os.path.exists(path)


EAGER_TERM_SCRIPT = """
import os, signal, netserver


class Eager(netserver.Server):
    def write_to_log_hook(self, level, message):
        super().write_to_log_hook(level, message)
        if message.startswith("Binding to"):
            # What a supervisor does when it stops a server the moment it is up.
            os.kill(os.getpid(), signal.SIGTERM)


Eager.run()
"""


def test_term_right_after_binding_still_cleans_up(sockdir, tmp_path):
    path = os.path.join(sockdir, "eager.sock")
    script = tmp_path / "eager.py"
    script.write_text(EAGER_TERM_SCRIPT)
    with ServerProcess(["--port", f"{path}|unix"], script=str(script), wait=False) as server:
        code = server.wait_exit()
        assert "Binding to UNIX socket" in server.log_text()
    assert not os.path.exists(path), "socket file left behind"
    assert code == 0


def test_port_path_with_proto_unix(sockdir):
    path = os.path.join(sockdir, "p.sock")
    with serving(["Single", "--port", path, "--proto", "unix"]) as server:
        assert server.bindings == [("UNIX", path, "")]
        assert said(echo_exchange(path, [b"proto"]), "proto")


# ---------------------------------------------------------------------------
# socketserver style, in process
# ---------------------------------------------------------------------------


class Upper(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
            if line.strip() == b"bye":
                return


def exchange(address, payload: bytes, family=socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


@contextlib.contextmanager
def serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 5.0}, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


def test_fileno_before_binding():
    """No socket yet: -1, as a closed socket's (it raised AttributeError on None)."""
    server = netserver.Server(("127.0.0.1", 0), Upper, bind_and_activate=False, log_level=0, **SELF)
    try:
        assert server.socket is None
        assert server.fileno() == -1
    finally:
        server.server_close()


def test_socketserver_style_tcp():
    server = netserver.Server(("127.0.0.1", 0), Upper, log_level=0, **SELF)
    try:
        host, port = server.server_address
        assert host == "127.0.0.1" and port != 0
        assert server.socket.getsockname() == server.server_address
        assert server.fileno() == server.socket.fileno()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 5.0}, daemon=True)
        thread.start()
        assert exchange(server.server_address, b"abc\nbye\n") == b"ABC\nBYE\n"
        assert exchange(server.server_address, b"again\n") == b"AGAIN\n"
        start = time.monotonic()
        server.shutdown()
        took = time.monotonic() - start
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert took < 1.0, f"shutdown() took {took:.2f}s with poll_interval 5"
    finally:
        server.server_close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_context_manager_closes_listeners():
    with netserver.Server(("127.0.0.1", 0), Upper, log_level=0, **SELF) as server:
        sock = server.socket
        port = server.server_address[1]
        with serve_in_thread(server):
            assert exchange(server.server_address, b"x\n") == b"X\n"
    assert sock.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


@pytest.mark.parametrize("socket_type", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
def test_a_closed_listener_raises_oserror(socket_type):
    """accept_from()'s contract is OSError when there is nothing to accept: a closed listener too
    (it was an AttributeError on None); its fileno() is -1, as a closed socket's."""
    class Typed(netserver.Server):
        pass

    Typed.socket_type = socket_type
    server = Typed(("127.0.0.1", 0), Upper, log_level=0, **SELF)
    listener = server.listeners[0]
    server.server_close()
    with pytest.raises(OSError) as caught:
        server.accept_from(listener)
    assert caught.value.errno == errno.EBADF
    assert listener.fileno() == -1


def test_handle_request_times_out():
    class Timed(netserver.Server):
        timeout = 0.2
        timed_out = 0

        def handle_timeout(self):
            self.timed_out += 1

    with Timed(("127.0.0.1", 0), Upper, log_level=0, **SELF) as server:
        start = time.monotonic()
        server.handle_request()
        elapsed = time.monotonic() - start
        assert server.timed_out == 1
        assert 0.15 < elapsed < 2.0
        # With a client waiting, handle_request serves it instead.
        with socket.create_connection(server.server_address, timeout=TIMEOUT) as client:
            client.sendall(b"hi\nbye\n")
            server.handle_request()
            assert server.timed_out == 1
            assert read_all(client) == b"HI\nBYE\n"


def test_socketserver_style_udp():
    class UDPServer(netserver.Server):
        socket_type = socket.SOCK_DGRAM

    class Reverse(socketserver.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read()[::-1])

    with UDPServer(("127.0.0.1", 0), Reverse, log_level=0, **SELF) as server:
        assert server.socket.type == socket.SOCK_DGRAM
        with serve_in_thread(server):
            assert udp_echo(server.server_address, b"stressed") == b"desserts"
            assert udp_echo(server.server_address, b"abc") == b"cba"


def test_socketserver_style_unix_path(sockdir):
    path = os.path.join(sockdir, "inproc.sock")
    with netserver.Server(path, Upper, log_level=0, **SELF) as server:
        assert server.socket.family == socket.AF_UNIX
        assert server.server_address == path
        with serve_in_thread(server):
            assert exchange(path, b"unix\n", family=socket.AF_UNIX) == b"UNIX\n"
    assert not os.path.exists(path)


def test_unix_listener_in_process_via_port_option(sockdir):
    path = os.path.join(sockdir, "inproc.sock")
    with netserver.Server(("127.0.0.1", 0), Upper, log_level=0, port=f"{path}|unix", **SELF) as server:
        assert server.socket.family == socket.AF_UNIX
        assert server.server_address == path
        with serve_in_thread(server):
            assert exchange(path, b"unix\n", family=socket.AF_UNIX) == b"UNIX\n"
    assert not os.path.exists(path)


IDENTITY_SCRIPT = """
import os, socket, socketserver, sys, threading
import netserver


class Who(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"%d\\n" % os.geteuid())


server = netserver.Server(("127.0.0.1", 0), Who, log_level=0)
thread = threading.Thread(target=server.serve_forever)
thread.start()
with socket.create_connection(server.server_address, timeout=10) as client:
    served_as = int(client.recv(100))
server.shutdown()
thread.join()
server.server_close()
print(served_as, os.geteuid())
"""


def test_socketserver_style_keeps_the_process_identity(tmp_path):
    """A stdlib-style server changes nobody's uid: the process (root included) stays who it was.

    Run in a child process: were the identity to change, it could not be changed back.
    """
    script = tmp_path / "who.py"
    script.write_text(IDENTITY_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT,
                            env=python_env(), cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(os.geteuid())] * 2, result.stderr


def test_failed_constructions_do_not_leak_fds():
    """CPython issue 22435: a failed bind must close the socket it made."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        address = busy.getsockname()
        fds_before = len(os.listdir("/proc/self/fd"))
        for _ in range(1024):
            with pytest.raises(OSError) as info:
                netserver.Server(address, Upper, log_level=0, **SELF)
            assert info.value.errno == errno.EADDRINUSE
        assert len(os.listdir("/proc/self/fd")) <= fds_before


def test_bind_error_message_names_the_errno_once():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        with pytest.raises(OSError) as info:
            netserver.Server(busy.getsockname(), Upper, log_level=0, **SELF)
    assert str(info.value).count("Errno") == 1, str(info.value)
