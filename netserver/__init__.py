"""netserver: Net::Server's server engine for Python, as an extension of socketserver.

Public surface only; see the modules for the parts.
"""

from .handlers import EchoHandler
from .options import Option, OptionError
from .personalities.inet import INET
from .personalities.multitype import MultiType
from .server import Server, ServerError, Single

__version__ = "0.1.0"

__all__ = [
    "EchoHandler",
    "INET",
    "MultiType",
    "Option",
    "OptionError",
    "Server",
    "ServerError",
    "Single",
    "__version__",
]
