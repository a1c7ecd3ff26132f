"""The PROXY protocol (HAProxy's, v1 and v2): the real client behind a load balancer.

With ``proxy_protocol`` set, a connection from a peer in ``proxy_allow``
must begin with a PROXY header; the address it carries becomes the client
address seen by access control, the logs, the handler and the HTTP
environment.  Headers from any other peer are never honoured (their bytes
reach the application as ordinary data, where the HTTP personality refuses
them as a malformed request).  A trusted peer whose header is missing,
malformed or truncated loses its connection.

Parsing is pure (``parse_v1``, ``parse_v2``); ``read_header`` reads exactly
the header's bytes from a socket, so the first application byte stays
unread.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

    Address = Optional[Tuple[str, int]]

__all__ = ["ProxyError", "parse_v1", "parse_v2", "read_header", "V2_SIGNATURE"]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107
V2_PEEK = 16 + 216  # the fixed part and addresses of any family; TLVs are read by length



class ProxyError(ValueError):
    """A missing, malformed or truncated PROXY header."""


def _address(text: str, version: int) -> str:
    if "%" in text:
        raise ProxyError(f"a zone id in PROXY address {text!r}")
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyError(f"bad address {text!r} in PROXY header") from None
    if parsed.version != version:
        raise ProxyError(f"address {text!r} is not IPv{version}")
    return _normal(parsed)


def _normal(parsed: Any) -> str:
    """An IPv4-mapped IPv6 address as its IPv4 form (``::ffff:10.1.1.1`` → ``10.1.1.1``), the
    form access control and ``REMOTE_ADDR`` use for a directly connected client."""
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(parsed)


def _port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535 or (len(text) > 1 and text[0] == "0"):
        raise ProxyError(f"bad port {text!r} in PROXY header")
    return int(text)


def parse_v1(line: bytes) -> Address:
    """``PROXY TCP4 src dst sport dport\\r\\n`` → (src, sport); ``PROXY UNKNOWN`` → None."""
    if not line.endswith(b"\r\n") or len(line) > V1_MAX:
        raise ProxyError("PROXY v1 header not terminated by CRLF within 107 bytes")
    try:
        parts = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyError("PROXY v1 header is not ASCII") from None
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyError("not a PROXY v1 header")
    if parts[1] == "UNKNOWN":
        return None
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyError(f"bad PROXY v1 header {line!r}")
    version = 4 if parts[1] == "TCP4" else 6
    source = _address(parts[2], version)
    _address(parts[3], version)
    port = _port(parts[4])
    _port(parts[5])
    return source, port


def parse_v2(data: bytes) -> Tuple[Address, int]:
    """A whole v2 header → ((src, sport) or None for LOCAL/unknown, total length)."""
    if len(data) < 16 or not data.startswith(V2_SIGNATURE):
        raise ProxyError("not a PROXY v2 header")
    version_command, family, length = data[12], data[13], int.from_bytes(data[14:16], "big")
    if version_command >> 4 != 2:
        raise ProxyError("PROXY v2 header with a bad version")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyError("PROXY v2 header with a bad command")
    total = 16 + length
    if len(data) < total:
        raise ProxyError("truncated PROXY v2 header")
    body = data[16:total]
    if command == 0:  # LOCAL: the proxy's own health check
        return None, total
    transport = family & 0x0F
    address_family = family >> 4
    if transport not in (1, 2):  # STREAM or DGRAM
        return None, total
    if address_family == 1:
        if len(body) < 12:
            raise ProxyError("truncated PROXY v2 IPv4 addresses")
        source = socket.inet_ntop(socket.AF_INET, body[0:4])
        port = int.from_bytes(body[8:10], "big")
        return (source, port), total
    if address_family == 2:
        if len(body) < 36:
            raise ProxyError("truncated PROXY v2 IPv6 addresses")
        source = _normal(ipaddress.ip_address(body[0:16]))
        port = int.from_bytes(body[32:34], "big")
        return (source, port), total
    return None, total  # UNIX or unspecified: keep the peer as it is


def _recv_exact(sock: Any, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ProxyError("connection closed inside the PROXY header")
        data += chunk
    return data


class _Raw:
    """The plain-socket view of a connection, so an ``SSLSocket`` whose handshake has not
    started yet can have its PROXY header read (and peeked) before TLS (issue 14, finding 6)."""

    def __init__(self, sock: Any):
        self.sock = sock

    def recv(self, size: int, flags: int = 0) -> bytes:
        return socket.socket.recv(self.sock, size, flags)

    def settimeout(self, value: Optional[float]) -> None:
        socket.socket.settimeout(self.sock, value)

    def gettimeout(self) -> Optional[float]:
        return socket.socket.gettimeout(self.sock)

    def fileno(self) -> int:
        return self.sock.fileno()


def read_header(sock: Any, mode: str, timeout: float) -> Address:
    """Read one PROXY header (``mode``: v1, v2 or auto) and return the client it names.

    ``None`` means the header named no client (LOCAL, UNKNOWN): keep the peer.
    The header is peeked first, then exactly its bytes are read.  On a TLS
    listener the header comes before the handshake: it is read from the
    plain socket underneath.
    """
    if isinstance(sock, socket.socket) and type(sock) is not socket.socket:
        sock = _Raw(sock)
    deadline = time.monotonic() + timeout
    previous = sock.gettimeout()
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            head = sock.recv(V2_PEEK, socket.MSG_PEEK)
            if not head:
                raise ProxyError("connection closed before the PROXY header")
            if head.startswith(V2_SIGNATURE) and len(head) >= 16:
                if mode == "v1":
                    raise ProxyError("a PROXY v2 header where v1 was expected")
                total = 16 + int.from_bytes(head[14:16], "big")
                return parse_v2(_recv_exact(sock, total, deadline))[0]
            if head.startswith(b"PROXY "):
                if mode == "v2":
                    raise ProxyError("a PROXY v1 header where v2 was expected")
                end = head.find(b"\r\n")
                if end >= 0:
                    return parse_v1(_recv_exact(sock, end + 2, deadline))
                if len(head) >= V1_MAX:
                    raise ProxyError("PROXY v1 header not terminated within 107 bytes")
            elif not (V2_SIGNATURE.startswith(head[:12]) or b"PROXY ".startswith(head[:6])):
                raise ProxyError(f"expected a PROXY header ({mode})")
            # Only part of a header so far: wait for more, or notice the peer closed.
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                raise ProxyError("PROXY header not complete in time")
            if len(sock.recv(V2_PEEK, socket.MSG_PEEK)) == len(head):
                raise ProxyError("connection closed inside the PROXY header")
    except socket.timeout:
        raise ProxyError("PROXY header not received in time") from None
    finally:
        sock.settimeout(previous)
