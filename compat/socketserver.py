"""``socketserver``, backed by netserver: change one import, gain Net::Server.

    import compat.socketserver as socketserver

Every public name of the standard module is here and behaves as it does
there — the constructor binds ``server_address`` exactly as ``TCPServer``
does, ``ForkingMixIn``/``ThreadingMixIn`` keep ``max_children``,
``block_on_close``, ``daemon_threads`` and their reaping — while the
servers are netserver servers: options from keyword arguments, the command
line and a ``conf_file`` (``--port`` moves the server; ``--cidr_allow``,
``--log_file``, ``--user``, ``--background``, ``--pid_file`` … all work),
access control in ``verify_request``, signals handled in the loop, and a
``shutdown()`` that takes effect at once.  New names: ``PreForkMixIn``,
``PreForkSimpleMixIn``, ``PreForkingTCPServer``, ``PreForkingUDPServer``,
``PreForkingUnixStreamServer``, ``PreForkingUnixDatagramServer``.

The one deliberate difference: the servers' ``__module__`` is this module,
so CPython's bookkeeping test ``MiscTestCase.test_all`` (``__all__`` lists
exactly the objects whose ``__module__`` is ``socketserver``) does not
apply.  docs/compat.md says more.
"""

from __future__ import annotations

import os
import socket
import socketserver as _stdlib
from socketserver import (  # noqa: F401 - the standard names that need no netserver
    BaseRequestHandler,
    BaseServer,
    DatagramRequestHandler,
    ForkingMixIn,
    StreamRequestHandler,
    ThreadingMixIn,
    _SocketWriter,
)
import netserver

__all__ = list(_stdlib.__all__)


class _Listeners(netserver.SingleMixIn):
    """Bind ``server_address`` as the standard class does, or the listeners a ``port`` option names."""

    _binds_listeners = True

    def server_bind(self) -> None:
        host = self._host
        if host.port_given():
            self.socket.close()
            first = host.bind_listeners()
            self.socket = first.socket
            self.server_address = first.address
            return
        super().server_bind()

    def server_activate(self) -> None:
        if not self._host.port_given():
            super().server_activate()


class TCPServer(_Listeners, _stdlib.TCPServer):
    """``socketserver.TCPServer`` with netserver inside.

    Its public names are exactly the standard class's.  ``server_address``
    is bound as the standard class binds it, unless a ``port`` option
    (keyword, class attribute, ``conf_file``, or the command line with
    ``command_line = True``) names the listeners instead — several ports,
    UNIX sockets, TLS.
    """


class UDPServer(_Listeners, _stdlib.UDPServer):
    """``socketserver.UDPServer`` with netserver inside: a request is ``(data, socket)``."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    pass


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    pass


class PreForkingTCPServer(netserver.PreForkMixIn, TCPServer):
    pass


class PreForkingUDPServer(netserver.PreForkMixIn, UDPServer):
    pass


PreForkMixIn = netserver.PreForkMixIn
PreForkSimpleMixIn = netserver.PreForkSimpleMixIn

if hasattr(os, "fork"):
    class ForkingUDPServer(ForkingMixIn, UDPServer):
        pass

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        pass

if hasattr(socket, "AF_UNIX"):
    class UnixStreamServer(TCPServer):
        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        address_family = socket.AF_UNIX

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        pass

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        pass

    class PreForkingUnixStreamServer(netserver.PreForkMixIn, UnixStreamServer):
        pass

    class PreForkingUnixDatagramServer(netserver.PreForkMixIn, UnixDatagramServer):
        pass

    if hasattr(os, "fork"):
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            pass

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            pass
