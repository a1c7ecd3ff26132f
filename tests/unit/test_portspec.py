"""Unit tests for netserver.proto.spec: Net::Server's port specification grammar."""

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netserver.proto.spec import PortSpec, PortSpecError, pad, parse_ipv, parse_port


def P(host, port, proto="tcp", ipv="*"):
    return PortSpec(host=host, port=port, proto=proto, ipv=ipv)


HTTP = socket.getservbyname("http", "tcp")
DOMAIN_UDP = socket.getservbyname("domain", "udp")


# -- every documented string form ----------------------------------------------

FORMS = [
    # Net-Server.txt "port" section
    ("20203", P("*", 20203)),
    ("0", P("*", 0)),
    ("65535", P("*", 65535)),
    ("localhost:20203", P("localhost", 20203)),
    ("localhost:http", P("localhost", HTTP)),
    ("localhost:20203/tcp", P("localhost", 20203)),
    ("localhost:20203/tcp/IPv*", P("localhost", 20203)),
    ("localhost, 20203, tcp, IPv*", P("localhost", 20203)),
    ("localhost | 20203 | tcp | IPv*", P("localhost", 20203)),
    ("localhost|20203|tcp|IPv*", P("localhost", 20203)),
    ("localhost 20203 tcp", P("localhost", 20203)),
    ("localhost:20203/IPv*", P("localhost", 20203)),
    ("localhost:20203/IPv4", P("localhost", 20203, ipv="4")),
    ("localhost:20203/IPv6", P("localhost", 20203, ipv="6")),
    ("localhost:20203/IPv4/IPv6", P("localhost", 20203, ipv="4+6")),
    ("localhost:20203/IPv6/IPv4", P("localhost", 20203, ipv="4+6")),
    ("*:20203", P("*", 20203)),
    ("[*]:20203", P("*", 20203)),
    ("[]:20203", P("*", 20203)),
    (":20203", P("*", 20203)),
    # "ipv" section: colon separated ipv
    ("localhost:20203:IPv*", P("localhost", 20203)),
    ("localhost:20203:IPv6", P("localhost", 20203, ipv="6")),
    ("localhost:20203:IPv4", P("localhost", 20203, ipv="4")),
    ("localhost:20203:IPv4:IPv6", P("localhost", 20203, ipv="4+6")),
    ("127.0.0.1:20203", P("127.0.0.1", 20203, ipv="4")),
    ("[::1]:20203", P("::1", 20203, ipv="6")),
    # IPv6 literals
    ("[::1]:20203/tcp/IPv6", P("::1", 20203, ipv="6")),
    ("[::1]:20203 ipv6 tcp", P("::1", 20203, ipv="6")),
    ("[::1]:20203 tcp", P("::1", 20203, ipv="6")),
    ("[::1] 20203", P("::1", 20203, ipv="6")),
    ("::1, 80", P("::1", 80, ipv="6")),
    ("::1|80", P("::1", 80, ipv="6")),
    ("::1 80", P("::1", 80, ipv="6")),
    ("[::]:80", P("::", 80, ipv="*")),
    ("[::]:80/IPv6", P("::", 80, ipv="6")),
    ("[0:0::0]:80", P("::", 80, ipv="*")),
    ("[::FFFF:127.0.0.1]:80", P("::ffff:7f00:1", 80, ipv="6")),
    ("[2001:DB8::1]:80", P("2001:db8::1", 80, ipv="6")),
    ("[fe80::1%lo]:80", P("fe80::1%lo", 80, ipv="6")),
    ("fe80::1%lo, 80", P("fe80::1%lo", 80, ipv="6")),
    ("0.0.0.0:80", P("0.0.0.0", 80, ipv="4")),
    ("0.0.0.0:80/IPv*", P("0.0.0.0", 80, ipv="4")),
    ("[127.0.0.1]:80", P("127.0.0.1", 80, ipv="4")),
    ("[someother.com]:20203 ipv6 ipv4 tcp", P("someother.com", 20203, ipv="4+6")),
    ("[someother.com]:20203", P("someother.com", 20203)),
    # protos
    ("20203/udp", P("*", 20203, "udp")),
    ("20203/UDP", P("*", 20203, "udp")),
    ("localhost:20203/TCP", P("localhost", 20203)),
    ("localhost:20203/ssl", P("localhost", 20203, "ssl")),
    ("localhost:20203/SSL", P("localhost", 20203, "ssl")),
    ("localhost:20203/ssleay", P("localhost", 20203, "ssl")),
    ("localhost:20203/SSLeay", P("localhost", 20203, "ssl")),
    ("8443/ssl", P("*", 8443, "ssl")),
    ("localhost:domain/udp", P("localhost", DOMAIN_UDP, "udp")),
    ("host-1.example.com:80", P("host-1.example.com", 80)),
    ("localhost/20203", P("localhost", 20203)),  # "host/port"
    ("localhost/http", P("localhost", HTTP)),
    ("localhost:020203", P("localhost", 20203)),
    ("  localhost:20203  ", P("localhost", 20203)),
    # dotted (Python) protos kept as given
    ("someother.com:20203/mypkg.protos:MyUDP", P("someother.com", 20203, "mypkg.protos:MyUDP")),
    ("someother.com:20203/mypkg.protos.MyUDP", P("someother.com", 20203, "mypkg.protos.MyUDP")),
    ("someother.com:20203/mypkg.protos:MyUDP/IPv6", P("someother.com", 20203, "mypkg.protos:MyUDP", "6")),
    ("someother.com|20203|mypkg:MyTCP|IPv4", P("someother.com", 20203, "mypkg:MyTCP", "4")),
    ("20203 mypkg.protos.MyTCP", P("*", 20203, "mypkg.protos.MyTCP")),
    # Perl's own class names for the built-in protos
    ("someother.com:20203/Net::Server::Proto::UDP", P("someother.com", 20203, "udp")),
    ("someother.com:20203/Net::Server::Proto::SSLEAY", P("someother.com", 20203, "ssl")),
    # unix sockets
    ("/path/sock|unix", P("*", "/path/sock", "unix")),
    ("/path/sock|UNIX", P("*", "/path/sock", "unix")),
    ("/path/sock|unixdgram", P("*", "/path/sock", "unixdgram")),
    ("/path/sock|SOCK_DGRAM|unix", P("*", "/path/sock", "unixdgram")),
    ("/path/sock|SOCK_STREAM|unix", P("*", "/path/sock", "unix")),
    ("/path/sock|sock_dgram|unixdgram", P("*", "/path/sock", "unixdgram")),
    ("/path/sock|SOCK_DGRAM", P("*", "/path/sock", "unixdgram")),
    ("/path/sock|SOCK_STREAM", P("*", "/path/sock", "unix")),
    ("/path/sock unix", P("*", "/path/sock", "unix")),
    ("/path/sock|unix|IPv4", P("*", "/path/sock", "unix")),  # ipv is irrelevant for unix
    ("/path/tcp|unix", P("*", "/path/tcp", "unix")),  # '/' never separates a path
    ("/path/a:b|unix", P("*", "/path/a:b", "unix")),
    ("/tmp/my sock|unix", P("*", "/tmp/my sock", "unix")),
    ("sock|unix", P("*", "sock", "unix")),
    ("run/tcp|unix", P("*", "run/tcp", "unix")),
    ("./run/sock|unixdgram", P("*", "./run/sock", "unixdgram")),
]


