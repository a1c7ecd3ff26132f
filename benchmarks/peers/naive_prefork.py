"""A naive hand-written pre-forking pool: what Python costs before any engine.

    python benchmarks/peers/naive_prefork.py PORT [WORKERS [MAX_REQUESTS]]

The parent binds 127.0.0.1:PORT with the kernel's maximum backlog and forks
WORKERS (default 8, Net::Server PreFork's ``max_servers`` in this benchmark)
children; each blocks in ``accept()`` on the shared socket (the kernel wakes
one per connection) and runs the same ``StreamRequestHandler`` echo as every
peer.  No scoreboard, no signals beyond TERM, no access control, no logging:
the floor netserver PreFork's features are measured against.

With MAX_REQUESTS (0, the default: never) a child exits after that many
connections and the parent forks its replacement at once: what recycling
costs a pool with nothing else in it, against netserver's at its default
``max_requests`` (docs/performance.md).
"""

import os
import signal
import socket
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = socket.SOMAXCONN


def work(server, limit):
    served = 0
    while not limit or served < limit:
        try:
            request, address = server.get_request()
        except OSError:
            continue
        served += 1
        try:
            server.finish_request(request, address)
        except Exception:
            pass
        server.shutdown_request(request)


def main():
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__)
    server = Server(("127.0.0.1", int(sys.argv[1])), Echo)
    workers = int(sys.argv[2]) if len(sys.argv) >= 3 else 8
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    children = set()

    def fork_child():
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a replacement must not run the parent's stop
            try:
                work(server, limit)
            finally:
                os._exit(0)
        children.add(pid)

    for _ in range(workers):
        fork_child()

    def stop(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            return
        children.discard(pid)
        if limit:
            fork_child()


if __name__ == "__main__":
    main()
