"""``http.server``, backed by netserver: the standard servers on compat.socketserver.

    from compat.http_server import ThreadingHTTPServer, SimpleHTTPRequestHandler

``HTTPServer`` and ``ThreadingHTTPServer`` are the standard classes rebuilt
on :mod:`compat.socketserver` (so they gain netserver's options, access
control, logging, daemonisation and signals); ``PreForkingHTTPServer`` is
new.  The request handlers — ``BaseHTTPRequestHandler``,
``SimpleHTTPRequestHandler``, ``CGIHTTPRequestHandler`` — and every other
name are the standard module's, unchanged.
"""

from __future__ import annotations

import http.server as _stdlib
import socket

from . import socketserver as _socketserver

# Everything the standard module defines, handlers and helpers included.
globals().update({name: value for name, value in vars(_stdlib).items()
                  if not name.startswith("__") or name == "__all__"})

__all__ = list(_stdlib.__all__)


class HTTPServer(_socketserver.TCPServer, _stdlib.HTTPServer):
    """``http.server.HTTPServer`` on netserver: a subclass of both it and compat's ``TCPServer``
    (``isinstance`` checks hold, with ``compat.install()`` too)."""

    def server_bind(self) -> None:
        """Bind, then remember the server's name and port (as the standard class does)."""
        if not self._host.port_given():
            super().server_bind()  # the standard HTTPServer's: TCPServer's bind, then the names
            return
        _socketserver._Listeners.server_bind(self)  # the listeners a ``port`` option names
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(host)
        self.server_port = port


class ThreadingHTTPServer(_socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True


class PreForkingHTTPServer(_socketserver.PreForkMixIn, HTTPServer):
    pass


def test(HandlerClass=_stdlib.BaseHTTPRequestHandler, ServerClass=ThreadingHTTPServer, protocol="HTTP/1.0",
         port=8000, bind=None):
    """``python -m compat.http_server``: the standard ``test()`` with netserver's server."""
    return _stdlib.test(HandlerClass, ServerClass, protocol, port, bind)



def _main(argv=None) -> None:
    """``python -m compat.http_server [-b ADDRESS] [-d DIR] [--cgi] [PORT]``, as ``python -m http.server``."""
    import argparse
    import contextlib
    import os

    parser = argparse.ArgumentParser(prog="python -m compat.http_server")
    parser.add_argument("--cgi", action="store_true", help="run as CGI server")
    parser.add_argument("-b", "--bind", metavar="ADDRESS", help="bind to this address (default: all interfaces)")
    parser.add_argument("-d", "--directory", default=os.getcwd(),
                        help="serve this directory (default: current directory)")
    parser.add_argument("-p", "--protocol", metavar="VERSION", default="HTTP/1.0",
                        help="conform to this HTTP version (default: %(default)s)")
    parser.add_argument("port", default=8000, type=int, nargs="?", help="bind to this port (default: %(default)s)")
    args = parser.parse_args(argv)
    handler_class = _stdlib.CGIHTTPRequestHandler if args.cgi else _stdlib.SimpleHTTPRequestHandler

    class DualStackServer(ThreadingHTTPServer):
        def server_bind(self) -> None:
            with contextlib.suppress(Exception):  # dual-stack unless the address is IPv4 (bpo-38907)
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

        def finish_request(self, request, client_address) -> None:
            self.RequestHandlerClass(request, client_address, self, directory=args.directory)

    test(HandlerClass=handler_class, ServerClass=DualStackServer, port=args.port, bind=args.bind,
         protocol=args.protocol)


if __name__ == "__main__":
    _main()
