"""Binding: port specifications → listeners, bound and listening (or adopted after a HUP or from systemd).

:class:`BindingMixIn` is :class:`~netserver.server.Server`'s binding steps,
Net::Server's ``pre_bind``/``bind`` and socketserver's
``server_bind``/``server_activate``, over any number of listeners of any
protocol.  A HUP re-exec's new image adopts the inherited sockets whose
key matches; systemd's ``LISTEN_FDS`` are matched to the configured ports
(or all used); anything else is bound fresh, and on any failure none stays
open.
"""

from __future__ import annotations

import os
import socket
import sys

from . import restart, systemd
from .engine import ServerError
from .options import Config, OptionError, Source
from .proto import BindError, Listener, listener_class, listener_for_socket
from .proto.resolve import ResolveError, resolve
from .proto.spec import PortSpecError, pad, parse_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BindingMixIn"]


class BindingMixIn:
    """The binding steps of :class:`~netserver.server.Server` (see the module docstring)."""

    if TYPE_CHECKING:
        # What the binding steps use of the class they are mixed into (netserver.Server, whose
        # StdlibHost binds for compat's classes): its options, log, hooks and socketserver settings.
        config: Config
        request_queue_size: Optional[int]  # None: the listen option
        allow_reuse_address: bool
        allow_reuse_port: bool

        def log(self, level: int, message: str) -> None: ...
        def _fatal(self, message: str, caller: Any, log: bool = True) -> None: ...
        def restart_open_hook(self) -> None: ...
        def post_bind_hook(self) -> None: ...

        # What they set on it: the listeners, the first one as socketserver's socket and
        # server_address, and what a HUP re-exec handed over.
        listeners: List[Listener]
        socket: Optional[socket.socket]
        server_address: Any
        inherited_children: Sequence[int]
        inherited_state: Mapping[str, Any]

    def pre_bind(self) -> None:
        """Turn the port specifications into (unbound) listeners."""
        config = self.config
        ports = config.port
        if not ports:
            raise OptionError("port", ports, config.source_of("port"), "no port to bind")
        hosts, protos, ipvs = (pad(list(v), len(ports)) for v in (config.host, config.proto, config.ipv))
        seen = set()
        listeners: List[Listener] = []
        # The default port gives way to sockets systemd passes (_adopt_activated): no notes about it.
        quiet = config.source_of("port").kind == Source.DEFAULT and systemd.sockets_passed()
        sources = config.sources_of_each("port")  # an error names the line of the port at fault
        for port, host, proto, ipv, source in zip(ports, hosts, protos, ipvs, sources, strict=True):
            try:
                specs = parse_port(port, host, proto, ipv)
            except PortSpecError as exc:
                raise OptionError("port", port, source, str(exc)) from None
            for spec in specs:
                try:
                    cls = listener_class(spec.proto)
                except ValueError as exc:
                    raise OptionError("proto", spec.proto, config.source_of("proto"), str(exc)) from None
                try:
                    targets, notes = resolve(spec)
                except ResolveError as exc:
                    raise ServerError(str(exc)) from None
                for note in notes if not quiet else ():
                    self.log(2, note)
                for target in targets:
                    # The same address twice is bound once; two port-0 specs are two ports.
                    key = (target.family, target.address, cls.socket_type, len(listeners) if not target.port else 0)
                    if key not in seen:
                        seen.add(key)
                        try:
                            listeners.append(cls(target, config))
                        except ValueError as exc:  # the port's own settings: its SSL_* keys, its certificate
                            raise OptionError("port", port, source, str(exc)) from None
        self.listeners = listeners

    def bind(self) -> None:
        """Bind and listen on every listener; on any failure none stays open."""
        chosen_ports: Dict[Any, int] = {}
        backlog = self.request_queue_size or self.config.listen
        inherited, self.inherited_children, self.inherited_state = restart.take_inherited()
        if inherited:
            self.restart_open_hook()
        self._adopt_activated()
        try:
            for listener in self.listeners:
                if listener.socket is not None:
                    continue  # passed in by systemd
                fds = inherited.get(listener.hup_string())
                if fds:
                    listener.adopt(fds.pop(0))
                    self.log(2, f"Binding to {listener.describe()} (inherited fd {listener.fileno()})")
                    continue
                target = listener.target
                spec_key = (target.spec, listener.proto)
                if target.spec.port == 0 and spec_key in chosen_ports:
                    # One port 0 spec bound on several addresses gets one port.
                    address = (target.address[0], chosen_ports[spec_key]) + tuple(target.address[2:])
                    listener.target = target._replace(address=address)
                listener.bind(self.allow_reuse_address, self.allow_reuse_port)
                listener.activate(backlog)
                if isinstance(listener.port, int):
                    chosen_ports.setdefault(spec_key, listener.port)
                self.log(2, f"Binding to {listener.describe()}")
        except BindError as exc:
            for listener in self.listeners:
                listener.close()
            self._fatal(str(exc), sys._getframe(0), log=False)  # the CLI or the launcher reports it, once
        finally:
            for fds in inherited.values():  # listeners the new configuration no longer has
                for fd in fds:
                    os.close(fd)
        self._bound()

    def _adopt_activated(self) -> None:
        """Use sockets passed by systemd (LISTEN_FDS): those matching a configured port, or all."""
        passed = systemd.listen_fds()
        if not passed:
            return
        by_address: Dict[Tuple[int, int, Any], Tuple[socket.socket, str]] = {}
        for fd, name in passed:
            sock = socket.socket(fileno=fd)
            by_address[(sock.family, sock.type, _address_key(sock.getsockname()))] = (sock, name)
        configured = self.config.source_of("port").kind != Source.DEFAULT
        kept: List[Listener] = []
        for listener in self.listeners if configured else []:
            target = listener.target
            match = by_address.pop((target.family, listener.socket_type, _address_key(target.address)), None)
            if match is not None:
                listener.socket = match[0]
                listener.inherited = True
            kept.append(listener)
        for sock, _name in by_address.values():
            kept.append(listener_for_socket(sock, self.config))
        self.listeners = kept
        for listener in kept:
            if listener.inherited or listener.socket is not None:
                self.log(2, f"Binding to {listener.describe()} (passed by systemd, fd {listener.fileno()})")

    def _bound(self) -> None:
        first = self.listeners[0]
        self.socket = first.socket
        self.server_address = first.address

    def server_bind(self) -> None:
        """socketserver's step: resolve and bind every listener (no listen yet)."""
        self.pre_bind()
        try:
            for listener in self.listeners:
                listener.bind(self.allow_reuse_address, self.allow_reuse_port)
        except BindError as exc:
            for listener in self.listeners:
                listener.close()
            raise OSError(exc.errno, exc.strerror) from None
        self._bound()
        self.post_bind_hook()

    def server_activate(self) -> None:
        """socketserver's step: listen on every stream listener."""
        backlog = self.request_queue_size or self.config.listen
        for listener in self.listeners:
            listener.activate(backlog)

    def _try_new_listeners(self, held: Sequence[str]) -> None:
        """HUP check: bind (then close) each listener the running image does not hand over."""
        for listener in self.listeners:
            if listener.hup_string() in held:
                continue
            try:
                listener.bind(self.allow_reuse_address, self.allow_reuse_port)
            except BindError as exc:
                raise ServerError(str(exc)) from None
            finally:
                listener.close()


def _address_key(address: Any) -> Any:
    """Socket addresses compared without IPv6 flow and scope fields."""
    if isinstance(address, tuple):
        return address[:2]
    return address.decode() if isinstance(address, bytes) else address