@pytest.mark.parametrize("text,expected", FORMS, ids=[f[0] for f in FORMS])
def test_string_forms(text, expected):
    assert parse_port(text) == [expected]


def test_int_port():
    assert parse_port(20203) == [P("*", 20203)]
    assert parse_port(0) == [P("*", 0)]


def test_unix_path_with_unix_default_proto():
    assert parse_port("/path/sock", default_proto="unix") == [P("*", "/path/sock", "unix")]
    assert parse_port("/path/sock", default_proto="UNIXDGRAM") == [P("*", "/path/sock", "unixdgram")]
    assert parse_port("relative.sock", default_proto="unix") == [P("*", "relative.sock", "unix")]
    # the unix host is always '*', whatever the default host
    assert parse_port("/p", default_host="localhost", default_proto="unix") == [P("*", "/p", "unix")]


# -- the reference's numbered examples (Net-Server-Proto.txt) --------------------

EXAMPLES = [
    # (n, port, def_host, def_proto, def_ipv, expected)
    (1, "20203", "default-domain.com", None, None, [P("default-domain.com", 20203)]),
    (2, "someother.com:20203", "default-domain.com", "tcp", None, [P("someother.com", 20203)]),
    (3, "someother.com:20203/udp", "default-domain.com", "tcp", None, [P("someother.com", 20203, "udp")]),
    (
        4,
        "someother.com:20203/Net::Server::Proto::UDP",
        "default-domain.com",
        "TCP",
        4,
        [P("someother.com", 20203, "udp", "4")],
    ),
    (6, "/tmp/mysock.file|unix", "default-domain.com", "tcp", None, [P("*", "/tmp/mysock.file", "unix")]),
    (7, "/tmp/mysock.file|unixdgram", "default-domain.com", "tcp", None, [P("*", "/tmp/mysock.file", "unixdgram")]),
    (8, "/tmp/mysock.file|SOCK_STREAM|unix", "", "tcp", None, [P("*", "/tmp/mysock.file", "unix")]),
    (9, "/tmp/mysock.file|SOCK_DGRAM|unix", "", "tcp", None, [P("*", "/tmp/mysock.file", "unixdgram")]),
    (10, "someother.com:20203/ssleay", "default-domain.com", "tcp", None, [P("someother.com", 20203, "ssl")]),
    (11, "[::1]:20203 ipv6 tcp", "default-domain.com", "tcp", None, [P("::1", 20203, ipv="6")]),
    (12, "[::1]:20203 tcp", "default-domain.com/IPv6", "tcp", None, [P("::1", 20203, ipv="6")]),
    # 13: Perl returns two records (ipv 4 and 6); here one record with ipv '4+6', expanded by resolve()
    (13, "[someother.com]:20203 ipv6 ipv4 tcp", "default-domain.com", "tcp", None, [P("someother.com", 20203, ipv="4+6")]),
    (14, "localhost:20203", "default-domain.com", "tcp", None, [P("localhost", 20203)]),
    (15, "localhost:20203", "default-domain.com IPv*", "tcp", None, [P("localhost", 20203)]),
    # 16 uses $ENV{IPV}=4; the caller passes that as default_ipv
    (16, "localhost:20203", "default-domain.com", "tcp", "4", [P("localhost", 20203, ipv="4")]),
]


