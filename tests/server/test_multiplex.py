"""Multiplex: one process, thousands of connections, callbacks, buffered writes, back-pressure."""

import contextlib
import os
import resource
import socket
import textwrap
import threading
import time

import pytest

from harness import TIMEOUT, ServerProcess, read_all
from waiting import wait_until

import netserver

pytestmark = pytest.mark.process  # some tests here start the server as a process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
        if target < wanted:
            pytest.skip(f"the fd limit here ({hard}) is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])


def line_client(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock, sock.makefile("rb")


def test_holds_5000_idle_connections_while_answering_an_active_client():
    raise_fd_limit(6000)
    with ServerProcess(["Multiplex", "--port", "127.0.0.1:0", "--user", "root"]) as server:
        idle = []
        try:
            for _ in range(5000):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT))
            wait_until(lambda: len(os.listdir(f"/proc/{server.pid}/fd")) >= 5000,
                       what="the one process to accept all 5000 connections")
            sock, rfile = line_client(server.port)
            with sock:
                assert rfile.readline().startswith(b'Welcome to "Multiplex"')
                slowest = 0.0
                for n in range(200):
                    started = time.monotonic()
                    sock.sendall(b"ping %d\n" % n)
                    assert rfile.readline() == b'Multiplex:%d: You said "ping %d"\r\n' % (server.pid, n)
                    slowest = max(slowest, time.monotonic() - started)
                # A responsiveness bound, not a benchmark: each answer comes while 5000 others wait.
                assert slowest < 1.0, slowest
            assert idle[-1].recv(64).startswith(b"Welcome")  # the idle ones were greeted too
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.slow
def test_a_client_that_never_reads_costs_memory_not_the_loop(tmp_path):
    """A peer that floods and never reads is throttled (back-pressure); others are still served."""
    script = tmp_path / "flood.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import netserver

        class Big(netserver.MuxHandler):
            def mux_input(self, data):
                del data[:]
                self.write(b"x" * 1048576)   # answers every read with 1 MiB

        netserver.Multiplex.run(Big, port="127.0.0.1:0", user="root")
    """))
    with ServerProcess([], script=str(script)) as server:
        base_kb = rss_kb(server.pid)
        flooder = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            flooder.settimeout(0.3)
            stop = time.monotonic() + 2.0  # flood for a bounded time, never reading
            while time.monotonic() < stop:
                try:
                    flooder.sendall(b"y" * 1024)
                except socket.timeout:
                    break  # the server stopped reading from us: back-pressure
            other, _ = line_client(server.port)
            with other:
                other.sendall(b"hi\n")
                assert len(other.recv(65536)) > 0  # served despite the flooder
            grown = rss_kb(server.pid) - base_kb
            # Unthrottled, every read of the flood (30+ of them) would buffer another MiB.
            assert grown < 16_000, f"the server grew by {grown} kB"
        finally:
            flooder.close()


@pytest.mark.slow
def test_callbacks_timeouts_and_eof(tmp_path):
    script = tmp_path / "chat.py"
    log = tmp_path / "events.log"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import netserver

        def note(text):
            with open({str(log)!r}, "a") as f:
                f.write(text + "\\n")

        class Chat(netserver.MuxHandler):
            def mux_connection(self):
                note("connection")
                self.set_timeout(0.5)
                self.write(b"hello\\n")
            def mux_input(self, data):
                while b"\\n" in data:
                    line, _, rest = bytes(data).partition(b"\\n")
                    del data[:len(line) + 1]
                    self.write(line.upper() + b"\\n")
            def mux_eof(self, data):
                note("eof " + bytes(data).decode())
                self.write(b"bye\\n")
            def mux_timeout(self):
                note("timeout")
                self.write(b"too slow\\n")
                self.close()
            def mux_close(self):
                note("close")

        netserver.Multiplex.run(Chat, port="127.0.0.1:0", user="root")
    """))
    with ServerProcess([], script=str(script)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        sock.sendall(b"one\ntwo\npartial")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b"hello\nONE\nTWO\nbye\n"
        sock.close()
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        assert read_all(slow) == b"hello\ntoo slow\n"  # set_timeout fired, then the close
        slow.close()
        wait_until(lambda: log.read_text().count("close") >= 2, what="both connections' mux_close")
        events = log.read_text().split("\n")
        assert events[:3] == ["connection", "eof partial", "close"]
        assert events[3:6] == ["connection", "timeout", "close"]


def test_udp_and_access_control():
    with ServerProcess(["Multiplex", "--port", "127.0.0.1:0/udp", "--port", "127.0.0.1:0",
                        "--cidr_deny", "127.0.0.2/32", "--cidr_allow", "127.0.0.0/8", "--user", "root"], bindings=2) as server:
        udp_port = next(p for proto, p, _ in server.bindings if proto == "UDP")
        tcp_port = next(p for proto, p, _ in server.bindings if proto == "TCP")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.sendto(b"datagram\n", ("127.0.0.1", udp_port))
            assert udp.recvfrom(1024)[0] == b'Multiplex:%d: You said "datagram"\r\n' % server.pid
        denied = socket.socket()
        denied.bind(("127.0.0.2", 0))
        denied.settimeout(TIMEOUT)
        denied.connect(("127.0.0.1", tcp_port))
        assert read_all(denied) == b""  # closed without a greeting
        denied.close()
        server.wait_for(r"Denying connection from \[127\.0\.0\.2\]")


class UDPMultiplex(netserver.Multiplex):
    socket_type = socket.SOCK_DGRAM


@contextlib.contextmanager
def serving_in_a_thread(server):
    """``server.serve_forever()`` in a thread for the ``with`` block; a UDP client bound to nothing."""
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    loop.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            yield client
    finally:
        server.shutdown()
        loop.join(TIMEOUT)
        server.server_close()
    assert not loop.is_alive()


def test_a_datagram_handler_that_fails_or_closes_ends_only_its_datagram():
    """A datagram's connection shares its listener's socket: a handler that raises or calls close()
    ends that datagram, with one mux_close (the listener was closed and the port went deaf)."""
    events = []

    class Picky(netserver.MuxHandler):
        def mux_input(self, data):
            text = bytes(data)
            del data[:]
            events.append(("input", text))
            if text == b"boom":
                raise RuntimeError("boom")
            self.write(b"ok:" + text)
            if text == b"close":
                self.close()

        def mux_eof(self, data):
            events.append(("eof",))

        def mux_close(self):
            events.append(("close",))

    class Recording(UDPMultiplex):
        def handle_error(self, request, client_address):
            events.append(("error",))

    server = Recording(("127.0.0.1", 0), Picky, log_level=0)
    with serving_in_a_thread(server) as client:
        for text in (b"boom", b"close", b"again"):
            client.sendto(text, server.server_address)
        assert client.recvfrom(64)[0] == b"ok:close"
        assert client.recvfrom(64)[0] == b"ok:again"
        wait_until(lambda: len(events) == 8, what="the last datagram's mux_close")
        assert events == [("input", b"boom"), ("error",), ("close",),
                          ("input", b"close"), ("close",),
                          ("input", b"again"), ("eof",), ("close",)]
        assert server.socket.fileno() != -1


def test_a_datagram_handler_may_answer_from_mux_close():
    """docs/multiplex.md: write() answers the sender -- in mux_close too, the datagram's last callback."""

    class Summary(netserver.MuxHandler):
        def mux_input(self, data):
            self.seen = bytes(data)
            del data[:]

        def mux_close(self):
            self.write(b"closing after " + self.seen)

    server = UDPMultiplex(("127.0.0.1", 0), Summary, log_level=0)
    with serving_in_a_thread(server) as client:
        client.sendto(b"ping", server.server_address)
        assert client.recvfrom(64)[0] == b"closing after ping"


def test_refuses_a_stream_handler(tmp_path):
    script = tmp_path / "wrong.py"
    script.write_text(textwrap.dedent(f"""
        import socketserver, sys
        sys.path.insert(0, {ROOT!r})
        import netserver
        netserver.Multiplex.run(socketserver.StreamRequestHandler, port="127.0.0.1:0", user="root")
    """))
    server = ServerProcess([], script=str(script), wait=False)
    with server:
        assert server.wait_exit() != 0
        assert "Multiplex serves MuxHandler subclasses" in server.log_text()


@pytest.mark.parametrize("options, refusal", [
    ('proxy_protocol="v1", proxy_allow=["127.0.0.1/32"]', "Multiplex does not read PROXY protocol headers"),
    ('port="127.0.0.1:0/ssl", SSL_cert_file=CERT, SSL_key_file=CERT', "Multiplex does not run TLS handshakes"),
])
def test_refuses_what_it_would_otherwise_ignore(tmp_path, options, refusal):
    """A PROXY header would reach mux_input (and the rules would judge the proxy); TLS would arrive raw."""
    trustme = pytest.importorskip("trustme")
    cert = tmp_path / "server.pem"
    trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(cert))
    script = tmp_path / "refused.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import netserver
        CERT = {str(cert)!r}
        kwargs = dict(port="127.0.0.1:0")
        kwargs.update(dict({options}))
        netserver.Multiplex.run(**kwargs)
    """))
    server = ServerProcess([], script=str(script), wait=False)
    with server:
        assert server.wait_exit() != 0
        assert refusal in server.log_text()
