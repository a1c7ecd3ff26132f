"""netserver: Net::Server's server engine for Python, as an extension of socketserver.

Public surface only; see the modules for the parts.
"""

from .version import __version__

TYPE_CHECKING = False


if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from .engine import ServerError
    from .handlers import EchoHandler
    from .options import Option, OptionError
    from .personalities.base import SingleMixIn
    from .personalities.fork import Fork, ForkMixIn
    from .personalities.inet import INET
    from .personalities.multiplex import Multiplex, MultiplexMixIn, MuxEchoHandler, MuxHandler
    from .personalities.multitype import MultiType
    from .personalities.prefork import PreFork, PreForkMixIn
    from .personalities.preforksimple import PreForkSimple, PreForkSimpleMixIn
    from .personalities.thread import Thread, ThreadMixIn
    from .server import Server, Single
    from .http import HTTP

# Every name is imported on first use (PEP 562): a program pays, in start-up time and in the
# memory every forked child copies, only for the parts it uses (issues 12 and 15).
_LAZY = {
    "ServerError": "engine", "EchoHandler": "handlers", "Option": "options", "OptionError": "options",
    "Server": "server", "Single": "server", "SingleMixIn": "personalities.base",
    "Fork": "personalities.fork", "ForkMixIn": "personalities.fork",
    "PreFork": "personalities.prefork", "PreForkMixIn": "personalities.prefork",
    "PreForkSimple": "personalities.preforksimple", "PreForkSimpleMixIn": "personalities.preforksimple",
    "INET": "personalities.inet", "MultiType": "personalities.multitype",
    "Thread": "personalities.thread", "ThreadMixIn": "personalities.thread",
    "Multiplex": "personalities.multiplex", "MultiplexMixIn": "personalities.multiplex",
    "MuxEchoHandler": "personalities.multiplex", "MuxHandler": "personalities.multiplex",
    "HTTP": "http",  # needs the http extra (httptools) when used
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "EchoHandler",
    "HTTP",
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