@pytest.mark.parametrize("n,port,host,proto,ipv,expected", EXAMPLES, ids=[f"example{e[0]}" for e in EXAMPLES])
def test_reference_examples(n, port, host, proto, ipv, expected):
    assert parse_port(port, host, proto, ipv) == expected


def test_example_5_perl_class_is_rejected_with_a_hint():
    with pytest.raises(PortSpecError, match=r"Perl class name.*package\.module:Class"):
        parse_port("someother.com:20203/MyObject::TCP")


# -- dicts, lists, PortSpec pass-through ------------------------------------------

DICTS = [
    ({"host": "localhost", "port": "20203", "ipv": 6, "proto": "udp"}, P("localhost", 20203, "udp", "6")),
    ({"host": "*", "port": "20203", "ipv": 4, "proto": "tcp"}, P("*", 20203, "tcp", "4")),
    ({"host": "localhost", "port": "20204", "ipv": "*", "proto": "ssleay"}, P("localhost", 20204, "ssl", "*")),
    ({"port": 20203}, P("*", 20203)),
    ({"port": "http"}, P("*", HTTP)),
    ({"port": 80, "host": "::1", "ipv": "IPv6"}, P("::1", 80, ipv="6")),
    ({"port": 80, "host": "[::1]"}, P("::1", 80, ipv="6")),
    ({"port": 80, "host": "localhost/IPv*"}, P("localhost", 80)),
    ({"port": 80, "host": "localhost IPv4 IPv6"}, P("localhost", 80, ipv="4+6")),
    ({"port": 80, "host": "localhost/IPv6", "ipv": "4"}, P("localhost", 80, ipv="4")),
    ({"port": 80, "proto": "tcp/IPv6"}, P("*", 80, ipv="6")),
    ({"port": 80, "proto": "mypkg.protos:MyTCP"}, P("*", 80, "mypkg.protos:MyTCP")),
    ({"port": "/tmp/s", "proto": "unix"}, P("*", "/tmp/s", "unix")),
    ({"port": "/tmp/s", "proto": "unix", "host": "localhost"}, P("*", "/tmp/s", "unix")),
    ({"port": "/tmp/s", "unix_type": "SOCK_DGRAM"}, P("*", "/tmp/s", "unixdgram")),
    ({"port": 80, "ipv": ["4", "6"]}, P("*", 80, ipv="4+6")),
    ({"port": 80, "host": None, "proto": None, "ipv": None}, P("*", 80)),
]


