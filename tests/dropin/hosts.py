"""The host classes of the drop-in tests: stdlib servers, a program's own subclass, netserver.Server.

Each entry builds a server class from a personality mixin and a host and
knows how to talk to it, so the namespace tests (in process) and the
matrix (one process per cell) share one table.
"""

from __future__ import annotations

import socketserver
from typing import Any, Dict, Tuple

import netserver

MIXINS = ("ForkMixIn", "PreForkSimpleMixIn", "PreForkMixIn", "ThreadMixIn", "MultiplexMixIn")

#: host name -> (import line, class expression, how clients talk to it)
HOSTS: Dict[str, Tuple[str, str, str]] = {
    "TCPServer": ("import socketserver", "socketserver.TCPServer", "line"),
    "UDPServer": ("import socketserver", "socketserver.UDPServer", "udp"),
    "UnixStreamServer": ("import socketserver", "socketserver.UnixStreamServer", "unix"),
    "ThreadingTCPServer": ("import socketserver", "socketserver.ThreadingTCPServer", "line"),
    "HTTPServer": ("import http.server", "http.server.HTTPServer", "http"),
    "SimpleXMLRPCServer": ("import xmlrpc.server", "xmlrpc.server.SimpleXMLRPCServer", "xmlrpc"),
    "WSGIServer": ("import wsgiref.simple_server", "wsgiref.simple_server.WSGIServer", "wsgi"),
    "OwnSubclass": ("import socketserver", "OwnServer", "line"),
    "netserver.Server": ("import netserver", "netserver.Server", "line"),
}

#: Mixins that decide where a request runs refuse a host that already decides it (ThreadingMixIn).
REFUSED = {(mixin, "ThreadingTCPServer") for mixin in MIXINS if mixin != "MultiplexMixIn"}


class OwnServer(socketserver.TCPServer):
    """A program's own server class that keeps names netserver must not touch."""

    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any):
        self.logger = "the program's logger"
        self.config = {"the": "program's config"}
        self.options = ["the program's options"]
        self.client = "the program's client"
        super().__init__(*args, **kwargs)

    def log(self, kind: str, message: str, *args: Any) -> str:  # Werkzeug's signature
        return f"{kind}: {message % args}"

    def run(self) -> str:
        return "the program's run"


PROGRAM_NAMES = {"logger": "the program's logger", "config": {"the": "program's config"},
                 "options": ["the program's options"], "client": "the program's client"}


def allowed_extra_names(cls: type) -> set:
    """Public names a mixin may add: its documented option attributes and their declarations,
    and the settings socketserver's own mixins have (``daemon_threads``, ``block_on_close``…)."""
    names = {"OPTIONS"}
    for stdlib_mixin in (socketserver.ThreadingMixIn, socketserver.ForkingMixIn):
        names |= {name for name in vars(stdlib_mixin) if not name.startswith("_")
                  and not callable(vars(stdlib_mixin)[name])}
    for klass in cls.__mro__:
        for option in vars(klass).get("OPTIONS", ()):
            names.add(getattr(option, "name", ""))
    return names


__all__ = ["HOSTS", "MIXINS", "REFUSED", "OwnServer", "PROGRAM_NAMES", "allowed_extra_names", "netserver"]
