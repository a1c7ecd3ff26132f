"""Property-based fuzzing (hypothesis) of every parser that reads outside input.

Each property is bounded (``max_examples`` <= 200, no deadline) and prints how
many examples it ran.  The invariants are the ones the atheris harnesses in
fuzz/ check too: a parser fails only with its own error type, and the HTTP
request reader gives the same answer however the bytes are split.
"""

from __future__ import annotations

import ipaddress

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from netserver.access import AccessPolicy  # noqa: E402
from netserver.options import OptionError, parse_argv, parse_conf_text  # noqa: E402
from netserver.options.core import OPTIONS  # noqa: E402
from netserver.proto.spec import PortSpecError, parse_port  # noqa: E402
from netserver import proxy  # noqa: E402
from reader_outcome import outcome  # noqa: E402

TEMPLATE = {option.name: option for option in OPTIONS}
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
COUNTS = {}


def counted(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def print_counts(request):
    yield
    name = request.node.name
    print(f"\n[fuzz] {name}: {COUNTS.get(name, 0)} examples")


# -- port specifications --------------------------------------------------------------------

PORT_ALPHABET = st.sampled_from(list("0123456789:/|,[]*.-_ %abcdefhilnoprstuvxzAIPTUDNSKCGMv\t\\"))
port_text = st.one_of(
    st.text(max_size=60),
    st.text(PORT_ALPHABET, max_size=60),
    st.builds(lambda h, p, rest: f"{h}:{p}{rest}",
              st.sampled_from(["localhost", "127.0.0.1", "[::1]", "*", "::1", "[fe80::1%lo]", ""]),
              st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["http", "ftp", "", "0x10", "1e3"])),
              st.sampled_from(["", "/tcp", "/udp", "/unix", "/tcp/IPv6", "/IPv4", "/ssl", "/tcp/IPv*", "/x/y/z"])),
)


@BOUNDED
@given(spec=st.one_of(port_text, st.integers(), st.dictionaries(
    st.sampled_from(["host", "port", "proto", "ipv", "unix_type", "x"]),
    st.one_of(st.text(max_size=10), st.integers(-3, 70000), st.none()), max_size=5)))
def test_parse_port_raises_only_portspecerror(spec):
    counted("test_parse_port_raises_only_portspecerror")
    try:
        result = parse_port(spec)
    except PortSpecError:
        return
    assert isinstance(result, list) and len(result) == 1


# -- conf files and command lines ---------------------------------------------------------------

KEYS = sorted(TEMPLATE)
conf_line = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, sep, v: f"{k}{sep}{v}", st.sampled_from(KEYS), st.sampled_from([" ", "\t", "  ", ""]),
              st.text(max_size=20)),
    st.sampled_from(["#", "# comment", "", "   ", "port", "=", "\x00", "\ufeffport 1"]),
)


@BOUNDED
@given(lines=st.lists(conf_line, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\u2028"]))
def test_parse_conf_text_raises_only_optionerror(lines, newline):
    counted("test_parse_conf_text_raises_only_optionerror")
    try:
        entries = parse_conf_text(newline.join(lines), "fuzz.conf", TEMPLATE)
    except OptionError:
        return
    for key, value, _source in entries:
        assert key in TEMPLATE
        # Every accepted value goes through the option's own validation the same way.
        try:
            TEMPLATE[key].parse(value, "fuzz")
        except OptionError:
            pass


argv_word = st.one_of(
    st.text(max_size=20),
    st.builds(lambda d, k: d + k, st.sampled_from(["--", "-", ""]), st.sampled_from(KEYS)),
    st.builds(lambda d, k, v: f"{d}{k}={v}", st.sampled_from(["--", "-", ""]), st.sampled_from(KEYS),
              st.text(max_size=10)),
    st.sampled_from(["--", "-", "=", "--=", "yes", "0"]),
)


@BOUNDED
@given(argv=st.lists(argv_word, max_size=10))
def test_parse_argv_raises_only_optionerror(argv):
    counted("test_parse_argv_raises_only_optionerror")
    try:
        entries, rest = parse_argv(argv, TEMPLATE)
    except OptionError:
        return
    assert len(rest) <= len(argv)
    assert all(word in argv for word in rest)


# -- HTTP requests -----------------------------------------------------------------------------


def split(data: bytes, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@BOUNDED
@given(data=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda a, b: a + b, st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\n",
                                                   b"GET / HTTP/1.0\r\n", b"PUT /p HTTP/1.1\r\nHost: h\r\n"
                                                   b"Transfer-Encoding: chunked\r\n\r\n"]),
              st.binary(max_size=200))),
    cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_request_reader_raises_only_httperror_and_splits_agree(data, cuts):
    counted("test_request_reader_raises_only_httperror_and_splits_agree")
    whole = outcome([data])
    assert outcome(split(data, cuts)) == whole
    assert outcome([data[i:i + 1] for i in range(len(data))]) == whole


token = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-!#$&'*+.^_`|~"), min_size=1, max_size=12)
field_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
path = st.lists(st.text(st.sampled_from("abcdefghij0123456789-_~"), min_size=1, max_size=8), max_size=4).map(
    lambda parts: "/" + "/".join(parts))
query = st.one_of(st.just(""), st.text(st.sampled_from("abc=&123"), max_size=10).map(lambda q: "?" + q))
RESERVED = {"host", "content-length", "transfer-encoding", "expect", "connection", "upgrade", "te", "trailer"}


@st.composite
def valid_request(draw):
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    target = draw(path) + draw(query)
    headers = [(name, value) for name, value in draw(st.lists(st.tuples(token, field_value), max_size=6))
               if name.lower() not in RESERVED]
    body = draw(st.binary(max_size=200)) if method in ("POST", "PUT", "PATCH") else b""
    chunked = bool(body) and draw(st.booleans())
    lines = [f"{method} {target} HTTP/1.1", "Host: example"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 64), min_size=1, max_size=6))
        pieces, rest = [], body
        for size in sizes:
            if not rest:
                break
            pieces.append(rest[:size])
            rest = rest[size:]
        if rest:
            pieces.append(rest)
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        encoded = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded, (method, target, body)


@BOUNDED
@given(requests=st.lists(valid_request(), min_size=1, max_size=3), cuts=st.lists(st.integers(0, 10_000), max_size=10))
def test_valid_requests_parse_the_same_however_split(requests, cuts):
    counted("test_valid_requests_parse_the_same_however_split")
    data = b"".join(raw for raw, _ in requests)
    whole = outcome([data])
    assert whole[1] is None, whole
    assert [(r[0].decode(), r[1].decode(), r[4]) for r in whole[0]] == [expected for _, expected in requests]
    assert outcome(split(data, cuts)) == whole
    assert outcome([data[i:i + 1] for i in range(len(data))]) == whole


# -- the PROXY protocol --------------------------------------------------------------------------

v1_line = st.one_of(
    st.binary(max_size=120),
    st.builds(lambda fam, a, b, p, q, end: f"PROXY {fam} {a} {b} {p} {q}".encode() + end,
              st.sampled_from(["TCP4", "TCP6", "UNKNOWN", "UDP4", "tcp4", ""]),
              st.sampled_from(["1.2.3.4", "::1", "256.1.1.1", "01.2.3.4", "::ffff:1.2.3.4", "fe80::1%lo", ""]),
              st.sampled_from(["5.6.7.8", "::2", "x"]),
              st.one_of(st.integers(-1, 70000).map(str), st.sampled_from(["080", "", "+1", "١٢"])),
              st.integers(0, 65535).map(str),
              st.sampled_from([b"\r\n", b"\n", b"", b"\r\n\r\n", b" \r\n"])),
)


@BOUNDED
@given(line=v1_line)
def test_proxy_v1_raises_only_proxyerror(line):
    counted("test_proxy_v1_raises_only_proxyerror")
    try:
        result = proxy.parse_v1(line)
    except proxy.ProxyError:
        return
    if result is not None:
        host, port = result
        ipaddress.ip_address(host)
        assert 0 <= port <= 65535


v2_header = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda vc, fam, length, body: proxy.V2_SIGNATURE + bytes([vc, fam]) + length.to_bytes(2, "big") + body,
              st.integers(0, 255), st.integers(0, 255), st.integers(0, 400), st.binary(max_size=300)),
)


@BOUNDED
@given(data=v2_header)
def test_proxy_v2_raises_only_proxyerror(data):
    counted("test_proxy_v2_raises_only_proxyerror")
    try:
        address, total = proxy.parse_v2(data)
    except proxy.ProxyError:
        return
    assert 16 <= total <= len(data)
    if address is not None:
        ipaddress.ip_address(address[0])
        assert 0 <= address[1] <= 65535


# -- access control: every textual form of a denied address is denied ------------------------------

DENY = AccessPolicy(cidr_deny=["127.0.0.0/8", "fe80::/10", "2001:db8::/32"])


@BOUNDED
@given(address=st.one_of(
    st.ip_addresses(network="127.0.0.0/8").map(lambda a: [str(a), f"::ffff:{a}",
                                                         str(ipaddress.IPv6Address(int(a) | 0xFFFF00000000)),
                                                         f"::ffff:{a}%lo"]),
    st.ip_addresses(network="fe80::/10").map(lambda a: [str(a), f"{a}%lo", f"{a}%2", a.exploded, str(a).upper()]),
    st.ip_addresses(network="2001:db8::/32").map(lambda a: [str(a), a.exploded])))
def test_denied_addresses_are_denied_in_every_form(address):
    counted("test_denied_addresses_are_denied_in_every_form")
    for form in address:
        assert not DENY.check(form).allowed, form
