"""The benchmark's echo handler on a netserver personality.

    python benchmarks/peers/netserver_echo.py PERSONALITY PORT [--option value ...]

PERSONALITY is PreFork, PreForkSimple, Fork, Thread or Multiplex.  The
handler greets nobody: it reads a line, writes the same line back, and
closes on EOF — a ``socketserver.StreamRequestHandler`` for the classic
personalities and a ``netserver.MuxHandler`` for Multiplex.  The server binds
127.0.0.1:PORT with ``user root`` and ``log_level 0``; the pools use the
sizes of the Perl peer (PreFork: 4..8 children, 2..6 spare, PreForkSimple:
8), with ``max_requests 0`` (no recycling).  Further words are netserver's
command line and override these (``--max_servers 1``), since the command
line outranks ``run()``'s arguments.
"""

import os
import socketserver
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import netserver  # noqa: E402


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class MuxEcho(netserver.MuxHandler):
    def mux_input(self, data):
        end = data.rfind(b"\n") + 1
        if end:
            self.write(bytes(data[:end]))
            del data[:end]


POOLS = {
    "PreFork": dict(min_servers=4, max_servers=8, min_spare_servers=2, max_spare_servers=6, max_requests=0),
    "PreForkSimple": dict(max_servers=8, max_requests=0),
}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    personality, port = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:3]  # the rest is netserver's command line
    server = getattr(netserver, personality)
    handler = MuxEcho if personality == "Multiplex" else Echo
    if "--defaults" in sys.argv:
        sys.argv.remove("--defaults")
        server.run(handler, port=port)
        return
    server.run(handler, port=port, host="127.0.0.1", ipv=4, user="root", log_level=0,
               **POOLS.get(personality, {}))


if __name__ == "__main__":
    main()
