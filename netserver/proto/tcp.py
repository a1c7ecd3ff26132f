"""TCP: a stream socket over IPv4 or IPv6."""

from __future__ import annotations

from .listener import Listener

__all__ = ["TCP"]


class TCP(Listener):
    """The default protocol; nothing to add to :class:`Listener`."""

    proto = "tcp"
    label = "TCP"
