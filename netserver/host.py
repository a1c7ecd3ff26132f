"""The seam between a personality mixin and the server class it sits on.

A personality (``PreForkMixIn``, ``ThreadMixIn``…) may sit on
``netserver.Server`` or on any socketserver class — ``TCPServer``,
``http.server.HTTPServer``, ``xmlrpc.server.SimpleXMLRPCServer``,
``wsgiref.simple_server.WSGIServer``, a program's own subclass.  Whatever it
needs from that class it asks of one object, ``self._host``, and
:class:`~netserver.contract.Host` (netserver/contract.py) lists all of it.

- Over ``netserver.Server`` the host is the server itself: its options,
  log and hooks are the Net::Server API the subclass opted into.
- Over any other class the host is a :class:`StdlibHost`: a private
  companion that holds netserver's options, log, access rules, pid file and
  identity, runs Net::Server's start-up steps, and calls a Net::Server hook
  only when the program's class defines one.  The program's object gains no
  public name and none of its names (``log``, ``logger``, ``config``,
  ``options``, ``run``, ``client``…) is read, called or overwritten.

Options reach a stdlib host from keyword arguments its ``__init__`` does not
take itself, from class attributes of netserver-aware classes (the
program's subclass of a mixin or of a compat class), from ``conf_file``,
and from the command line only when the class says ``command_line = True``.
An option such a host cannot honour is refused when the server is built.
"""

from __future__ import annotations

import socketserver


from .hooks import HookMixIn, fitted_to
from .engine import Engine
from .options import Config, OptionError, Source, declared_options
from .proto import listener_for_socket
from .server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Tuple

    from .contract import Host

__all__ = ["StdlibHost", "HOOKS", "host_class", "host_init", "own_keywords", "refused_keywords"]

#: The Net::Server hooks, by name (``HookMixIn`` declares each, in flow order).
HOOKS = tuple(name for name, value in vars(HookMixIn).items() if callable(value) and not name.startswith("_"))

#: Options that say where to listen: a stdlib host binds ``server_address`` itself.
BINDING_OPTIONS = ("port", "host", "proto", "ipv", "listen", "reuse_port")

#: Access rules: as class attributes of a class that takes none, worth a warning (see configure_owner).
ACCESS_OPTIONS = ("allow", "deny", "cidr_allow", "cidr_deny")

#: The hooks around a request that socketserver's ``process_request`` has no place for.
POST_REQUEST_HOOKS = ("post_process_request_hook", "post_client_connection_hook")

#: Options that live in ``netserver.Server``'s own connection steps, which a stdlib host does not run.
SERVER_STEP_OPTIONS = ("no_client_stdout", "proxy_protocol")


