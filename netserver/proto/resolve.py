"""Turn a `PortSpec` into the concrete addresses to bind.

This is where Net::Server's IPv4/IPv6 rules live: '*' becomes one dual-stack
'::' socket or separate IPv4 and IPv6 sockets, names are resolved, and a
family this host cannot use (IPv6 disabled in a container is the classic
case) is left out with a log note instead of failing the bind later.
"""

from __future__ import annotations

import functools
import os
import socket

from ..records import NamedTuple

from .spec import UNIX_PROTOS, PortSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["BindTarget", "ResolveError", "resolve", "ipv6_usable", "ipv4_usable", "bindv6only"]

_FAMILY_NAME: Dict[int, str] = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6", socket.AF_UNIX: "UNIX"}


class BindTarget(NamedTuple):
    """One socket to bind: family, bind address, the IPV6_V6ONLY value to set
    explicitly (AF_INET6 only, else None) and the spec it came from."""

    family: int
    address: Union[tuple, str]
    v6only: Optional[bool]
    spec: PortSpec

    def describe_host(self) -> str:
        """The bound host ('::', '127.0.0.1') or the socket path."""
        return self.address if isinstance(self.address, str) else self.address[0]

    @property
    def ipv(self) -> str:
        """'IPv4', 'IPv6' or 'UNIX', for log lines."""
        return _FAMILY_NAME[self.family]

    @property
    def port(self) -> Optional[int]:
        return None if isinstance(self.address, str) else self.address[1]

    @property
    def socktype(self) -> int:
        return socket.SOCK_DGRAM if self.spec.proto in ("udp", "unixdgram") else socket.SOCK_STREAM

    def __str__(self) -> str:
        if isinstance(self.address, str):
            return self.address
        return f"[{self.address[0]}]:{self.address[1]}"


class ResolveError(OSError):
    """A port spec that cannot be turned into any address to bind here."""


# -- probing the machine ---------------------------------------------------------


def _can_bind(family: int, address: tuple) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(address)
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def ipv6_usable() -> bool:
    """True iff an AF_INET6 socket can be created and bound to ('::', 0).

    Creating one is not enough: with IPv6 disabled (Docker's default) the
    socket call works and only the bind fails, with EADDRNOTAVAIL.
    """
    return socket.has_ipv6 and _can_bind(socket.AF_INET6, ("::", 0))


@functools.lru_cache(maxsize=None)
def ipv4_usable() -> bool:
    """True iff an AF_INET socket can be created and bound to ('0.0.0.0', 0)."""
    return _can_bind(socket.AF_INET, ("0.0.0.0", 0))


def bindv6only() -> bool:
    """The net.ipv6.bindv6only sysctl; False when it cannot be read."""
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as fh:
            return int(fh.read().strip() or 0) != 0
    except (OSError, ValueError):
        return False


# -- resolving ---------------------------------------------------------------------


class _Env:
    """The machine's facts, probed lazily unless the caller injected them."""

    def __init__(self, v6: Optional[bool], v4: Optional[bool], v6only: Optional[bool]):
        self._given = {"ipv6_usable": v6, "ipv4_usable": v4, "bindv6only": v6only}

    def _get(self, name: str) -> bool:
        value = self._given[name]
        if value is None:
            # Looked up through globals() so tests can monkeypatch the probes.
            value = self._given[name] = bool(globals()[name]())
        return bool(value)

    @property
    def v6(self) -> bool:
        return self._get("ipv6_usable")

    @property
    def v4(self) -> bool:
        return self._get("ipv4_usable")

    @property
    def bindv6only(self) -> bool:
        return self._get("bindv6only")


def resolve(
    spec: PortSpec,
    *,
    ipv6_usable: Optional[bool] = None,
    ipv4_usable: Optional[bool] = None,
    bindv6only: Optional[bool] = None,
) -> Tuple[List[BindTarget], List[str]]:
    """The bind targets for ``spec`` and the log notes explaining them.

    The keyword arguments stand in for the machine's probes (None = probe).
    Raises `ResolveError` when nothing suitable can be bound.
    """
    env = _Env(ipv6_usable, ipv4_usable, bindv6only)
    return _Resolver(spec, env).run()


