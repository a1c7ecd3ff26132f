"""netserver: Net::Server's server engine for Python, as an extension of socketserver.

Public surface only; see the modules for the parts.
"""

from .engine import ServerError
from .version import __version__
from .handlers import EchoHandler
from .options import Option, OptionError
from .personalities.fork import Fork, ForkMixIn
from .personalities.inet import INET
from .personalities.multiplex import Multiplex, MultiplexMixIn, MuxEchoHandler, MuxHandler
from .personalities.base import SingleMixIn
from .personalities.multitype import MultiType
from .personalities.prefork import PreFork, PreForkMixIn
from .personalities.preforksimple import PreForkSimple, PreForkSimpleMixIn
from .personalities.thread import Thread, ThreadMixIn
from .server import Server, Single


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
