"""Listeners: how a socket is bound and how a request is taken from it.

``PROTOCOLS`` maps the names used in port specifications to listener
classes; a dotted path (``mypkg.protos:MyTCP``) names a class of your own.
"""

from __future__ import annotations

from .listener import BindError, Listener
from .spec import BUILTIN_PROTOS, PROTOCOL_ALIASES, is_dotted, known_protocol
from .tcp import TCP
from .ssl import SSL
from .udp import UDP
from .unix import UNIX
from .unixdgram import UNIXDGRAM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Type

__all__ = ["PROTOCOLS", "BindError", "Listener", "listener_class", "known_protocol", "protocol_options",
           "listener_for_socket"]

PROTOCOLS = {
    "tcp": TCP,
    "udp": UDP,
    "unix": UNIX,
    "unixdgram": UNIXDGRAM,
    "ssl": SSL,
}

ALIASES = PROTOCOL_ALIASES
assert set(PROTOCOLS) == BUILTIN_PROTOS, "spec.BUILTIN_PROTOS names every listener class here"
_is_dotted = is_dotted


def listener_class(name: str) -> Type[Listener]:
    """The listener class for a protocol name or dotted path."""
    lowered = name.lower()
    cls = PROTOCOLS.get(ALIASES.get(lowered, lowered))
    if cls is not None:
        return cls
    if _is_dotted(name):
        from ..options.validators import import_dotted

        cls = import_dotted(name)
        if isinstance(cls, type) and issubclass(cls, Listener):
            return cls
        raise ValueError(f"{name} is not a Listener class")
    raise ValueError(f"unknown protocol {name!r}")


def protocol_options() -> list:
    """The options every registered protocol declares (``OPTIONS`` on its class)."""
    options = []
    for cls in PROTOCOLS.values():
        options.extend(cls.__dict__.get("OPTIONS", ()))
    return options


def listener_for_socket(sock, config=None) -> Listener:
    """A listener around a socket bound elsewhere (socketserver-style binding, inherited fds)."""
    import socket as _socket

    from .resolve import BindTarget
    from .spec import PortSpec

    stream = sock.type == _socket.SOCK_STREAM
    cls: Type[Listener]
    if sock.family == _socket.AF_UNIX:
        cls = UNIX if stream else UNIXDGRAM
        address = sock.getsockname()
        address = address.decode() if isinstance(address, bytes) else address
        spec = PortSpec("*", address or "", cls.proto, "*")
        v6only = None
    else:
        cls = TCP if stream else UDP
        address = sock.getsockname()
        ipv = "6" if sock.family == _socket.AF_INET6 else "4"
        spec = PortSpec(address[0], address[1], cls.proto, ipv)
        v6only = None
    listener = cls(BindTarget(sock.family, address, v6only, spec), config)
    listener.socket = sock
    return listener