@pytest.mark.parametrize("value,expected", DICTS, ids=[repr(d[0]) for d in DICTS])
def test_dict_forms(value, expected):
    assert parse_port(value) == [expected]


def test_dict_missing_keys_take_the_defaults():
    assert parse_port({"port": 80}, "example.com", "udp", "6") == [P("example.com", 80, "udp", "6")]
    assert parse_port({"port": 80, "host": "h"}, "example.com/IPv4", "udp") == [P("h", 80, "udp", "*")]


def test_list_is_concatenated():
    got = parse_port(["20203", 20204, {"port": 20205, "proto": "udp"}, ["/s|unix", "[::1]:1"]])
    assert got == [P("*", 20203), P("*", 20204), P("*", 20205, "udp"), P("*", "/s", "unix"), P("::1", 1, ipv="6")]
    assert parse_port(("1", "2")) == [P("*", 1), P("*", 2)]
    assert parse_port([]) == []


def test_portspec_passes_through():
    spec = P("localhost", 1)
    assert parse_port(spec) == [spec]
    assert parse_port([spec, "2"]) == [spec, P("*", 2)]


# -- defaults and ipv precedence -----------------------------------------------------


def test_default_host_and_proto():
    assert parse_port("80", default_host="example.com") == [P("example.com", 80)]
    assert parse_port("80", default_host="[::1]") == [P("::1", 80, ipv="6")]
    assert parse_port("80", default_host="") == [P("*", 80)]
    assert parse_port("80", default_host=None) == [P("*", 80)]
    assert parse_port("80", default_proto="UDP") == [P("*", 80, "udp")]
    assert parse_port("80", default_proto=None) == [P("*", 80)]
    assert parse_port("80/tcp", default_proto="udp") == [P("*", 80, "tcp")]
    assert parse_port("h:80", default_host="example.com") == [P("h", 80)]
    assert parse_port("80", default_ipv=None) == [P("*", 80)]
    assert parse_port("80", default_ipv="IPv4") == [P("*", 80, ipv="4")]


PRECEDENCE = [
    # port text, default_host, default_proto, default_ipv -> ipv
    ("80", "*", "tcp", "4", "4"),  # default
    ("80", "*", "tcp/IPv6", "4", "6"),  # proto > default
    ("80", "*/IPv4", "tcp/IPv6", "6", "4"),  # host > proto
    ("80/IPv6", "*/IPv4", "tcp/IPv4", "4", "6"),  # port > host
    ("80/IPv*", "*/IPv4", "tcp/IPv4", "4", "*"),  # an explicit IPv* also wins
    ("localhost:80", "*/IPv4", "tcp", "*", "*"),  # a default host's ipv goes with that host
    ("80/udp", "*", "tcp/IPv6", "*", "*"),  # a default proto's ipv goes with that proto
    ("127.0.0.1:80", "*", "tcp", "*", "4"),  # address literal > everything
    ("[::1]:80", "*", "tcp", "*", "6"),
    ("[::1]:80/IPv*", "*", "tcp", "4", "6"),
    ("127.0.0.1:80/IPv*", "*", "tcp", "6", "4"),
    ("[::]:80", "*", "tcp", "*", "*"),  # '::' with IPv* stays any
    ("[::]:80", "*", "tcp", "6", "6"),
    ("80", "localhost IPv4 IPv6", "tcp", "*", "4+6"),
    ("80", "*", "tcp IPv4 IPv6", "*", "4+6"),
    ("80", "*", "tcp", "IPv4 IPv6", "4+6"),
]


@pytest.mark.parametrize("port,host,proto,ipv,expected", PRECEDENCE)
def test_ipv_precedence(port, host, proto, ipv, expected):
    (spec,) = parse_port(port, host, proto, ipv)
    assert spec.ipv == expected


def test_dict_ipv_precedence():
    assert parse_port({"port": 80, "ipv": 6}, "h/IPv4", "tcp/IPv4", "4")[0].ipv == "6"
    assert parse_port({"port": 80, "host": "h/IPv6", "proto": "tcp/IPv4"})[0].ipv == "6"
    assert parse_port({"port": 80, "proto": "tcp/IPv4"}, "h", "tcp", "6")[0].ipv == "4"


# -- errors ----------------------------------------------------------------------------

