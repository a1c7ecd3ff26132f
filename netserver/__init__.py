"""netserver: Net::Server's server engine for Python, as an extension of socketserver.

Public surface only; see the modules for the parts.
"""

from .engine import ServerError
from .version import __version__
from .handlers import EchoHandler
from .options import Option, OptionError
from .personalities.fork import Fork, ForkMixIn
from .personalities.base import SingleMixIn
from .personalities.prefork import PreFork, PreForkMixIn
from .personalities.preforksimple import PreForkSimple, PreForkSimpleMixIn
from .server import Server, Single

# Imported on first use (PEP 562), so that a program using one personality does not load the
# others: start-up time, and memory every forked child would share (issue 15).
_LAZY = {
    "INET": "inet", "MultiType": "multitype", "Thread": "thread", "ThreadMixIn": "thread",
    "Multiplex": "multiplex", "MultiplexMixIn": "multiplex", "MuxEchoHandler": "multiplex", "MuxHandler": "multiplex",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".personalities.{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "EchoHandler",
    "Fork",
    "ForkMixIn",
    "INET",
    "MultiType",
    "Multiplex",
    "MultiplexMixIn",
    "MuxEchoHandler",
    "MuxHandler",
    "Option",
    "OptionError",
    "PreFork",
    "PreForkMixIn",
    "PreForkSimple",
    "PreForkSimpleMixIn",
    "Server",
    "ServerError",
    "Single",
    "SingleMixIn",
    "Thread",
    "ThreadMixIn",
    "__version__",
]
