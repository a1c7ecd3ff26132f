"""``socketserver``, backed by netserver: change one import, gain Net::Server.

    import compat.socketserver as socketserver

Every public name of the standard module is here.  ``TCPServer``,
``UDPServer``, ``UnixStreamServer``, ``UnixDatagramServer`` are
:class:`netserver.SingleMixIn` over the standard classes, with exactly their
public names; ``ForkingMixIn``, ``ThreadingMixIn``, the request handlers and
``BaseServer`` are the standard ones, and the ready-made combinations are
built from these as the standard module builds them.  What a server gains
(options from keywords, class attributes, a ``conf_file`` and — with
``command_line = True`` — the command line; access control; netserver's
log, pid file, privilege drop, daemonizing; several listeners through
``port``; signals handled in the loop) and what it never changes is the
contract in docs/compat.md.  New names: ``PreForkMixIn``,
``PreForkSimpleMixIn``, ``PreForkingTCPServer``, ``PreForkingUDPServer``,
``PreForkingUnixStreamServer``, ``PreForkingUnixDatagramServer``.

The one deliberate difference: the servers' ``__module__`` is this module,
so CPython's bookkeeping test ``MiscTestCase.test_all`` (``__all__`` lists
exactly the objects whose ``__module__`` is ``socketserver``) does not
apply.
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
)
import netserver

_SocketWriter = _stdlib._SocketWriter  # type: ignore[attr-defined]  # private, so not in typeshed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netserver.host import StdlibHost

    _Bound = _stdlib.TCPServer  # what _Listeners extends at run time: the standard class after it
else:
    _Bound = object

__all__ = list(_stdlib.__all__)
__version__ = _stdlib.__version__  # type: ignore[attr-defined]  # not in typeshed
_ServerSelector = _stdlib._ServerSelector  # type: ignore[attr-defined]  # private, but subclasses use it


class _Listeners(netserver.SingleMixIn, _Bound):
    """Bind ``server_address`` as the standard class does, or the listeners a ``port`` option names."""

    _binds_listeners = True
    if TYPE_CHECKING:
        _host: StdlibHost  # a compat server's host is always its private StdlibHost

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

    if hasattr(_stdlib, "ForkingUnixStreamServer"):  # Python 3.12+: the same names as the standard module
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            pass

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            pass


if TYPE_CHECKING:  # for type checkers; at run time these are made by __getattr__ below
    from netserver import PreForkMixIn, PreForkSimpleMixIn  # noqa: F401

    class PreForkingTCPServer(PreForkMixIn, TCPServer): ...
    class PreForkingUDPServer(PreForkMixIn, UDPServer): ...
    class PreForkingUnixStreamServer(PreForkMixIn, UnixStreamServer): ...
    class PreForkingUnixDatagramServer(PreForkMixIn, UnixDatagramServer): ...

# The preforking names load the pool machinery on first use (PEP 562): a program that never
# asks for them does not carry it in every forked child (issue 12).
_PREFORKING = {"PreForkingTCPServer": "TCPServer", "PreForkingUDPServer": "UDPServer",
               "PreForkingUnixStreamServer": "UnixStreamServer",
               "PreForkingUnixDatagramServer": "UnixDatagramServer"}


def __getattr__(name: str):
    if name in ("PreForkMixIn", "PreForkSimpleMixIn"):
        value = getattr(netserver, name)
    elif name in _PREFORKING and _PREFORKING[name] in globals():
        value = type(name, (netserver.PreForkMixIn, globals()[_PREFORKING[name]]), {"__module__": __name__})
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | {"PreForkMixIn", "PreForkSimpleMixIn"}
                  | {name for name, base in _PREFORKING.items() if base in globals()})