ERRORS = [
    ("localhost:70000", "port must be 0..65535"),
    ("65536", "port must be 0..65535"),
    ("99999999999999999999", "port must be 0..65535"),
    ("", "empty"),
    ("   ", "empty"),
    ("localhost:nosuchservice", "unknown service name 'nosuchservice'"),
    ("localhost", "unknown service name 'localhost'"),
    ("localhost:", "port"),
    ("-1", "must be a number 0..65535 or a service name"),
    ("localhost:-1", "must be a number 0..65535 or a service name"),
    ("localhost:20203/foo", "unknown proto 'foo'"),
    ("80/MyTcp", "unknown proto 'MyTcp'"),
    ("localhost:20203/tcp/udp", "more than one proto"),
    ("someother.com:20203/MyObject::TCP", "Perl class name"),
    ("localhost:80/IPv5", "ipv 'IPv5': must be 4, 6 or \\*"),
    ("127.0.0.1:80/IPv6", "IPv4 address '127.0.0.1' cannot be used with ipv IPv6"),
    ("127.0.0.1:80/IPv4/IPv6", "IPv4 address '127.0.0.1' cannot be used"),
    ("[::1]:80/IPv4", "IPv6 address '::1' cannot be used with ipv IPv4"),
    ("[::]:80/IPv4", "IPv6 address '::' cannot be used"),
    ("[::1]:80 ipv4 ipv6", "IPv6 address '::1' cannot be used"),
    ("::1", "missing port after address '::1'"),
    ("::1:80", "missing port after address '::1:80'"),  # a whole IPv6 address: brackets needed
    ("127.0.0.1", "missing port after address '127.0.0.1'"),
    ("[::1]", "missing port after the bracketed host"),
    ("[::1:80", "unbalanced"),
    ("[::1x]:80", "invalid IPv6 address"),
    ("1.2.3.999:80", "invalid IPv4 address"),
    ("80:80", "invalid IPv4 address"),
    ("bad_host!:80", "invalid host"),
    ("-host:80", "invalid host"),
    ("/path/sock", "a socket path needs proto unix or unixdgram"),
    ("/p|SOCK_STREAM|unixdgram", "contradicts SOCK_STREAM"),
    ("/p|SOCK_DGRAM|tcp", "contradicts SOCK_DGRAM"),
    ("a\x00b", "NUL"),
    ("h:80\x00", "NUL"),
    ("localhost:80/tcp extra", "unknown service name 'extra'|invalid host"),
    ("localhost:http/nope", "unknown proto 'nope'"),
]


@pytest.mark.parametrize("text,message", ERRORS, ids=[repr(e[0]) for e in ERRORS])
def test_errors(text, message):
    with pytest.raises(PortSpecError, match=message) as info:
        parse_port(text)
    # every message names the spec as given
    assert str(info.value).startswith(repr(text) + ": ")


def test_error_message_format():
    with pytest.raises(PortSpecError) as info:
        parse_port("localhost:70000")
    assert str(info.value) == "'localhost:70000': port must be 0..65535"
    assert isinstance(info.value, ValueError)


NON_STRING_ERRORS = [
    (None, "not a port specification"),
    (True, "not a port specification"),
    (3.5, "not a port specification"),
    (-1, "port must be 0..65535"),
    (65536, "port must be 0..65535"),
    ({}, "missing 'port'"),
    ({"host": "localhost", "ipv": 6}, "missing 'port'"),
    ({"port": ""}, "missing 'port'"),
    ({"port": 80, "bogus": 1}, "unknown key"),
    ({"port": 1.5}, "port must be"),
    ({"port": True}, "port must be"),
    ({"port": 80, "ipv": 5}, "ipv 5: must be 4, 6 or"),
    ({"port": 80, "proto": "nope"}, "unknown proto 'nope'"),
    ({"port": 80, "proto": 6}, "proto must be a string"),
    ({"port": 80, "proto": "tcp!"}, "not a protocol name"),
    ({"port": 80, "proto": "/IPv6"}, "not a protocol name|no protocol name"),
    ({"port": 80, "host": "a b"}, "invalid host"),
    ({"port": 80, "host": "127.0.0.1", "ipv": 6}, "cannot be used with ipv IPv6"),
    ({"port": "80/udp"}, "must be a number 0..65535 or a service name"),
    ({"port": "/s", "proto": "tcp"}, "a socket path needs proto unix"),
    ({"port": "/s", "unix_type": "SOCK_RAW"}, "unix_type"),
    ({"port": "", "proto": "unix"}, "missing 'port'"),
    ({"port": "a\x00b", "proto": "unix"}, "NUL"),
]


