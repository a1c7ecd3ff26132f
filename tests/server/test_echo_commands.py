"""The echo handler's Net::Server commands: ``get NAME``, ``dump``, ``exit`` (and ``quit``)."""

from __future__ import annotations

import socket

import pytest

from harness import TIMEOUT, ServerProcess


def converse(port, lines):
    """Send the lines (then ``quit``, unless the last is ``exit``); everything until the server closes."""
    if lines[-1] != b"exit":
        lines = [*lines, b"quit"]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(b"".join(line + b"\r\n" for line in lines))
        reply = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return reply.decode()
            reply += data


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