class StdlibHost(Server):
    """The Net::Server half of a socketserver class that is not ``netserver.Server``.

    It never serves: the program's object does, through the personality.
    """

    def __init__(self, owner: Any, options: Mapping[str, Any], binds: bool = False):
        self._owner = owner
        self._binds = binds  # True for compat's classes, which bind netserver's listeners
        self._owner_socket: Any = None
        super().__init__(None, None, bind_and_activate=False)
        self._constructor_options = dict(options)
        owner_class = type(owner)
        for name in HOOKS:
            if _defines(owner_class, name):  # the program opted into this hook
                setattr(self, name, fitted_to(owner, name))
        self.command_line = getattr(owner_class, "command_line", None) is True

    def defines_hook(self, name: str) -> bool:
        return name in vars(self)  # set from the program's class in __init__

    def hooked_process(self) -> Any:
        """What serves a request when the program defines ``post_process_request_hook`` or
        ``post_client_connection_hook`` (None when it defines neither): socketserver's steps with
        the hooks in Net::Server's places.  A class whose ``process_request`` is its own
        (``ThreadingMixIn``'s, the program's) leaves no place for them: refused."""
        defined = [name for name in POST_REQUEST_HOOKS if self.defines_hook(name)]
        if not defined:
            return None
        owner_class = type(self._owner)
        where = next(klass for klass in owner_class.__mro__ if "process_request" in vars(klass))
        if where is socketserver.BaseServer:
            return self._process_with_hooks
        if where.__module__ == "socketserver":  # ThreadingMixIn's, ForkingMixIn's: no place for them
            raise TypeError(f"{owner_class.__qualname__} defines {' and '.join(defined)}, but its process_request "
                            f"is socketserver.{where.__qualname__}'s, which cannot call them: use a netserver "
                            f"personality (ThreadMixIn, ForkMixIn…) over the plain class")
        return None  # a process_request of the program's (or a library's) own: it calls them, if it will

    def _process_with_hooks(self, request: Any, client_address: Any) -> None:
        owner = self._owner
        owner.finish_request(request, client_address)
        self.post_process_request_hook(request)
        owner.shutdown_request(request)
        self.post_client_connection_hook(request)

    def _title(self) -> str:
        return f"{type(self._owner).__name__} (type {self._owner._personality})"  # not this adapter's

    # -- options ------------------------------------------------------------------

    def options(self, template: Dict[str, Any]) -> Dict[str, Any]:
        super().options(template)
        template.update(declared_options(type(self._owner)))
        return template

    def configure_owner(self) -> Config:
        """Read the sources, then refuse what this host cannot honour."""
        template = self.options({})
        from_classes = {}
        option_classes = _option_classes(type(self._owner))
        for klass in option_classes:
            from_classes.update({name: value for name, value in vars(klass).items()
                                 if name in template and not callable(value) and value is not None})
        config = self.configure(from_classes, argv=None if self.command_line else [],
                                run_source=Source("class attribute"))
        self._warn_of_access_attributes(option_classes)
        refused = [] if self._binds else list(BINDING_OPTIONS)
        refused += SERVER_STEP_OPTIONS
        for name in refused:
            if name not in template:
                continue
            source = config.source_of(name)
            if source.kind != Source.DEFAULT:
                raise OptionError(name, config.get(name), source,
                                  f"a netserver mixin over {host_class(type(self._owner)).__name__} cannot "
                                  f"honour it (that class binds and serves its connections itself); "
                                  f"use netserver.Server or a compat.socketserver class")
        return config

    def _warn_of_access_attributes(self, option_classes: List[type]) -> None:
        """A class whose attributes are not options (a plain compat subclass, a plain base before
        the mixin) with one named like an access rule: that is no program's own name, and a rule
        the program believes in is off."""
        for klass in type(self._owner).__mro__:
            if klass in option_classes or _package(klass) in ("netserver", "compat", "socketserver"):
                continue
            for name in ACCESS_OPTIONS:
                if name in vars(klass):
                    self.log(1, f"{klass.__qualname__}.{name} is not applied: a compat class takes options as "
                                f"keywords ({name}=...), or as class attributes once the class names a netserver "
                                f"mixin (netserver.SingleMixIn, ThreadMixIn…)")

    def default_values(self) -> Dict[str, Any]:
        return {"log_level": 1}  # as quiet as the standard servers unless asked

    def _address_options(self) -> Dict[str, Any]:
        return {}  # the program's class binds server_address itself

    def post_configure(self) -> None:
        super().post_configure()
        assert self.access is not None  # Server.post_configure sets it
        # Screening a connection costs a ClientInfo; skip it when nothing would look at it.
        self._screens = bool(self.access.active or self._reverse_lookups or self._log_connections
                             or any(name in vars(self) for name in
                                    ("post_accept_hook", "allow_deny_hook", "request_denied_hook")))

    _screens = True

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return not self._screens or super().verify_request(request, client_address)

    # -- listening ---------------------------------------------------------------------

    def port_given(self) -> bool:
        """Whether the options name listeners (compat's classes bind them instead of ``server_address``)."""
        return self.config.source_of("port").kind != Source.DEFAULT

    def bind_listeners(self) -> Any:
        """Bind and listen on every configured listener; the first one's socket is the program's ``socket``."""
        owner = self._owner
        self.allow_reuse_address = owner.allow_reuse_address
        self.allow_reuse_port = getattr(owner, "allow_reuse_port", False)
        self.request_queue_size = owner.request_queue_size
        Server.server_bind(self)
        Server.server_activate(self)
        self._bound_here = True
        return self.listeners[0]

    _bound_here = False

    def listening(self) -> List[Tuple[Any, Any]]:
        if self._bound_here:
            return [(listener.socket, listener) for listener in self.listeners]
        return [(self._adopt_owner_socket(), None)]

    def _adopt_owner_socket(self) -> Any:
        """The program's ``socket`` (set late after ``bind_and_activate=False``, say) as the one listener."""
        sock = self._owner.socket
        if sock is not self._owner_socket:
            self._owner_socket = sock
            self.listeners = [listener_for_socket(sock, self.config)]
            self.socket = sock
        return sock

    def accept_from(self, token: Any) -> Tuple[Any, Any]:
        if token is None:
            return self._owner.get_request()
        return super().accept_from(token)

    # -- the steps around the loop --------------------------------------------------------

    @property
    def _drops_privileges_in_children(self) -> bool:  # type: ignore[override]  # the owner's, read-only
        return self._owner._drops_privileges_in_children

    @property
    def _in_child(self) -> bool:  # type: ignore[override]  # the owner's, read-only
        return self._owner._in_child

    def owns_signals(self) -> bool:
        return False  # the program's own handlers, SIG_IGN and KeyboardInterrupt stay

    def restartable(self) -> bool:
        return False  # HUP re-exec needs Net::Server's flow (run())

    def start_serving(self) -> None:
        if not self._bound_here:
            self._adopt_owner_socket()
        super().start_serving()

    def _fork_dequeue(self) -> None:
        """``run_dequeue``'s fork: the forking personality's, on the program's object (none for
        Thread and Multiplex, whose ``run_dequeue`` runs in the serving process)."""
        fork = getattr(self._owner, "_fork_dequeue", None)
        if fork is not None:
            fork()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self._owner.handle_error(request, client_address)

    def server_closed(self) -> None:
        """The program closed its server: close netserver's listeners, pid file and log too."""
        if not self._bound_here:
            self.listeners = []  # the program's socket is the program's to close
        self.server_close()
        self._logger.close()

    def fileno(self) -> int:
        return self._owner.fileno()

    def serve_forever_around(self) -> Any:
        """The host class's own ``serve_forever`` (the first after the personality in the MRO),
        which the mixin's loop runs inside; None when it is socketserver's, or a loop of the
        host's own written with ``handle_request`` (netserver's loop replaces it then)."""
        mro = type(self._owner).__mro__
        for klass in mro[mro.index(Engine) + 1:]:
            function = vars(klass).get("serve_forever")
            if function is None:
                continue
            if klass is socketserver.BaseServer:
                return None
            inner = function
            while hasattr(inner, "__wrapped__"):  # a decorated method: the code underneath
                inner = inner.__wrapped__
            calls = getattr(getattr(inner, "__code__", None), "co_names", ())
            return None if "handle_request" in calls and "serve_forever" not in calls else function
        return None


