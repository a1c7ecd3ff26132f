"""The personalities by name, loaded on demand.

The command line and ``MultiType``'s ``server_type`` name personalities;
this table maps each name to where its class lives.  A personality whose
module is missing, or whose ``available()`` says no (no ``fork`` on this
platform, say), is reported as unavailable rather than failing the import.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple, Type

    from ..server import Server

__all__ = ["PERSONALITIES", "canonical_name", "load", "LoadError"]

PERSONALITIES: Dict[str, str] = {
    "Single": "netserver.server:Server",
    "INET": "netserver.personalities.inet:INET",
    "MultiType": "netserver.personalities.multitype:MultiType",
    "Fork": "netserver.personalities.fork:Fork",
    "PreForkSimple": "netserver.personalities.preforksimple:PreForkSimple",
    "PreFork": "netserver.personalities.prefork:PreFork",
    "Thread": "netserver.personalities.thread:Thread",
    "Multiplex": "netserver.personalities.multiplex:Multiplex",
    "HTTP": "netserver.http:HTTP",
}

_ALIASES = {"server": "Single", "psgi": "HTTP", "wsgi": "HTTP"}


class LoadError(LookupError):
    """A personality name that is unknown, or known but not usable here."""


def canonical_name(name: str) -> Optional[str]:
    """``prefork`` → ``PreFork``; ``None`` for a name that is not a personality."""
    lowered = str(name).strip().lower()
    lowered = lowered.rpartition("::")[2]  # Net::Server::PreFork → prefork
    for known in PERSONALITIES:
        if known.lower() == lowered:
            return known
    return _ALIASES.get(lowered)


def load(name: str) -> Type[Server]:
    """The class for a personality name; :class:`LoadError` says why not."""
    canonical = canonical_name(name)
    if canonical is None:
        raise LoadError(f"unknown personality {name!r} (one of {', '.join(PERSONALITIES)})")
    module_name, attribute = PERSONALITIES[canonical].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"personality {canonical} is not available: {exc}") from None
    cls = getattr(module, attribute)
    usable, why = _available(cls)
    if not usable:
        raise LoadError(f"personality {canonical} is not available here: {why}")
    return cls


def _available(cls: type) -> Tuple[bool, str]:
    check = getattr(cls, "available", None)
    if check is None:
        return True, ""
    result = check()
    return (result, "") if isinstance(result, bool) else result