@pytest.mark.parametrize("value,message", NON_STRING_ERRORS, ids=[repr(e[0]) for e in NON_STRING_ERRORS])
def test_non_string_errors(value, message):
    with pytest.raises(PortSpecError, match=message) as info:
        parse_port(value)
    assert str(info.value).startswith(repr(value) + ": ")


def test_bad_defaults_are_errors_when_used():
    with pytest.raises(PortSpecError, match="invalid host"):
        parse_port("80", default_host="bad host!")
    with pytest.raises(PortSpecError, match="unknown proto"):
        parse_port("80", default_proto="bogus")
    with pytest.raises(PortSpecError, match="must be 4, 6 or"):
        parse_port("80", default_ipv="5")
    # unused defaults are not looked at
    assert parse_port("h:80/udp", default_host="bad host!", default_proto="bogus") == [P("h", 80, "udp")]


def test_error_inside_a_list_names_the_item():
    with pytest.raises(PortSpecError, match=r"^'x:70000': port must be"):
        parse_port(["80", "x:70000"])


# -- parse_ipv and pad ---------------------------------------------------------------------

IPVS = [
    ("4", "4"), (4, "4"), ("IPv4", "4"), ("ipv4", "4"), ("IPV4", "4"),
    ("6", "6"), (6, "6"), ("IPv6", "6"), ("ipv6", "6"),
    ("*", "*"), ("IPv*", "*"), ("ipv*", "*"), (" * ", "*"),
    ("IPv4 IPv6", "4+6"), ("IPv6 IPv4", "4+6"), ("4,6", "4+6"), ("46", "4+6"), ("4+6", "4+6"),
    ("4 6", "4+6"), ("IPv4/IPv6", "4+6"), ("IPv4|IPv6", "4+6"), (46, "4+6"), (["4", 6], "4+6"),
    ("IPv4 IPv*", "*"),  # Net::Server: a '*' anywhere means any
    ("4*", "*"),
]


@pytest.mark.parametrize("value,expected", IPVS, ids=[repr(v[0]) for v in IPVS])
def test_parse_ipv(value, expected):
    assert parse_ipv(value) == expected


@pytest.mark.parametrize("value", ["5", 5, "", "  ", "IPv", "IPv5", "ipv4x", "four", None, True, 4.0, "4 5", "v4", []])
def test_parse_ipv_errors(value):
    with pytest.raises(PortSpecError, match=r"^ipv .*: must be 4, 6 or \*$"):
        parse_ipv(value)


def test_parse_ipv_error_message():
    with pytest.raises(PortSpecError) as info:
        parse_ipv("5")
    assert str(info.value) == "ipv '5': must be 4, 6 or *"


@pytest.mark.parametrize(
    "values,n,expected",
    [
        (["a"], 3, ["a", "a", "a"]),
        (["a", "b"], 4, ["a", "b", "b", "b"]),
        (["a", "b", "c"], 3, ["a", "b", "c"]),
        (["a", "b", "c"], 2, ["a", "b"]),
        ([], 2, [None, None]),
        (None, 2, [None, None]),
        ("localhost", 2, ["localhost", "localhost"]),
        (("4", "6"), 3, ["4", "6", "6"]),
        (["a"], 0, []),
    ],
)
def test_pad(values, n, expected):
    assert pad(values, n) == expected


def test_pad_with_parse_port_like_net_server():
    """ports [20203, 20203] with host 'localhost' and ipv [4, 6] -> one of each family."""
    ports = [20203, 20203]
    hosts, ipvs = pad("localhost", len(ports)), pad([4, 6], len(ports))
    specs = [parse_port(p, h, "tcp", i)[0] for p, h, i in zip(ports, hosts, ipvs, strict=True)]
    assert specs == [P("localhost", 20203, ipv="4"), P("localhost", 20203, ipv="6")]


# -- str(PortSpec) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,text",
    [
        (P("*", 80), "*:80/tcp/IPv*"),
        (P("::1", 80, "udp", "6"), "[::1]:80/udp/IPv6"),
        (P("h", 1, "mypkg:X", "4+6"), "h:1/mypkg:X/IPv4/IPv6"),
        (P("*", "/tmp/s", "unixdgram"), "/tmp/s|unixdgram"),
    ],
)
def test_str_round_trips(spec, text):
    assert str(spec) == text
    assert parse_port(text) == [spec]


