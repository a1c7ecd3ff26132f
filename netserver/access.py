"""Net::Server-style access control for accepted connections.

Implements the ``allow``/``deny`` (anchored regexes), ``cidr_allow``/``cidr_deny``
and ``double_reverse_lookups`` options. Peer addresses are normalised first
(IPv4-mapped IPv6 such as ``::ffff:10.1.2.3`` becomes ``10.1.2.3``, zone ids are
dropped), so one rule list covers IPv4 clients on dual-stack sockets and mixed
IPv4/IPv6 lists work; a regex written in IPv4-mapped form still matches, as
each IPv4 peer is also tried as ``::ffff:a.b.c.d``. Host-name rules only ever
match a forward-confirmed reverse DNS name: an attacker controls the PTR record
of their own address (CVE-2013-1841). A regex that looks like an address
(digits and no letters, or a colon and hex digits) is matched against the
address only, never against a host name.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from .records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    import netaddr  # imported when a CIDR rule exists, not at start-up

    _IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

__all__ = [
    "AccessConfigError",
    "AccessPolicy",
    "Decision",
    "compile_patterns",
    "forward_confirms",
    "normalize_address",
    "parse_cidr_list",
    "reverse_lookup",
]

_LIST_SEPARATOR = re.compile(r"[\s,]+")
_PREFIX = re.compile(r"[0-9]{1,3}")
_DOUBLE_REVERSE_SPELLING = re.compile(r"^(?:double|2)(.*)$", re.IGNORECASE | re.DOTALL)


class AccessConfigError(ValueError):
    """An access-control option holds a value that cannot be used."""


class Decision(NamedTuple):
    """Outcome of :meth:`AccessPolicy.check`; truthy iff allowed."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _parse_ip(addr) -> Optional[_IPAddress]:
    """The address `addr` denotes (IPv4-mapped un-mapped, zone dropped), or None."""
    if not isinstance(addr, str) or not addr:
        return None
    try:
        if ":" not in addr:
            return ipaddress.IPv4Address(addr)
        ip = ipaddress.IPv6Address(addr)
    except ValueError:
        return None
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return mapped
    if ip.scope_id is not None:
        ip = ipaddress.IPv6Address(int(ip))
    return ip


def normalize_address(addr: str) -> str:
    """Canonical text of an IP address; anything else is returned unchanged."""
    ip = _parse_ip(addr)
    return addr if ip is None else str(ip)


