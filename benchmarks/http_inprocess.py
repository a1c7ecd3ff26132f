"""The Python cost of one keep-alive HTTP request, without the kernel: µs per request.

    python benchmarks/http_inprocess.py [--requests 50000] [--rounds 5]

Runs netserver's ``HTTPRequestHandler`` on an in-memory connection that
hands it one ``GET /`` at a time (as wrk sends them) and swallows the
responses, with the app of ``benchmarks/hello_wsgi.py``.  No sockets and no
system calls: what is left is the handler, the parser, the environ, the app
call and the response head — the part of a request's cost that the code
decides.  Prints the best of ``--rounds`` (the least disturbed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from netserver.http import HTTP  # noqa: E402

REQUEST = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")


class MemoryConnection:
    """recv() gives one request per call, ``count`` times, then EOF; sendall() keeps the byte count."""

    def __init__(self, count: int):
        self.left = count
        self.sent = 0
        self.timeout = None

    def recv(self, size: int) -> bytes:
        if not self.left:
            return b""
        self.left -= 1
        return REQUEST

    def sendall(self, data: bytes) -> None:
        self.sent += len(data)

    def settimeout(self, timeout):
        self.timeout = timeout

    def gettimeout(self):
        return self.timeout

    def getsockname(self):
        return ("127.0.0.1", 8080)

    def fileno(self) -> int:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = HTTP()
    server.configure({}, argv=["--app", "hello_wsgi:app", "--log_level", "0"])
    server.post_configure = None  # nothing to open: only the settings
    from netserver.http import HTTPSettings
    server.http = HTTPSettings(server)
    server.client = None
    handler_class = server._default_handler
    best = None
    for _ in range(args.rounds):
        conn = MemoryConnection(args.requests)
        started = time.process_time()
        handler_class(conn, ("127.0.0.1", 40000), server)
        elapsed = time.process_time() - started
        assert conn.sent > 100 * args.requests, conn.sent
        best = elapsed if best is None else min(best, elapsed)
    print(f"{best * 1e6 / args.requests:.2f} µs per keep-alive request (best of {args.rounds} x {args.requests})")


if __name__ == "__main__":
    main()
