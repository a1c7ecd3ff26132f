"""The benchmark's echo handler on the standard library's socketserver.

    python benchmarks/peers/stdlib_echo.py tcp|forking|threading PORT

``TCPServer`` (one connection at a time), ``ForkingTCPServer`` (a fork per
connection, stdlib's ``max_children`` 40) or ``ThreadingTCPServer`` (a
thread per connection), with the listen backlog raised from socketserver's
5 to the kernel's maximum, as netserver and Net::Server use: with 5, a
burst of 50 connects overflows the queue and measures SYN retransmits, not
the server.  Handler: read a line, write it back, close on EOF.
"""

import socket
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


BASES = {
    "tcp": socketserver.TCPServer,
    "forking": socketserver.ForkingTCPServer,
    "threading": socketserver.ThreadingTCPServer,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in BASES:
        sys.exit(__doc__)

    class Server(BASES[sys.argv[1]]):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = socket.SOMAXCONN

    Server(("127.0.0.1", int(sys.argv[2])), Echo).serve_forever()


if __name__ == "__main__":
    main()
