"""The benchmark's echo handler on the standard library's socketserver, and on netserver in its place.

    python benchmarks/peers/stdlib_echo.py tcp|forking|threading PORT [compat|mixin|imported]

With ``compat`` the same classes come from ``compat.socketserver`` (the
one-line upgrade); with ``mixin`` the process model is netserver's mixin
over the plain ``TCPServer`` (``ForkMixIn``, ``ThreadMixIn``; ``tcp`` stays
``TCPServer``): what the drop-in promise costs, measured against the class
it replaces.  With ``imported`` the class is the standard one and
``compat.socketserver`` is only imported: what netserver's modules in the
process cost by themselves (a fork copies and tears down the parent's
memory with every child).

``TCPServer`` (one connection at a time), ``ForkingTCPServer`` (a fork per
connection, stdlib's ``max_children`` 40) or ``ThreadingTCPServer`` (a
thread per connection), with the listen backlog raised from socketserver's
5 to the kernel's maximum, as netserver and Net::Server use: with 5, a
burst of 50 connects overflows the queue and measures SYN retransmits, not
the server.  Handler: read a line, write it back, close on EOF.
"""

import os
import socket
import socketserver
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


BASES = {
    "tcp": socketserver.TCPServer,
    "forking": socketserver.ForkingTCPServer,
    "threading": socketserver.ThreadingTCPServer,
}


def base(kind, variant):
    """The class ``kind`` names, for ``variant``; only that one is built (a program using
    ForkMixIn alone never imports ThreadMixIn's modules, so the benchmark must not either)."""
    if variant == "imported":
        import compat.socketserver  # noqa: F401 - loaded, never used

        return BASES[kind]
    if variant == "compat":
        import compat.socketserver as upgraded

        return {"tcp": upgraded.TCPServer, "forking": upgraded.ForkingTCPServer,
                "threading": upgraded.ThreadingTCPServer}[kind]
    if variant == "mixin" and kind == "forking":
        import netserver

        class Forking(netserver.ForkMixIn, socketserver.TCPServer):
            max_servers = 40  # ForkingMixIn's max_children

        return Forking
    if variant == "mixin" and kind == "threading":
        import netserver

        class Threading(netserver.ThreadMixIn, socketserver.TCPServer):
            max_servers = 1024  # ThreadingMixIn has no bound; more than the benchmark's clients

        return Threading
    return BASES[kind]


def main():
    variant = sys.argv[3] if len(sys.argv) == 4 else "stdlib"
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in BASES or variant not in ("stdlib", "compat", "mixin", "imported"):
        sys.exit(__doc__)

    class Server(base(sys.argv[1], variant)):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = socket.SOMAXCONN

    Server(("127.0.0.1", int(sys.argv[2])), Echo).serve_forever()


if __name__ == "__main__":
    main()