class _Resolver:
    def __init__(self, spec: PortSpec, env: _Env):
        self.spec = spec
        self.env = env
        self.notes: List[str] = []
        self.port = spec.port

    def error(self, what: str) -> ResolveError:
        return ResolveError(f"port spec {str(self.spec)!r}: {what}")

    def run(self) -> Tuple[List[BindTarget], List[str]]:
        spec = self.spec
        if spec.proto in UNIX_PROTOS:
            return [BindTarget(socket.AF_UNIX, os.path.abspath(str(spec.port)), None, spec)], []
        if isinstance(spec.port, bool) or not isinstance(spec.port, int) or not 0 <= spec.port <= 65535:
            raise self.error(f"port {spec.port!r} is not a number 0..65535")
        if spec.ipv not in ("4", "6", "*", "4+6"):
            raise self.error(f"ipv {spec.ipv!r} must be 4, 6, * or 4+6")
        host = spec.host or "*"
        if host == "*" or (host == "::" and spec.ipv == "*"):
            targets = self._any(host)
        else:
            family = _literal_family(host)
            if family is not None:
                targets = [self._literal(host, family)]
            else:
                targets = self._named(host)
        return targets, self.notes

    # -- pieces -----------------------------------------------------------------

    def _v4(self, host: str = "0.0.0.0") -> BindTarget:
        return BindTarget(socket.AF_INET, (host, self.port), None, self.spec)

    def _v6(self, host: str = "::", v6only: bool = True) -> BindTarget:
        return BindTarget(socket.AF_INET6, (host, self.port, 0, 0), v6only, self.spec)

    def _resolved(self, asked: str, target: BindTarget) -> None:
        if target.describe_host() != asked:
            self.notes.append(f"Resolved [{asked}]:{self.port} to {target}, {target.ipv}")

    def _need(self, family: int) -> None:
        usable = self.env.v4 if family == socket.AF_INET else self.env.v6
        if not usable:
            name = _FAMILY_NAME[family]
            raise self.error(f"{name} is not usable on this host (an {name} socket cannot be bound)")

    def _any(self, asked: str) -> List[BindTarget]:
        """'*' (or '[::]' with IPv*): the any-address of each family wanted."""
        ipv, env = self.spec.ipv, self.env
        if ipv == "4":
            self._need(socket.AF_INET)
            targets = [self._v4()]
        elif ipv == "6":
            self._need(socket.AF_INET6)
            targets = [self._v6()]
        elif ipv == "4+6":
            self._need(socket.AF_INET)
            self._need(socket.AF_INET6)
            targets = [self._v4(), self._v6()]
        elif env.v6 and env.v4:
            if env.bindv6only:
                targets = [self._v4(), self._v6()]
            else:
                # One dual-stack socket: a separate 0.0.0.0 would clash with it.
                targets = [self._v6(v6only=False)]
                for t in targets:
                    self._resolved(asked, t)
                self.notes.append(
                    "Not including resolved host [0.0.0.0] IPv4 because it will be handled by [::] IPv6"
                )
                return targets
        elif env.v4:
            self.notes.append(f"IPv6 is not usable on this host; binding [{asked}]:{self.port} on IPv4 only")
            targets = [self._v4()]
        elif env.v6:
            self.notes.append(f"IPv4 is not usable on this host; binding [{asked}]:{self.port} on IPv6 only")
            targets = [self._v6()]
        else:
            raise self.error("neither IPv4 nor IPv6 is usable on this host")
        for t in targets:
            self._resolved(asked, t)
        return targets

    def _literal(self, host: str, family: int) -> BindTarget:
        ipv = self.spec.ipv
        if family == socket.AF_INET and ipv in ("6", "4+6"):
            raise self.error(f"IPv4 address {host!r} cannot be bound with ipv {ipv}")
        if family == socket.AF_INET6 and ipv in ("4", "4+6"):
            raise self.error(f"IPv6 address {host!r} cannot be bound with ipv {ipv}")
        self._need(family)
        if family == socket.AF_INET:
            return self._v4(host)
        # getaddrinfo (numeric only, no DNS) turns a '%eth0' zone into its scope id.
        sockaddr: Any = socket.getaddrinfo(
            host, self.port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST | socket.AI_PASSIVE
        )[0][4]
        return BindTarget(socket.AF_INET6, (sockaddr[0], self.port, 0, sockaddr[3]), True, self.spec)

    def _named(self, host: str) -> List[BindTarget]:
        ipv = self.spec.ipv
        family = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(ipv, socket.AF_UNSPEC)
        socktype = socket.SOCK_DGRAM if self.spec.proto == "udp" else socket.SOCK_STREAM
        try:
            infos = socket.getaddrinfo(host, self.port, family, socktype, 0, socket.AI_PASSIVE)
        except (OSError, UnicodeError, ValueError) as exc:
            raise ResolveError(f"cannot resolve host {host!r} for port spec {str(self.spec)!r}: {exc}") from None

        targets: List[BindTarget] = []
        seen = set()
        sockaddr: Any  # (host, port) or (host, port, flowinfo, scope_id), by family
        for fam, _type, _proto, _canon, sockaddr in infos:
            if fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            key = (fam, sockaddr[0], sockaddr[3] if fam == socket.AF_INET6 else None)
            if key in seen:
                continue
            seen.add(key)
            if fam == socket.AF_INET:
                targets.append(self._v4(sockaddr[0]))
            else:
                # V6ONLY so that '::1' and '127.0.0.1' can share a port.
                targets.append(BindTarget(fam, (sockaddr[0], self.port, 0, sockaddr[3]), True, self.spec))
        if not targets:
            raise ResolveError(f"cannot resolve host {host!r} for port spec {str(self.spec)!r}: no IPv4 or IPv6 address")

        kept = []
        for t in targets:
            usable = self.env.v4 if t.family == socket.AF_INET else self.env.v6
            if usable:
                kept.append(t)
            else:
                self.notes.append(
                    f"Not including resolved host [{t.describe_host()}] {t.ipv} because {t.ipv} is not usable on this host"
                )
        if not kept:
            raise self.error(f"host {host!r} resolves only to addresses of families not usable on this host")
        if ipv == "4+6":
            families = {t.family for t in kept}
            for fam in (socket.AF_INET, socket.AF_INET6):
                if fam not in families:
                    raise self.error(
                        f"ipv IPv4/IPv6 needs both families but host {host!r} gives no usable {_FAMILY_NAME[fam]} address"
                    )
        for t in kept:
            self._resolved(host, t)
        return kept


def _literal_family(host: str) -> Optional[int]:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
        except (OSError, ValueError):
            continue
        return family
    return None
