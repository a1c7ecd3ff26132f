"""Drop-in modules named like the standard ones, backed by netserver.

``import compat.socketserver as socketserver`` upgrades one script.  A
program whose libraries import ``socketserver`` or ``http.server``
themselves (Werkzeug, dnslib, sshtunnel, ``xmlrpc.server``,
``wsgiref.simple_server``…) upgrades them all with :func:`install`, called
before those libraries are imported.
"""

from __future__ import annotations

import sys

__all__ = ["install"]

_CONSUMERS = ("xmlrpc.server", "wsgiref.simple_server", "logging.config")


def install() -> None:
    """Make ``import socketserver`` and ``import http.server`` give the compat modules, process-wide.

    Call it first thing: a module that already imported the standard ones
    keeps them (``RuntimeError`` says which, for the stdlib's own users).
    """
    import http

    from . import http_server, socketserver

    early = [name for name in _CONSUMERS if name in sys.modules
             and getattr(sys.modules[name], "socketserver", socketserver) is not socketserver]
    sys.modules["socketserver"] = socketserver
    sys.modules["http.server"] = http_server
    http.server = http_server
    if early:
        raise RuntimeError(f"compat.install() came after {', '.join(early)} was imported; call it first")
