"""What is known about the connection being served (Net::Server's client properties).

Built once per connection on the hot path, so it only stores what accept()
already returned; the local address costs a ``getsockname()`` and is looked
up only when asked for.
"""

from __future__ import annotations


from .access import normalize_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["ClientInfo"]


class ClientInfo:
    """The peer and local ends of one connection.

    ``peeraddr``/``peerport``: the client (an IPv4-mapped address is shown in
    its IPv4 form); ``sockaddr``/``sockport``: the local end it connected to;
    ``peerhost``: its host name when ``reverse_lookups`` is on (``None``
    otherwise); ``host_confirmed``: whether that name resolves back to
    ``peeraddr``; ``listener``: the listener that took the connection.
    """

    __slots__ = ("request", "listener", "peeraddr", "peerport", "peerhost", "host_confirmed", "_sockname")

    def __init__(self, request: Any, client_address: Any, listener: Any = None):
        self.request = request
        self.listener = listener
        if isinstance(client_address, tuple):
            # The kernel's text is canonical already; only the IPv4-mapped prefix needs going.
            address = client_address[0]
            self.peeraddr = address[7:] if address.startswith("::ffff:") and "." in address else address
            self.peerport = client_address[1]
        else:  # UNIX sockets: the peer's path, usually empty
            self.peeraddr = client_address or ""
            self.peerport = None
        self.peerhost: Optional[str] = None
        self.host_confirmed = False
        self._sockname: Any = None

    @property
    def local_address(self) -> Any:
        """The local end as ``getsockname()`` gives it (``""`` if unknown), asked of the socket only
        when the listener's bound address is not it already (a wildcard bind)."""
        if self._sockname is None:
            listener = self.listener
            self._sockname = listener.local_address() if listener is not None else None
        if self._sockname is None:
            sock = self.request[1] if isinstance(self.request, tuple) else self.request
            try:
                self._sockname = sock.getsockname()
            except (OSError, AttributeError):
                self._sockname = ""
        return self._sockname

    @property
    def sockaddr(self) -> str:
        local = self.local_address
        return normalize_address(local[0]) if isinstance(local, tuple) else local

    @property
    def sockport(self) -> Any:
        local = self.local_address
        return local[1] if isinstance(local, tuple) else None

    def __str__(self) -> str:
        if self.peerport is None:
            return f"UNIX peer {self.peeraddr or '(unnamed)'}"
        host = f" ({self.peerhost})" if self.peerhost else ""
        return f"[{self.peeraddr}]:{self.peerport}{host}"