def _defines(cls: type, name: str) -> bool:
    """Whether a class of the program (not netserver's no-op) defines ``name``."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__.split(".")[0] not in ("netserver", "compat")
    return False


def _option_classes(cls: type) -> List[type]:
    """The program's classes whose attributes are options, base first: the one that names a
    netserver class among its bases (``class S(netserver.PreForkMixIn, TCPServer)``), or
    subclasses a compat pool class (``PreForkingTCPServer``), and its subclasses down to ``cls``.
    A subclass of a plain compat class opted into nothing (the one-line upgrade): its ``port``,
    ``user`` or ``log_level`` stay the program's own names."""
    mro = cls.__mro__
    for index in range(len(mro) - 1, -1, -1):
        klass = mro[index]
        if _opts_in(klass):
            return [k for k in reversed(mro[:index + 1])
                    if issubclass(k, klass) and _package(k) not in ("netserver", "compat")]
    return []


def _opts_in(klass: type) -> bool:
    """A program's class that names a netserver class among its bases, or one of compat's that
    adds a personality besides Single (its pool classes)."""
    package = _package(klass)
    ours = [base for base in klass.__bases__ if _package(base) == "netserver"]
    if package == "compat":
        return any(getattr(base, "_personality", "Single") != "Single" for base in ours)
    return package != "netserver" and bool(ours)


def _package(cls: type) -> str:
    return cls.__module__.split(".")[0]


def host_class(cls: type) -> type:
    """The first class in ``cls``'s MRO that is not netserver's: the host whose ``__init__`` runs next."""
    for klass in cls.__mro__:
        if not issubclass(klass, Engine) and klass.__module__.split(".")[0] != "netserver":
            return klass
    return object


def host_init(cls: type, caller: type) -> Any:
    """The ``__init__`` that ``super().__init__`` in ``caller.__init__`` reaches for an instance of
    ``cls``: the next one defined after ``caller`` in ``cls``'s MRO (compat's
    ``ThreadingTCPServer``: the standard ``TCPServer``'s)."""
    mro = cls.__mro__
    for klass in mro[mro.index(caller) + 1:]:
        if "__init__" in vars(klass):
            return vars(klass)["__init__"]
    return object.__init__


def own_keywords(init: Any, keywords: Dict[str, Any], template: Mapping[str, Any]) -> Dict[str, Any]:
    """Pop the option keywords out of ``keywords``: those the host's ``init`` does not take itself."""
    taken = _parameters(init) or frozenset()
    return {name: keywords.pop(name) for name in list(keywords) if name in template and name not in taken}


def refused_keywords(init: Any, keywords: Dict[str, Any]) -> List[str]:
    """The keywords the host's ``init`` would surely refuse with a ``TypeError`` (none when it may
    take anything: ``**kwargs``, or no Python code to read)."""
    taken = _parameters(init)
    return [] if taken is None else [name for name in keywords if name not in taken]


_CO_VARKEYWORDS = 0x08  # the code object's flag for a **kwargs parameter


def _parameters(init: Any) -> Optional[frozenset]:
    """The names ``init`` takes by name, over its ``functools.wraps`` chain; None when a function
    of the chain takes ``**kwargs`` or has no Python code (C, Cython: it may take anything).
    Read from code objects: ``inspect`` would load ``ast`` and ``dis`` into every server."""
    function = getattr(init, "__func__", init)
    taken: set = set()
    while function is not None:
        code = getattr(function, "__code__", None)
        if code is None or code.co_flags & _CO_VARKEYWORDS:
            return None
        taken.update(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        function = getattr(function, "__wrapped__", None)
    return frozenset(taken)


if TYPE_CHECKING:  # mypy checks that both kinds of host keep the whole contract
    def _both_are_hosts(server: Server, stdlib: StdlibHost) -> Tuple[Host, Host]:
        return server, stdlib