def _strings(value, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        raise AccessConfigError(f"{what} value {value!r} is not a string")
    try:
        items = list(value)
    except TypeError:
        raise AccessConfigError(
            f"{what} value {value!r} is neither a string nor a list of strings"
        ) from None
    for item in items:
        if not isinstance(item, str):
            raise AccessConfigError(f"{what} entry {item!r} is not a string")
    return items


def _parse_cidr(piece: str) -> netaddr.IPNetwork:
    addr_text, slash, prefix_text = piece.partition("/")
    ip = _parse_ip(addr_text)
    if ip is None:
        raise AccessConfigError(
            f"{piece!r} is not a CIDR block: {addr_text!r} is not an IP address"
        )
    # _parse_ip already un-mapped the address; the prefix still counts the 96
    # bits of the ::ffff:0:0/96 wrapper.
    was_mapped = ip.version == 4 and ":" in addr_text
    width: int = 128 if was_mapped else ip.max_prefixlen
    if not slash:
        prefix = width
    elif _PREFIX.fullmatch(prefix_text) and int(prefix_text) <= width:
        prefix = int(prefix_text)
    else:
        raise AccessConfigError(
            f"{piece!r} is not a CIDR block: prefix length must be 0-{width}, "
            f"got {prefix_text!r}"
        )
    if was_mapped:
        if prefix < 96:
            raise AccessConfigError(
                f"{piece!r} is not a CIDR block: an IPv4-mapped block needs a prefix "
                f"of at least 96 to be expressed as IPv4, got /{prefix}"
            )
        prefix -= 96
    import netaddr

    return netaddr.IPNetwork(f"{ip}/{prefix}").cidr


def parse_cidr_list(value) -> list[netaddr.IPNetwork]:
    """Parse CIDR blocks from a str or iterable of str (comma/space separated).

    A bare address is a /32 or /128; IPv4-mapped blocks become IPv4 blocks;
    host bits are cleared.
    """
    networks = []
    for text in _strings(value, "CIDR"):
        for piece in _LIST_SEPARATOR.split(text):
            if piece:
                networks.append(_parse_cidr(piece))
    return networks


def compile_patterns(value) -> list[re.Pattern]:
    """Compile regexes from a str or iterable of str (one regex per string).

    Net::Server anchors them (``/^$re$/``): match them with ``fullmatch``.
    """
    patterns = []
    for text in _strings(value, "regex"):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise AccessConfigError(
                f"{text!r} is not a valid regular expression: {exc}"
            ) from None
    return patterns


class _Blocks:
    """CIDR blocks of one address family, looked up by bisecting merged ranges."""

    __slots__ = ("_starts", "_ends", "_blocks", "_bisect_right")

    def __init__(self, networks: list):
        ranges = []
        if networks:  # netaddr and bisect (an extension module) only for a server with CIDR rules
            import netaddr
            from bisect import bisect_right

            ranges = list(netaddr.IPSet(networks).iter_ipranges())
            self._bisect_right = bisect_right
        self._starts = [r.first for r in ranges]
        self._ends = [r.last for r in ranges]
        self._blocks = [(net.first, net.last, net) for net in networks]

    def find(self, value: int) -> Optional[netaddr.IPNetwork]:
        if not self._starts:
            return None
        i = self._bisect_right(self._starts, value) - 1
        if i < 0 or value > self._ends[i]:
            return None
        # Only on a hit: name the block as the user wrote it, for the log.
        for first, last, net in self._blocks:
            if first <= value <= last:
                return net
        return None  # pragma: no cover - the merged ranges are exactly the blocks


def _split_families(networks: list) -> dict:
    return {
        4: _Blocks([n for n in networks if n.version == 4]),
        6: _Blocks([n for n in networks if n.version == 6]),
    }


def _perl_true(value) -> bool:
    return value is not None and value is not False and value != 0 and str(value) not in ("", "0")


class AccessPolicy:
    """Compiled allow/deny rules; see :meth:`check`.

    Attributes: ``active`` (False when there is nothing to check, so callers can
    skip :meth:`check`), ``needs_hostname`` (the caller must resolve and
    forward-confirm the peer name before calling :meth:`check`).
    """

    def __init__(
        self,
        allow=(),
        deny=(),
        cidr_allow=(),
        cidr_deny=(),
        reverse_lookups=False,
        double_reverse_lookups=None,
    ):
        self.allow = tuple(compile_patterns(allow))
        self.deny = tuple(compile_patterns(deny))
        self.cidr_allow = tuple(parse_cidr_list(cidr_allow))
        self.cidr_deny = tuple(parse_cidr_list(cidr_deny))
        self._allow_blocks = _split_families(list(self.cidr_allow))
        self._deny_blocks = _split_families(list(self.cidr_deny))

        # Net::Server: reverse_lookups 'double'/'2<mode>' turns on
        # double_reverse_lookups, which in turn implies reverse_lookups.
        if isinstance(reverse_lookups, (str, int)) and not isinstance(reverse_lookups, bool):
            spelled = _DOUBLE_REVERSE_SPELLING.match(str(reverse_lookups))
            if spelled:
                double_reverse_lookups = next(
                    v for v in (spelled.group(1), double_reverse_lookups, 1) if _perl_true(v)
                )
        self.double_reverse_lookups = (
            double_reverse_lookups if _perl_true(double_reverse_lookups) else None
        )
        self.reverse_lookups = _perl_true(reverse_lookups) or self.double_reverse_lookups is not None
        mode = str(self.double_reverse_lookups or "").lower()
        self._autofail = "autofail" in mode
        self._debug = "debug" in mode and not self._autofail

        self._has_allow = bool(self.allow or self.cidr_allow)
        self._has_rules = bool(self._has_allow or self.deny or self.cidr_deny)
        self.active = self._has_rules or self.double_reverse_lookups is not None
        self.needs_hostname = self.reverse_lookups and (
            bool(self.allow or self.deny) or self.double_reverse_lookups is not None
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(allow={[p.pattern for p in self.allow]!r}, "
            f"deny={[p.pattern for p in self.deny]!r}, "
            f"cidr_allow={[str(n) for n in self.cidr_allow]!r}, "
            f"cidr_deny={[str(n) for n in self.cidr_deny]!r}, "
            f"reverse_lookups={self.reverse_lookups!r}, "
            f"double_reverse_lookups={self.double_reverse_lookups!r})"
        )

    def check(
        self, peer_addr: str, peer_host: Optional[str] = None, host_confirmed: bool = False
    ) -> Decision:
        """Decide whether the peer may be served.

        `peer_host` (the reverse-DNS name) is matched against the regexes only
        when `host_confirmed` says it resolves back to `peer_addr`.
        """
        if not self.active:
            return _NO_RULES
        ip = _parse_ip(peer_addr)
        if ip is None:
            if not peer_addr or peer_addr.startswith(("/", "\0", "@")):
                return _UNIX_PEER
            return Decision(False, f"peer address {peer_addr!r} is not an IP address")  # fail closed
        host = peer_host if host_confirmed and peer_host else None

        note = ""
        if self.double_reverse_lookups is not None:
            if host is None:
                problem = (
                    f"reverse lookup not forward-confirmed: {peer_host!r} does not resolve to {ip}"
                    if peer_host
                    else f"reverse lookup not forward-confirmed: no host name for {ip}"
                )
                return Decision(False, problem)
            if self._autofail:
                return Decision(
                    False,
                    f"double_reverse_lookups autofail: denying {ip} ({host!r}, forward-confirmed)",
                )
            if self._debug:
                note = f" (double reverse debug: {host!r} resolves to {ip})"
            if not self._has_rules:
                return Decision(True, "no allow/deny rules" + (note or f"; {host!r} forward-confirmed"))

        addresses: "list[str]" = []  # filled only when there are patterns to try
        hosts: "list[tuple[str, str]]" = []
        if self.allow or self.deny:
            address = str(ip)
            addresses = [address]
            if ip.version == 4:
                addresses.append("::ffff:" + address)  # a rule written in IPv4-mapped form
            if peer_addr not in addresses:
                addresses.append(peer_addr)
            hosts = [(host, f" (host {host})")] if host is not None else []

        for pattern in self.deny:
            for text, label in self._subjects(pattern, addresses, hosts):
                if pattern.fullmatch(text):
                    return Decision(False, f"matched deny {pattern.pattern}{label}{note}")
        net = self._deny_blocks[ip.version].find(int(ip))
        if net is not None:
            return Decision(False, f"matched cidr_deny {net}{note}")

        for pattern in self.allow:
            for text, label in self._subjects(pattern, addresses, hosts):
                if pattern.fullmatch(text):
                    return Decision(True, f"matched allow {pattern.pattern}{label}{note}")
        net = self._allow_blocks[ip.version].find(int(ip))
        if net is not None:
            return Decision(True, f"matched cidr_allow {net}{note}")
        if not self._has_allow:  # Net::Server's rule: a client must match an allow once any rule is set
            return Decision(False, f"no allow rule: deny rules alone refuse every other client{note}")
        return Decision(False, f"no allow rule matched{note}")


    def _subjects(self, pattern: re.Pattern, addresses: list, hosts: list) -> list:
        """What ``pattern`` is matched against: an address-looking pattern (``127\\..*``)
        against the addresses only, or ``127.0.0.1.attacker.example`` — a name its owner
        can make forward-confirm — would pass for a loopback client (issue 14)."""
        subjects = [(address, "") for address in addresses]
        if hosts and not _address_like(pattern.pattern):
            subjects += hosts
        return subjects


_ESCAPED_CLASS = re.compile(r"\\[dDwWsSbBAZ]")


def _address_like(text: str) -> bool:
    """Whether a regex can only be meant for addresses: digits with no letters (``10\\.0\\..*``),
    or a colon with hex letters only (``fe80:.*``).  Escaped classes (``\\d``) are not letters."""
    text = _ESCAPED_CLASS.sub("", text)
    letters = [c for c in text if c.isalpha()]
    if ":" in text:
        return all(c in "abcdefABCDEF" for c in letters)
    return not letters and any(c.isdigit() for c in text)


_NO_RULES = Decision(True, "no rules")
_UNIX_PEER = Decision(True, "unix socket peer")


def reverse_lookup(addr: str) -> Optional[str]:
    """The PTR name of `addr` (normalised first), or None on any failure."""
    ip = _parse_ip(addr)
    if ip is None:
        return None
    try:
        name = socket.gethostbyaddr(str(ip))[0]
    except (OSError, UnicodeError, ValueError):
        return None
    return name or None


def forward_confirms(host: str, addr: str) -> bool:
    """True iff `host` resolves (getaddrinfo) to `addr`, comparing normalised forms."""
    ip = _parse_ip(addr)
    if ip is None or not isinstance(host, str) or not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return False
    return any(_parse_ip(info[4][0]) == ip for info in infos)
