"""Clients of the echo handler: one exchange, or a connection held open to occupy a worker.

The echo handler greets with ``Welcome to "<personality>" (<pid>)``, so every
reply says which process served it.
"""

from __future__ import annotations

import collections
import re
import socket
import time
from typing import Optional

from harness import TIMEOUT, echo_exchange, read_all

GREETING = re.compile(rb'Welcome to "[^"]*" \((\d+)\)')


def greeting_pid(reply: bytes) -> int:
    match = GREETING.search(reply)
    assert match, f"no greeting in {reply!r}"
    return int(match.group(1))


def echo(port: int, line: bytes = b"hello", timeout: float = TIMEOUT) -> bytes:
    """One exchange with the echo handler on 127.0.0.1:``port``: ``line``, ``quit``, read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(line + b"\nquit\n")
        return read_all(sock)


def converse(port: int, lines, timeout: float = TIMEOUT) -> str:
    """Send ``lines`` (each ending CRLF, nothing added) to 127.0.0.1:``port``; the text received
    until the server closes, within ``timeout``."""
    return request(port, b"".join(line + b"\r\n" for line in lines), timeout).decode()


def request(port: int, data: bytes = b"", timeout: float = TIMEOUT) -> bytes:
    """Send ``data`` (if any) to 127.0.0.1:``port``; the bytes received until the server closes,
    within ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if data:
            sock.sendall(data)
        return read_all(sock, timeout)


def served(reply: bytes, line: bytes = b"hello") -> bool:
    return bool(GREETING.search(reply)) and b'You said "' + line + b'"' in reply


def complete_reply(reply: bytes, lines=(b"hello",)) -> bool:
    """An echo exchange that got the greeting and every echo, through ``quit``."""
    if not GREETING.search(reply):
        return False
    return all(b'You said "' + line + b'"\r\n' in reply for line in list(lines) + [b"quit"])


class HeldClient:
    """A connection to the echo handler held open: it occupies one worker until ``finish()``.

    ``address`` is a (host, port) pair, a port on 127.0.0.1, or a UNIX socket
    path.  ``greeted(timeout)`` says whether a worker has taken the connection
    (the echo handler greets first thing); a connection still in the kernel's
    accept queue gets no greeting.
    """

    def __init__(self, address, family: int = socket.AF_INET):
        if isinstance(address, int):
            address = ("127.0.0.1", address)
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(TIMEOUT)
            self.sock.connect(address)
        else:
            self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.buffer = b""
        self.pid: Optional[int] = None
        self.finished = False

    def greeted(self, timeout: float = TIMEOUT) -> bool:
        """Wait up to ``timeout`` for the greeting; remember the serving pid."""
        deadline = time.monotonic() + timeout
        while self.pid is None:
            match = GREETING.search(self.buffer)
            if match:
                self.pid = int(match.group(1))
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return False
            if not chunk:
                raise AssertionError(f"connection closed before the greeting: {self.buffer!r}")
            self.buffer += chunk
        return True

    def wait_greeted(self, timeout: float = TIMEOUT) -> int:
        assert self.greeted(timeout), f"not greeted within {timeout}s: {self.buffer!r}"
        return self.pid

    def finish(self, lines=(b"one", b"two")) -> bytes:
        """Send ``lines`` and ``quit``, read to EOF; returns all the connection received."""
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(b"".join(line + b"\n" for line in lines) + b"quit\n")
        self.buffer += read_all(self.sock)
        self.sock.close()
        self.finished = True
        return self.buffer

    def finish_checked(self, lines=(b"one", b"two")) -> bytes:
        """``finish()`` and check that every line was echoed (by the pid that greeted)."""
        reply = self.finish(lines)
        pid = greeting_pid(reply)
        for line in list(lines) + [b"quit"]:
            expected = b': You said "' + line + b'"\r\n'
            assert expected in reply, f"missing echo of {line!r} in {reply!r}"
        assert reply.count(f":{pid}: You said".encode()) == len(lines) + 1, reply
        return reply

    def close(self) -> None:
        self.sock.close()


class Held(HeldClient):
    """A held connection to 127.0.0.1:``port`` that ends with ``bye`` (the daemon tests' form)."""

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port))

    def finish(self, lines=(b"bye",)) -> bytes:
        return super().finish(lines)


def greeted_count(held, timeout: float = 0.01) -> int:
    """How many of the ``held`` clients a worker has taken (each waits up to ``timeout`` for its greeting)."""
    return sum(client.greeted(timeout) for client in held)


def finish_one_then_the_rest(held) -> None:
    """With every worker busy and a client waiting: finish one served client, then every other
    client is served (the waiting one within ``TIMEOUT``) and finishes."""
    first = next(client for client in held if client.pid)
    first.finish_checked()
    for client in held:
        if client is not first:
            client.wait_greeted()
            client.finish_checked()


def serving_pids(address, count: int) -> collections.Counter:
    """``count`` echo exchanges with ``address`` one after another, each checked complete; how many
    each serving pid answered."""
    served: collections.Counter = collections.Counter()
    for _ in range(count):
        reply = echo_exchange(address)
        assert complete_reply(reply), reply
        served[greeting_pid(reply)] += 1
    return served
