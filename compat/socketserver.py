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
from typing import Any, Tuple

import netserver
from netserver.options import Source
from netserver.proto import listener_for_socket

__all__ = list(_stdlib.__all__)


class TCPServer(netserver.Server):
    """``socketserver.TCPServer`` on netserver.

    ``server_address`` is bound as the standard class binds it (an
    ``OverflowError`` for port -1, the same ``socket`` attribute between
    construction and ``server_bind()`` with ``bind_and_activate=False``),
    unless a ``port`` option (command line, conf file, keyword) says where
    to listen instead.
    """

    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    request_queue_size = 5
    allow_reuse_address = False
    allow_reuse_port = False
    handle_error = BaseServer.handle_error  # a traceback on stderr, as the standard servers print

    def __init__(self, server_address: Any, RequestHandlerClass: Any, bind_and_activate: bool = True,
                 **options: Any):
        super().__init__(server_address, RequestHandlerClass, bind_and_activate=False, **options)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def default_values(self) -> dict:
        return {"log_level": 1}  # as quiet as the standard servers unless asked

    def _address_options(self) -> dict:
        return {}  # server_address is bound as given; see server_bind

    def _port_given(self) -> bool:
        return self.config.source_of("port").kind != Source.DEFAULT

    def server_bind(self) -> None:
        if self._port_given():
            self.socket.close()
            netserver.Server.server_bind(self)
            return
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.listeners = [listener_for_socket(self.socket, self.config)]
        self.post_bind_hook()

    def server_activate(self) -> None:
        if self._port_given():
            netserver.Server.server_activate(self)
        else:
            self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        super().server_close()
        if self.socket is not None:
            self.socket.close()

    def accept_from(self, listener: Any) -> Tuple[Any, Any]:
        self._current_listener = listener
        return self.get_request()

    def get_request(self) -> Tuple[Any, Any]:
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        request.close()


class UDPServer(TCPServer):
    """``socketserver.UDPServer`` on netserver: a request is ``(data, socket)``."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self) -> Tuple[Any, Any]:
        data, client_addr = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self) -> None:
        if self._port_given():
            netserver.Server.server_activate(self)

    def shutdown_request(self, request: Any) -> None:
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        pass


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
