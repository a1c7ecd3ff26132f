"""A naive hand-written pre-forking pool: what Python costs before any engine.

    python benchmarks/peers/naive_prefork.py PORT [WORKERS]

The parent binds 127.0.0.1:PORT with the kernel's maximum backlog and forks
WORKERS (default 8, Net::Server PreFork's ``max_servers`` in this benchmark)
children; each blocks in ``accept()`` on the shared socket (the kernel wakes
one per connection) and runs the same ``StreamRequestHandler`` echo as every
peer.  No scoreboard, no signals beyond TERM, no respawn, no access control,
no logging: the floor netserver PreFork's features are measured against.
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


def work(server):
    while True:
        try:
            request, address = server.get_request()
        except OSError:
            continue
        try:
            server.finish_request(request, address)
        except Exception:
            pass
        server.shutdown_request(request)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    server = Server(("127.0.0.1", int(sys.argv[1])), Echo)
    workers = int(sys.argv[2]) if len(sys.argv) == 3 else 8
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                work(server)
            finally:
                os._exit(0)
        children.append(pid)

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
            os.wait()
        except ChildProcessError:
            return


if __name__ == "__main__":
    main()
