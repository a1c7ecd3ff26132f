"""Net::Server's port specification grammar, parsed into `PortSpec` values.

Pure: no sockets and no DNS (service names are looked up in /etc/services).
Every form Net::Server::Proto accepts is understood here so that the rest of
the engine only ever sees normalised ``(host, port, proto, ipv)`` records.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from ..records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple, Union

__all__ = ["PortSpec", "PortSpecError", "parse_port", "parse_ipv", "pad", "UNIX_PROTOS", "BUILTIN_PROTOS",
           "PROTOCOL_ALIASES", "is_dotted", "known_protocol"]

UNIX_PROTOS = frozenset({"unix", "unixdgram"})
BUILTIN_PROTOS = frozenset({"tcp", "udp", "ssl"}) | UNIX_PROTOS
_PROTO_ALIASES = {"ssleay": "ssl"}
_IPV_TEXT = {"4": "IPv4", "6": "IPv6", "*": "IPv*", "4+6": "IPv4/IPv6"}


class PortSpecError(ValueError):
    """A port, host, proto or ipv specification that cannot be understood."""


class PortSpec(NamedTuple):
    """One parsed port: ``host`` ('*', a name or an address), ``port`` (int, or
    the socket path for unix protos), lower-case ``proto`` (or a dotted class
    path as given) and ``ipv`` ('4', '6', '*' or '4+6')."""

    host: str
    port: Union[int, str]
    proto: str
    ipv: str
    ssl: Tuple[Tuple[str, Any], ...] = ()  # SSL_* keys of a dict spec: this listener's own TLS settings

    @property
    def is_unix(self) -> bool:
        return self.proto in UNIX_PROTOS

    def __str__(self) -> str:
        """The canonical spec text; ``parse_port(str(spec)) == [spec]``."""
        if self.is_unix:
            return f"{self.port}|{self.proto}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.proto}/{_IPV_TEXT.get(self.ipv, self.ipv)}"


# -- lexical pieces ----------------------------------------------------------

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_PYPATH_COLON = rf"{_DOTTED}:{_DOTTED}"
_PYPATH_DOTS = rf"{_IDENT}(?:\.{_IDENT})+"
_PERL_CLASS = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+"
_BUILTIN = r"tcp|udp|ssleay|ssl|unixdgram|unix"

_ALL_SEPS = ",|\\s:/"  # between tokens of an inet spec
_PATH_SEPS = ",|\\s"  # a socket path keeps its '/' and ':'


def _tail(token: str, seps: str, flags: int = 0) -> "re.Pattern[str]":
    # The separator run must follow a non-separator so that '::1' never
    # splits and nothing is taken from an empty head.
    return re.compile(rf"(?<=[^{seps}])[{seps}]+(?P<tok>{token})$", re.ASCII | flags)


_IPV_TAIL = {s: _tail(r"IPv[*0-9]+", s, re.I) for s in (_ALL_SEPS, _PATH_SEPS)}
_TYPE_TAIL = {s: _tail(r"sock_stream|sock_dgram", s, re.I) for s in (_ALL_SEPS, _PATH_SEPS)}
_BUILTIN_TAIL = {s: _tail(_BUILTIN, s, re.I) for s in (_ALL_SEPS, _PATH_SEPS)}
# Class paths contain '.' and ':' themselves, so only ',|', space or '/' may precede them.
_CLASS_TAILS = [_tail(_PYPATH_COLON, ",|\\s/"), _tail(_PERL_CLASS, ",|\\s/"), _tail(_PYPATH_DOTS, ",|\\s/")]

_BRACKETED = re.compile(r"^\[(?P<host>[^\[\]]*)\](?:[,|\s:/]+(?P<port>.+))?$", re.ASCII | re.S)
# Host then port; a lone ':' separates, '::' belongs to an IPv6 address.
_HOST_PORT = re.compile(r"^(?P<host>.*?)(?P<sep>\s*[,|]\s*|\s+|:(?!:)|/)(?P<port>[A-Za-z0-9_+-]+)$", re.ASCII | re.S)
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$", re.ASCII)
_DIGITS = re.compile(r"^[0-9]+$", re.ASCII)
_SERVICE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*$", re.ASCII)
_IPV_WORD = re.compile(r"^(?:ipv)?([46*]+)$", re.ASCII | re.I)
_PROTO_NAME = re.compile(rf"^(?:{_PYPATH_COLON}|{_PYPATH_DOTS}|{_PERL_CLASS}|{_IDENT})$", re.ASCII)


# -- public helpers ------------------------------------------------------------


def parse_ipv(value: Any) -> str:
    """Normalise an ipv setting to '4', '6', '*' or '4+6' (both required).

    Accepts 4, 6, '4', 'IPv6', '*', 'IPv*', 'IPv4 IPv6', '4,6', '46', '4+6'
    and lists of those; a '*' anywhere means any, as in Net::Server.
    """
    if isinstance(value, (list, tuple)):
        parts = [parse_ipv(v) for v in value]
        text = "".join(p.replace("+", "") for p in parts)
    elif isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PortSpecError(f"ipv {value!r}: must be 4, 6 or *")
    else:
        text = ""
        words = [w for w in re.split(r"[\s,|/+]+", str(value).strip()) if w]
        for word in words:
            m = _IPV_WORD.match(word)
            if not m:
                text = ""
                break
            text += m.group(1)
        if not words:
            text = ""
    if not text:
        raise PortSpecError(f"ipv {value!r}: must be 4, 6 or *")
    if "*" in text:
        return "*"
    if "4" in text and "6" in text:
        return "4+6"
    return text[0]


def pad(values: Any, n: int) -> list:
    """Return exactly ``n`` entries: a shorter list is padded with its last
    entry (Net::Server's rule for host/proto/ipv lists), a longer one cut,
    a scalar repeated, and an empty list or None gives Nones (use defaults)."""
    if values is None:
        values = []
    elif not isinstance(values, (list, tuple)):
        values = [values]
    values = list(values)[:n]
    fill = values[-1] if values else None
    return values + [fill] * (n - len(values))


def parse_port(
    value: Any,
    default_host: Optional[str] = "*",
    default_proto: Optional[str] = "tcp",
    default_ipv: Any = "*",
) -> list:
    """Parse one port specification (string, int, dict, PortSpec) or a list
    of them into a list of `PortSpec`; raises `PortSpecError`."""
    if isinstance(value, PortSpec):  # a NamedTuple: not a list of specs
        return [value]
    if isinstance(value, (list, tuple)):
        result = []
        for item in value:
            result.extend(parse_port(item, default_host, default_proto, default_ipv))
        return result
    return [_Parser(value, default_host, default_proto, default_ipv).parse()]


# -- the parser ------------------------------------------------------------------


def _ipv6(text: str) -> Optional[str]:
    """The normalised IPv6 address (keeping a '%zone'), or None."""
    addr, pct, zone = text.partition("%")
    if pct and not re.match(r"^[A-Za-z0-9_.-]+$", zone, re.ASCII):
        return None
    try:
        return str(ipaddress.IPv6Address(addr)) + pct + zone
    except ValueError:
        return None


def _is_address(text: str) -> bool:
    if _ipv6(text) is not None:
        return True
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _pathlike(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~"))


class _Parser:
    """Parses a single spec; every error names the spec as given."""

    def __init__(self, value, default_host, default_proto, default_ipv):
        self.value = value
        self.default_host = default_host
        self.default_proto = default_proto
        self.default_ipv = default_ipv

    def error(self, what: str) -> PortSpecError:
        return PortSpecError(f"{self.value!r}: {what}")

    def parse(self) -> PortSpec:
        value = self.value
        if isinstance(value, PortSpec):
            return value
        if isinstance(value, dict):
            return self._parse_dict(value)
        if isinstance(value, bool) or value is None:
            raise self.error("not a port specification")
        if isinstance(value, int):
            return self._finish(host=None, port=value, proto=None, port_ipv=None, unix_type=None)
        if not isinstance(value, str):
            raise self.error(f"not a port specification ({type(value).__name__})")
        return self._parse_text(value)

    def _parse_dict(self, value: dict) -> PortSpec:
        ssl = tuple(sorted((key, tuple(item) if isinstance(item, list) else item)
                           for key, item in value.items() if str(key).startswith("SSL_")))
        if ssl:  # Net::Server's per-port certificates ({"port": 8443, "proto": "ssl", "SSL_cert_file": ...})
            value = {key: item for key, item in value.items() if not str(key).startswith("SSL_")}
            return self._parse_dict(value)._replace(ssl=ssl)
        unknown = set(value) - {"host", "port", "proto", "ipv", "unix_type"}
        if unknown:
            raise self.error(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        port = value.get("port")
        if port is None or (isinstance(port, str) and not port.strip()):
            raise self.error("missing 'port'")
        if isinstance(port, bool) or not isinstance(port, (int, str)):
            raise self.error(f"port must be a number, service name or socket path, not {type(port).__name__}")
        if isinstance(port, str):
            port = port.strip()
        ipv = value.get("ipv")
        port_ipv = None if ipv is None or ipv == "" else self._ipv(ipv)
        unix_type = value.get("unix_type")
        if unix_type is not None:
            unix_type = str(unix_type).strip().lower()
            if unix_type not in ("sock_stream", "sock_dgram"):
                raise self.error(f"unix_type {value['unix_type']!r}: must be SOCK_STREAM or SOCK_DGRAM")
        host = value.get("host")
        proto = value.get("proto")
        for key, item in (("host", host), ("proto", proto)):
            if item is not None and not isinstance(item, str):
                raise self.error(f"{key} must be a string")
        return self._finish(
            host=host if host else None,
            port=port,
            proto=proto if proto else None,
            port_ipv=port_ipv,
            unix_type=unix_type,
        )

    def _parse_text(self, value: str) -> PortSpec:
        text = value.strip()
        if not text:
            raise self.error("empty port specification")
        if "\0" in text:
            raise self.error("NUL character in port specification")
        seps = _PATH_SEPS if _pathlike(text) else _ALL_SEPS
        ipv_words: list = []
        proto = unix_type = None
        while True:
            m = _IPV_TAIL[seps].search(text)
            if m:
                ipv_words.insert(0, m.group("tok"))
            elif unix_type is None and (m := _TYPE_TAIL[seps].search(text)):
                unix_type = m.group("tok").lower()
            elif m := self._proto_tail(text, seps):
                if proto is not None:
                    raise self.error(f"more than one proto ({m.group('tok')!r} and {proto!r})")
                proto = m.group("tok")
                if self._canonical_proto(proto) in UNIX_PROTOS:
                    seps = _PATH_SEPS  # what is left is a socket path
            else:
                break
            text = text[: m.start()]
        port_ipv = self._ipv(" ".join(ipv_words)) if ipv_words else None
        return self._finish(host=None, port=text, proto=proto, port_ipv=port_ipv, unix_type=unix_type, text=True)

    @staticmethod
    def _proto_tail(text: str, seps: str):
        if seps == _ALL_SEPS:
            for pattern in _CLASS_TAILS:
                m = pattern.search(text)
                if m:
                    return m
        return _BUILTIN_TAIL[seps].search(text)

    # -- pieces --------------------------------------------------------------

    def _ipv(self, value: Any) -> str:
        try:
            return parse_ipv(value)
        except PortSpecError as exc:
            raise self.error(str(exc)) from None

    def _canonical_proto(self, name: str) -> str:
        if name.lower().startswith("net::server::proto::"):
            name = name[len("net::server::proto::"):]
        lowered = _PROTO_ALIASES.get(name.lower(), name.lower())
        if lowered in BUILTIN_PROTOS:
            return lowered
        if "::" in name:
            raise self.error(
                f"proto {name!r} is a Perl class name; name a Python class as 'package.module:Class'"
            )
        if re.match(rf"^(?:{_PYPATH_COLON}|{_PYPATH_DOTS})$", name, re.ASCII):
            return name
        raise self.error(
            f"unknown proto {name!r} (use tcp, udp, unix, unixdgram, ssl or a class path 'package.module:Class')"
        )

    def _split_ipv(self, text: str):
        """Strip trailing ipv words from a host or proto setting."""
        words: list = []
        while (m := _IPV_TAIL[_ALL_SEPS].search(text)) is not None:
            words.insert(0, m.group("tok"))
            text = text[: m.start()]
        return text.strip(), (self._ipv(" ".join(words)) if words else None)

    def _proto_setting(self, proto: str):
        text, ipv = self._split_ipv(proto.strip())
        if not text:
            raise self.error(f"proto {proto!r}: no protocol name")
        if not _PROTO_NAME.match(text):
            raise self.error(f"proto {proto!r}: not a protocol name")
        return self._canonical_proto(text), ipv

    def _host_setting(self, host: str):
        text, ipv = self._split_ipv(host.strip())
        return self._host(text, host), ipv

    def _host(self, text: str, original: str) -> str:
        m = re.match(r"^\[(.*)\]$", text, re.S)
        if m:
            text = m.group(1).strip()
        if text in ("", "*"):
            return "*"
        if ":" in text:
            address = _ipv6(text)
            if address is None:
                raise self.error(f"invalid IPv6 address {text!r}")
            return address
        if re.match(r"^[0-9.]+$", text, re.ASCII):
            try:
                return str(ipaddress.IPv4Address(text))
            except ValueError:
                raise self.error(f"invalid IPv4 address {text!r}") from None
        if not _HOSTNAME.match(text):
            raise self.error(f"invalid host {original!r}")
        return text

    def _inet_port(self, port: Union[int, str], proto: str) -> int:
        if isinstance(port, int):
            number = port
        elif _DIGITS.match(port):
            number = int(port)
        elif _SERVICE.match(port):
            try:
                return socket.getservbyname(port, "udp" if proto == "udp" else "tcp")
            except OSError:
                raise self.error(f"unknown service name {port!r}") from None
        elif not port:
            raise self.error("missing port")
        else:
            raise self.error(f"port {port!r}: must be a number 0..65535 or a service name")
        if not 0 <= number <= 65535:
            raise self.error("port must be 0..65535")
        return number

    def _split_host_port(self, text: str):
        """``(host-or-None, port-text)`` of an inet spec's remainder."""
        m = _BRACKETED.match(text)
        if m:
            if m.group("port") is None:
                raise self.error("missing port after the bracketed host")
            return m.group("host").strip() or "*", m.group("port").strip()
        if text.startswith("["):
            raise self.error("unbalanced '[' in host")
        m = _HOST_PORT.match(text)
        if not m:
            return None, text
        host, sep, port = m.group("host"), m.group("sep"), m.group("port")
        if sep == "/" and re.match(r"^[A-Za-z_]", port):
            # Net::Server reads 'port/word' as a protocol: say so if what precedes is a port.  One
            # level only (a recursive split of '0/_/_/…' ran out of stack: the portspec fuzzer).
            inner = _BRACKETED.match(host) or _HOST_PORT.match(host)
            head_port = (inner.group("port") or "") if inner else host
            try:
                self._inet_port(head_port.strip(), "tcp")
            except PortSpecError:
                pass
            else:
                self._canonical_proto(port)
        return host, port

    # -- assembling ------------------------------------------------------------

    def _finish(self, host, port, proto, port_ipv, unix_type, text=False) -> PortSpec:
        proto_ipv = None
        if proto is not None:
            name, proto_ipv = self._proto_setting(proto)
        else:
            name, proto_ipv = self._proto_setting(self.default_proto or "tcp")

        if unix_type is not None:
            # Legacy 'path|SOCK_DGRAM|unix': the type picks the unix flavour.
            wanted = "unixdgram" if unix_type == "sock_dgram" else "unix"
            if proto is not None and name not in ("unix", wanted):
                raise self.error(f"proto {name!r} contradicts {unix_type.upper()}")
            name = wanted

        if name in UNIX_PROTOS:
            path = port if isinstance(port, str) else str(port)
            path = path.strip()
            if not path:
                raise self.error("missing socket path")
            if "\0" in path:
                raise self.error("NUL character in socket path")
            return PortSpec(host="*", port=path, proto=name, ipv="*")

        if text:
            if _pathlike(port):
                raise self.error("a socket path needs proto unix or unixdgram")
            if _is_address(port):
                example = f"[{port}]:PORT" if ":" in port else f"{port}:PORT"
                raise self.error(f"missing port after address {port!r} (write {example!r})")
            host, port = self._split_host_port(port)
        if isinstance(port, str) and port.startswith("/"):
            raise self.error("a socket path needs proto unix or unixdgram")
        number = self._inet_port(port, name)

        if host is not None and host.strip():
            host_name, host_ipv = self._host_setting(host)
        elif self.default_host:
            host_name, host_ipv = self._host_setting(str(self.default_host))
        else:
            host_name, host_ipv = "*", None

        default_ipv = self.default_ipv
        default_ipv = "*" if default_ipv is None or default_ipv == "" else self._ipv(default_ipv)
        ipv = next(v for v in (port_ipv, host_ipv, proto_ipv, default_ipv) if v is not None)
        ipv = self._literal_ipv(host_name, ipv)
        return PortSpec(host=host_name, port=number, proto=name, ipv=ipv)

    def _literal_ipv(self, host: str, ipv: str) -> str:
        """An address literal decides its own family (it 'wins')."""
        if host == "*":
            return ipv
        if ":" in host:
            if ipv in ("4", "4+6"):
                raise self.error(f"IPv6 address {host!r} cannot be used with ipv {_IPV_TEXT[ipv]}")
            # '[::]' with IPv* is the any-address of both families, like '*'.
            return "*" if host == "::" and ipv == "*" else "6"
        if re.match(r"^[0-9.]+$", host, re.ASCII):
            if ipv in ("6", "4+6"):
                raise self.error(f"IPv4 address {host!r} cannot be used with ipv {_IPV_TEXT[ipv]}")
            return "4"
        return ipv


#: Net::Server's old names for built-in protocols.  With ``BUILTIN_PROTOS`` (which
#: ``netserver.proto.PROTOCOLS`` maps to listener classes) it lets option checking know a
#: protocol without importing any listener.
PROTOCOL_ALIASES = {"ssleay": "ssl"}


def is_dotted(name: str) -> bool:
    """A ``module:Class`` or ``module.Class`` protocol: a listener class of the user's."""
    return ":" in name or "." in name


def known_protocol(name: str) -> bool:
    """True for a built-in protocol name (or alias) or anything shaped like a dotted path."""
    lowered = name.lower()
    return lowered in BUILTIN_PROTOS or lowered in PROTOCOL_ALIASES or is_dotted(name)
