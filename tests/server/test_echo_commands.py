"""The echo handler's Net::Server commands: ``get NAME``, ``dump``, ``exit`` (and ``quit``)."""

from __future__ import annotations

import socket

import client
import pytest

from harness import TIMEOUT, ServerProcess


def converse(port, lines):
    """Send the lines (then ``quit``, unless the last is ``exit``); everything until the server closes."""
    if lines[-1] != b"exit":
        lines = [*lines, b"quit"]
    return client.converse(port, lines)


@pytest.mark.parametrize("personality", ["Single", "PreFork", "Thread"])
def test_get_dump_and_exit(personality):
    args = [personality, "--port", "127.0.0.1:0", "--log_level", "3"]
    with ServerProcess(args) as server:
        text = converse(server.port, [b"get log_level", b"get peeraddr", b"get port", b"get nonesuch"])
        assert "log_level: 3\r\n" in text
        assert "peeraddr: 127.0.0.1\r\n" in text
        assert "port: 127.0.0.1:0\r\n" in text
        assert "nonesuch: \r\n" in text
        dumped = converse(server.port, [b"dump"])
        assert "port: 127.0.0.1:0\r\n" in dumped and "log_level: 3\r\n" in dumped
        assert "  get log_level" not in dumped
        # A command is a whole line: "please exit" is only echoed.
        assert 'You said "please exit"' in converse(server.port, [b"please exit"])
        assert server.proc.poll() is None
        text = converse(server.port, [b"exit"])
        assert "Stopping the server." in text
        assert server.wait_exit() == 0


def test_passwords_are_not_dumped(tmp_path):
    args = ["Single", "--port", "127.0.0.1:0", "--SSL_key_password", "sekrit"]
    with ServerProcess(args) as server:
        dumped = converse(server.port, [b"dump", b"get SSL_key_password"])
        assert "sekrit" not in dumped and "SSL_key_password: ***" in dumped


class _QuickEcho:
    """An in-process TCPServer with the echo handler and a 1 s line timeout (issue 14, finding 5)."""

    def __enter__(self):
        import socketserver
        import threading

        from netserver import EchoHandler

        handler = type("QuickEcho", (EchoHandler,), {"timeout": 1.0})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        return self.server.server_address[1]

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


@pytest.mark.slow
def test_a_line_must_arrive_whole_within_the_timeout_however_it_trickles():
    import time

    with _QuickEcho() as port, socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.recv(100)  # the welcome line
        started = time.monotonic()
        reply = b""
        while b"Timed Out." not in reply and time.monotonic() - started < 5:
            try:
                conn.sendall(b"x")  # a byte every 0.3 s: each recv is quick, the line never ends
            except OSError:
                break
            conn.settimeout(0.3)
            try:
                data = conn.recv(100)
            except socket.timeout:
                continue
            if not data:
                break
            reply += data
        assert b"Timed Out." in reply
        assert time.monotonic() - started < 2.5  # the line's deadline (1 s), not per recv


@pytest.mark.slow
def test_a_line_sent_in_pieces_within_the_timeout_is_echoed():
    import time

    with _QuickEcho() as port, socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.recv(100)
        for piece in (b"hel", b"lo\r", b"\nsecond\r\n"):
            conn.sendall(piece)
            time.sleep(0.2)  # pieces of a line, well inside its deadline
        reply = b""
        while reply.count(b"You said") < 2:
            reply += conn.recv(100)
        assert b'You said "hello"' in reply and b'You said "second"' in reply
