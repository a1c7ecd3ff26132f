"""Fork: a child per connection, at most ``max_servers`` at once.

The parent accepts and forks; the child runs the whole connection flow
(``post_accept_hook``, access control, the handler) and exits.  At
``max_servers`` the parent stops accepting until a child exits, leaving new
connections in the kernel's queue rather than forking without bound.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from ..options import Option
from ..options.validators import to_int
from ..server import Server
from .forking import ProcessParentMixIn

__all__ = ["ForkMixIn", "Fork"]


class ForkMixIn(ProcessParentMixIn):
    """Fork per connection (see the module docstring)."""

    personality = "Fork"
    pool_kinds = ("fork",)

    OPTIONS = (
        Option("max_servers", to_int(1), 256, section="Fork", metavar="N",
               doc="Most children serving at once; the server stops accepting at this number."),
    )

    def accepting(self) -> bool:
        return self.children.count("fork") < self.max_servers_now()

    def serve_from(self, token: Any) -> None:
        """Accept in the parent, serve in a new child."""
        self.pre_accept_hook()
        try:
            request, client_address = self.accept_from(token)
        except OSError:
            return
        pid = self.fork_child("fork", lambda: self._serve_in_child(request, client_address))
        if pid is None:
            self.shutdown_request(request)
        else:
            self.close_request(request)  # the child has its own copy

    def _handle_request_noblock(self) -> None:
        self.serve_from(self.listening()[0][1])

    def child_prepare(self) -> None:
        super().child_prepare()
        for sig in (signal.SIGHUP, signal.SIGQUIT):  # this connection is finished whatever happens
            signal.signal(sig, signal.SIG_IGN)

    def _serve_in_child(self, request: Any, client_address: Any) -> None:
        reply_socket = request[1] if isinstance(request, tuple) else None
        for sock, _ in self.listening():
            if sock is not reply_socket:  # a datagram is answered on the socket it came in on
                sock.close()  # the child never accepts (and never removes a socket file)
        self.handle_connection(request, client_address)


class Fork(ForkMixIn, Server):
    """Net::Server's Fork over every listener."""

    @classmethod
    def available(cls) -> bool:
        return hasattr(os, "fork")