# -- property tests --------------------------------------------------------------------------

TOKENS = [
    "localhost", "*", "[", "]", "::1", "::", "127.0.0.1", "0.0.0.0", "host.example", "80", "0", "65535",
    "70000", "http", "tcp", "UDP", "ssl", "ssleay", "unix", "unixdgram", "SOCK_DGRAM", "sock_stream",
    "IPv4", "IPv6", "IPv*", "ipv5", "mypkg.mod:Cls", "a.b.C", "Net::Server::Proto::TCP", "Foo::Bar",
    "/tmp/s", "./s", "~", "%lo", "-", ":", "/", "|", ",", " ", "  ", "\t", "\n", "\x00", "é", "٣",
]


@pytest.mark.parametrize("repeats", [1000, 50000])
def test_a_long_chain_of_slash_words_is_a_portspecerror_not_a_recursion(repeats):
    """The portspec fuzzer's find: '0/_/_/…' split host and port recursively until the stack ran out
    (a traceback and exit 1 from --port, not one line and exit 2)."""
    with pytest.raises(PortSpecError):
        parse_port("0" + "/_" * repeats)


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=60), default_proto=st.sampled_from(["tcp", "udp", "unix", "ssl"]))
def test_arbitrary_text_raises_only_portspecerror(text, default_proto):
    try:
        result = parse_port(text, default_proto=default_proto)
    except PortSpecError:
        return
    assert len(result) == 1 and isinstance(result[0], PortSpec)


@settings(max_examples=600, deadline=None)
@given(
    parts=st.lists(st.sampled_from(TOKENS), max_size=9),
    default_host=st.sampled_from(["*", "localhost/IPv6", "[::1]", "", None, "bad host"]),
    default_proto=st.sampled_from(["tcp", "udp", "unix", "tcp/IPv4", "mypkg:X", None]),
    default_ipv=st.sampled_from(["*", "4", "6", "4+6", None]),
)
def test_grammar_soup_raises_only_portspecerror(parts, default_host, default_proto, default_ipv):
    try:
        result = parse_port("".join(parts), default_host, default_proto, default_ipv)
    except PortSpecError:
        return
    (spec,) = result
    assert spec.ipv in ("4", "6", "*", "4+6")
    if spec.proto in ("unix", "unixdgram"):
        assert spec.host == "*" and isinstance(spec.port, str) and spec.port
    else:
        assert isinstance(spec.port, int) and 0 <= spec.port <= 65535
        # whatever parses prints back to itself
        assert parse_port(str(spec)) == [spec]


HOSTS = ["*", "localhost", "example.com", "127.0.0.1", "0.0.0.0", "::1", "::", "2001:db8::1"]
PROTOS = ["tcp", "udp", "ssl", "mypkg.protos:MyTCP", "mypkg.protos.MyTCP"]
IPV_WORDS = {"4": ["IPv4"], "6": ["IPv6"], "*": ["IPv*"], "4+6": ["IPv4", "IPv6"]}


def _expected(host, port, proto, ipv):
    if host in ("127.0.0.1", "0.0.0.0"):
        if ipv in ("6", "4+6"):
            return None
        ipv = "4"
    elif ":" in host:
        if ipv in ("4", "4+6"):
            return None
        ipv = "*" if host == "::" and ipv == "*" else "6"
    return P(host, port, proto, ipv)


@settings(max_examples=300, deadline=None)
@given(
    host=st.sampled_from(HOSTS),
    port=st.integers(0, 65535),
    proto=st.sampled_from(PROTOS),
    ipv=st.sampled_from(["4", "6", "*", "4+6"]),
)
def test_formats_round_trip(host, port, proto, ipv):
    words = IPV_WORDS[ipv]
    bracketed = f"[{host}]" if ":" in host else host
    texts = [
        f"{bracketed}:{port}/{proto}/" + "/".join(words),
        f"{host}|{port}|{proto}|" + "|".join(words),
        f"{host}, {port}, {proto}, " + ", ".join(words),
        f"{bracketed} {port} {proto} " + " ".join(words),
    ]
    expected = _expected(host, port, proto, ipv)
    for text in texts:
        if expected is None:
            with pytest.raises(PortSpecError, match="cannot be used with ipv"):
                parse_port(text)
        else:
            assert parse_port(text) == [expected], text
            assert parse_port(str(expected)) == [expected]
