"""Unit tests for netserver.proto.resolve: PortSpec -> bind targets.

Most tests inject the machine's facts (ipv6_usable / ipv4_usable / bindv6only)
and a fake getaddrinfo so they are deterministic; the few that touch the real
machine bind loopback addresses only.
"""

import errno
import os
import socket

import pytest

from netserver.proto import resolve as R
from netserver.proto.resolve import BindTarget, ResolveError, bindv6only, ipv4_usable, ipv6_usable, resolve
from netserver.proto.spec import PortSpec

AF4, AF6, AFU = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX


def P(host, port, proto="tcp", ipv="*"):
    return PortSpec(host=host, port=port, proto=proto, ipv=ipv)


def env(v6=True, v4=True, v6only=False):
    return {"ipv6_usable": v6, "ipv4_usable": v4, "bindv6only": v6only}


def summary(targets):
    return [(t.family, t.address, t.v6only) for t in targets]


@pytest.fixture
def no_probes(monkeypatch):
    """Fail loudly if a test that injects the environment still probes the machine."""

    def boom():
        raise AssertionError("probed the machine")

    for name in ("ipv6_usable", "ipv4_usable", "bindv6only"):
        monkeypatch.setattr(R, name, boom)


# -- unix ------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["unix", "unixdgram"])
def test_unix_absolute(proto, no_probes):
    spec = P("*", "/tmp/x.sock", proto)
    targets, notes = resolve(spec)
    assert summary(targets) == [(AFU, "/tmp/x.sock", None)]
    assert notes == []
    (t,) = targets
    assert t.spec is spec and t.ipv == "UNIX" and t.describe_host() == "/tmp/x.sock" and t.port is None
    assert t.socktype == (socket.SOCK_DGRAM if proto == "unixdgram" else socket.SOCK_STREAM)


def test_unix_relative_path_made_absolute(tmp_path, monkeypatch, no_probes):
    monkeypatch.chdir(tmp_path)
    (t,), _ = resolve(P("*", "run/s.sock", "unix"))
    assert t.address == os.path.join(str(tmp_path), "run", "s.sock")
    assert os.path.isabs(t.address)


# -- '*' -----------------------------------------------------------------------------------

STAR = [
    # ipv, env, targets, notes
    (
        "*",
        env(),
        [(AF6, ("::", 8080, 0, 0), False)],
        [
            "Resolved [*]:8080 to [::]:8080, IPv6",
            "Not including resolved host [0.0.0.0] IPv4 because it will be handled by [::] IPv6",
        ],
    ),
    (
        "*",
        env(v6only=True),
        [(AF4, ("0.0.0.0", 8080), None), (AF6, ("::", 8080, 0, 0), True)],
        ["Resolved [*]:8080 to [0.0.0.0]:8080, IPv4", "Resolved [*]:8080 to [::]:8080, IPv6"],
    ),
    (
        "*",
        env(v6=False),
        [(AF4, ("0.0.0.0", 8080), None)],
        ["IPv6 is not usable on this host; binding [*]:8080 on IPv4 only", "Resolved [*]:8080 to [0.0.0.0]:8080, IPv4"],
    ),
    (
        "*",
        env(v6=False, v6only=True),
        [(AF4, ("0.0.0.0", 8080), None)],
        ["IPv6 is not usable on this host; binding [*]:8080 on IPv4 only", "Resolved [*]:8080 to [0.0.0.0]:8080, IPv4"],
    ),
    (
        "*",
        env(v4=False),
        [(AF6, ("::", 8080, 0, 0), True)],
        ["IPv4 is not usable on this host; binding [*]:8080 on IPv6 only", "Resolved [*]:8080 to [::]:8080, IPv6"],
    ),
    ("4", env(), [(AF4, ("0.0.0.0", 8080), None)], ["Resolved [*]:8080 to [0.0.0.0]:8080, IPv4"]),
    ("4", env(v6=False), [(AF4, ("0.0.0.0", 8080), None)], ["Resolved [*]:8080 to [0.0.0.0]:8080, IPv4"]),
    ("6", env(), [(AF6, ("::", 8080, 0, 0), True)], ["Resolved [*]:8080 to [::]:8080, IPv6"]),
    ("6", env(v4=False), [(AF6, ("::", 8080, 0, 0), True)], ["Resolved [*]:8080 to [::]:8080, IPv6"]),
    (
        "4+6",
        env(),
        [(AF4, ("0.0.0.0", 8080), None), (AF6, ("::", 8080, 0, 0), True)],
        ["Resolved [*]:8080 to [0.0.0.0]:8080, IPv4", "Resolved [*]:8080 to [::]:8080, IPv6"],
    ),
    (
        "4+6",
        env(v6only=True),
        [(AF4, ("0.0.0.0", 8080), None), (AF6, ("::", 8080, 0, 0), True)],
        ["Resolved [*]:8080 to [0.0.0.0]:8080, IPv4", "Resolved [*]:8080 to [::]:8080, IPv6"],
    ),
]


@pytest.mark.parametrize("ipv,environment,expected,notes", STAR)
def test_star(ipv, environment, expected, notes, no_probes):
    spec = P("*", 8080, ipv=ipv)
    targets, got_notes = resolve(spec, **environment)
    assert summary(targets) == expected
    assert got_notes == notes
    assert all(t.spec is spec for t in targets)


@pytest.mark.parametrize(
    "ipv,environment,message",
    [
        ("*", env(v6=False, v4=False), "neither IPv4 nor IPv6 is usable on this host"),
        ("4", env(v4=False), "IPv4 is not usable on this host"),
        ("6", env(v6=False), "IPv6 is not usable on this host"),
        ("4+6", env(v6=False), "IPv6 is not usable on this host"),
        ("4+6", env(v4=False), "IPv4 is not usable on this host"),
    ],
)
def test_star_errors(ipv, environment, message, no_probes):
    with pytest.raises(ResolveError, match=message) as info:
        resolve(P("*", 8080, ipv=ipv), **environment)
    assert "'*:8080/tcp/IPv" in str(info.value)  # names the spec
    assert isinstance(info.value, OSError)


def test_empty_host_is_any(no_probes):
    targets, _ = resolve(P("", 1), **env())
    assert summary(targets) == [(AF6, ("::", 1, 0, 0), False)]


def test_port_zero_stays_zero(no_probes):
    targets, notes = resolve(P("*", 0), **env(v6only=True))
    assert [t.port for t in targets] == [0, 0]
    assert notes[0] == "Resolved [*]:0 to [0.0.0.0]:0, IPv4"


# -- '::' with IPv* behaves like '*' ------------------------------------------------------------


def test_any6_with_ipv_any_is_dual_stack(no_probes):
    targets, notes = resolve(P("::", 80), **env())
    assert summary(targets) == [(AF6, ("::", 80, 0, 0), False)]
    assert notes == ["Not including resolved host [0.0.0.0] IPv4 because it will be handled by [::] IPv6"]


def test_any6_with_bindv6only(no_probes):
    targets, notes = resolve(P("::", 80), **env(v6only=True))
    assert summary(targets) == [(AF4, ("0.0.0.0", 80), None), (AF6, ("::", 80, 0, 0), True)]
    assert notes == ["Resolved [::]:80 to [0.0.0.0]:80, IPv4"]


def test_any6_without_ipv6(no_probes):
    targets, notes = resolve(P("::", 80), **env(v6=False))
    assert summary(targets) == [(AF4, ("0.0.0.0", 80), None)]
    assert notes[0] == "IPv6 is not usable on this host; binding [::]:80 on IPv4 only"


def test_any6_with_ipv6_only(no_probes):
    targets, notes = resolve(P("::", 80, ipv="6"), **env())
    assert summary(targets) == [(AF6, ("::", 80, 0, 0), True)]
    assert notes == []


# -- literals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host,ipv,expected",
    [
        ("127.0.0.1", "4", [(AF4, ("127.0.0.1", 80), None)]),
        ("127.0.0.1", "*", [(AF4, ("127.0.0.1", 80), None)]),
        ("0.0.0.0", "4", [(AF4, ("0.0.0.0", 80), None)]),
        ("::1", "6", [(AF6, ("::1", 80, 0, 0), True)]),
        ("::1", "*", [(AF6, ("::1", 80, 0, 0), True)]),
        ("2001:db8::1", "6", [(AF6, ("2001:db8::1", 80, 0, 0), True)]),
    ],
)
def test_literals(host, ipv, expected, no_probes):
    targets, notes = resolve(P(host, 80, ipv=ipv), **env())
    assert summary(targets) == expected
    assert notes == []


def test_literal_with_zone_gets_scope_id(no_probes):
    lo = socket.if_nametoindex("lo")
    (t,), _ = resolve(P("fe80::1%lo", 80, ipv="6"), **env())
    assert t.address == ("fe80::1", 80, 0, lo)
    assert t.v6only is True


@pytest.mark.parametrize(
    "host,ipv,environment,message",
    [
        ("::1", "6", env(v6=False), "IPv6 is not usable on this host"),
        ("127.0.0.1", "4", env(v4=False), "IPv4 is not usable on this host"),
        ("127.0.0.1", "6", env(), "IPv4 address '127.0.0.1' cannot be bound with ipv 6"),
        ("127.0.0.1", "4+6", env(), "cannot be bound"),
        ("::1", "4", env(), "IPv6 address '::1' cannot be bound with ipv 4"),
    ],
)
def test_literal_errors(host, ipv, environment, message, no_probes):
    with pytest.raises(ResolveError, match=message):
        resolve(P(host, 80, ipv=ipv), **environment)


@pytest.mark.parametrize(
    "spec,message",
    [
        (P("*", "80"), "port '80' is not a number"),
        (P("*", 70000), "port 70000 is not a number 0..65535"),
        (P("*", True), "is not a number"),
        (P("*", 80, ipv="5"), "ipv '5' must be"),
    ],
)
def test_malformed_specs(spec, message, no_probes):
    with pytest.raises(ResolveError, match=message):
        resolve(spec, **env())


# -- host names (with a fake getaddrinfo) ---------------------------------------------------------


def gai_entry(family, host, port=20203, socktype=socket.SOCK_STREAM):
    addr = (host, port) if family == AF4 else (host, port, 0, 0)
    return (family, socktype, 6, "", addr)


class FakeGai:
    def __init__(self, results=None, error=None):
        self.results = results or []
        self.error = error
        self.calls = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.calls.append((host, port, family, type, proto, flags))
        if self.error:
            raise self.error
        return [r for r in self.results if family in (0, r[0])]


@pytest.fixture
def gai(monkeypatch):
    fake = FakeGai(
        [
            gai_entry(AF6, "::1"),
            gai_entry(AF4, "127.0.0.1"),
            gai_entry(AF4, "127.0.0.1"),  # duplicates (one per protocol) are dropped
            gai_entry(AF6, "::1"),
            (socket.AF_UNIX, socket.SOCK_STREAM, 0, "", "/weird"),  # ignored
        ]
    )
    monkeypatch.setattr(R.socket, "getaddrinfo", fake)
    return fake


def test_name_both_families(gai, no_probes):
    targets, notes = resolve(P("localhost", 20203), **env())
    assert summary(targets) == [(AF6, ("::1", 20203, 0, 0), True), (AF4, ("127.0.0.1", 20203), None)]
    assert notes == [
        "Resolved [localhost]:20203 to [::1]:20203, IPv6",
        "Resolved [localhost]:20203 to [127.0.0.1]:20203, IPv4",
    ]
    assert gai.calls == [("localhost", 20203, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)]


@pytest.mark.parametrize(
    "ipv,family,expected",
    [
        ("4", AF4, [(AF4, ("127.0.0.1", 20203), None)]),
        ("6", AF6, [(AF6, ("::1", 20203, 0, 0), True)]),
        ("4+6", socket.AF_UNSPEC, [(AF6, ("::1", 20203, 0, 0), True), (AF4, ("127.0.0.1", 20203), None)]),
    ],
)
def test_name_family_per_ipv(ipv, family, expected, gai, no_probes):
    targets, _ = resolve(P("localhost", 20203, ipv=ipv), **env())
    assert summary(targets) == expected
    assert gai.calls[0][2] == family


@pytest.mark.parametrize(
    "proto,socktype",
    [("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM), ("ssl", socket.SOCK_STREAM), ("my.mod:P", socket.SOCK_STREAM)],
)
def test_name_socktype_per_proto(proto, socktype, gai, no_probes):
    targets, _ = resolve(P("localhost", 20203, proto=proto), **env())
    assert gai.calls[0][3] == socktype
    assert all(t.socktype == socktype for t in targets)


def test_name_drops_unusable_family(gai, no_probes):
    targets, notes = resolve(P("localhost", 20203), **env(v6=False))
    assert summary(targets) == [(AF4, ("127.0.0.1", 20203), None)]
    assert notes == [
        "Not including resolved host [::1] IPv6 because IPv6 is not usable on this host",
        "Resolved [localhost]:20203 to [127.0.0.1]:20203, IPv4",
    ]


def test_name_nothing_usable(gai, no_probes):
    with pytest.raises(ResolveError, match="not usable on this host"):
        resolve(P("localhost", 20203), **env(v6=False, v4=False))


def test_name_both_required_but_one_unusable(gai, no_probes):
    with pytest.raises(ResolveError, match="needs both families.*no usable IPv6"):
        resolve(P("localhost", 20203, ipv="4+6"), **env(v6=False))


def test_name_both_required_but_one_missing(monkeypatch, no_probes):
    monkeypatch.setattr(R.socket, "getaddrinfo", FakeGai([gai_entry(AF4, "10.0.0.1")]))
    with pytest.raises(ResolveError, match="no usable IPv6 address"):
        resolve(P("v4only.example", 20203, ipv="4+6"), **env())


def test_name_resolution_failure(monkeypatch, no_probes):
    monkeypatch.setattr(R.socket, "getaddrinfo", FakeGai(error=socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    with pytest.raises(ResolveError) as info:
        resolve(P("nope.invalid", 80), **env())
    assert str(info.value).startswith("cannot resolve host 'nope.invalid' for port spec 'nope.invalid:80/tcp/IPv*'")


def test_name_resolving_to_nothing_inet(monkeypatch, no_probes):
    monkeypatch.setattr(R.socket, "getaddrinfo", FakeGai([(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", "/x")]))
    with pytest.raises(ResolveError, match="cannot resolve host 'odd' .*no IPv4 or IPv6 address"):
        resolve(P("odd", 80), **env())


def test_name_only_probes_families_it_gets(monkeypatch):
    monkeypatch.setattr(R.socket, "getaddrinfo", FakeGai([gai_entry(AF4, "10.0.0.1")]))
    monkeypatch.setattr(R, "ipv6_usable", lambda: pytest.fail("IPv6 probed for an IPv4-only name"))
    monkeypatch.setattr(R, "bindv6only", lambda: pytest.fail("bindv6only probed for a name"))
    monkeypatch.setattr(R, "ipv4_usable", lambda: True)
    targets, _ = resolve(P("v4only.example", 20203))
    assert summary(targets) == [(AF4, ("10.0.0.1", 20203), None)]


# -- probing ------------------------------------------------------------------------------------


def test_none_means_probe(monkeypatch):
    calls = []
    for name, value in (("ipv6_usable", False), ("ipv4_usable", True), ("bindv6only", True)):
        monkeypatch.setattr(R, name, lambda n=name, v=value: calls.append(n) or v)
    targets, notes = resolve(P("*", 80))
    assert summary(targets) == [(AF4, ("0.0.0.0", 80), None)]
    assert sorted(set(calls)) == ["ipv4_usable", "ipv6_usable"]  # bindv6only not needed when v6 is unusable
    assert calls.count("ipv6_usable") == 1


def test_injected_values_override_probes(no_probes):
    assert summary(resolve(P("*", 80), ipv6_usable=True, ipv4_usable=True, bindv6only=False)[0]) == [
        (AF6, ("::", 80, 0, 0), False)
    ]


def test_probes_return_bools():
    assert isinstance(ipv6_usable(), bool)
    assert isinstance(ipv4_usable(), bool)
    assert isinstance(bindv6only(), bool)
    assert ipv4_usable() is True  # loopback IPv4 exists wherever these tests run


def test_probes_are_cached():
    ipv6_usable()
    before = ipv6_usable.cache_info().hits
    ipv6_usable()
    assert ipv6_usable.cache_info().hits == before + 1


class _FailingBindSocket:
    """socket.socket stand-in whose bind fails like Docker's disable_ipv6."""

    def __init__(self, family, type_):
        self.family = family

    def bind(self, address):
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fresh_probe_cache():
    ipv6_usable.cache_clear()
    ipv4_usable.cache_clear()
    yield
    ipv6_usable.cache_clear()
    ipv4_usable.cache_clear()


def test_ipv6_probe_fails_when_bind_fails(monkeypatch, fresh_probe_cache):
    monkeypatch.setattr(R.socket, "socket", _FailingBindSocket)
    assert ipv6_usable() is False
    assert ipv4_usable() is False


def test_ipv6_probe_fails_when_socket_fails(monkeypatch, fresh_probe_cache):
    def no_socket(family, type_):
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")

    monkeypatch.setattr(R.socket, "socket", no_socket)
    assert ipv6_usable() is False


def test_bindv6only_reads_proc(monkeypatch, tmp_path):
    real_open = open
    path = tmp_path / "bindv6only"

    def fake_open(name, *a, **kw):
        if name == "/proc/sys/net/ipv6/bindv6only":
            return real_open(path, *a, **kw)
        return real_open(name, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)
    path.write_text("1\n")
    assert bindv6only() is True
    path.write_text("0\n")
    assert bindv6only() is False
    path.write_text("garbage")
    assert bindv6only() is False
    path.unlink()
    assert bindv6only() is False


# -- BindTarget -----------------------------------------------------------------------------------


def test_bind_target_describe():
    spec = P("*", 80)
    t4 = BindTarget(AF4, ("127.0.0.1", 80), None, spec)
    t6 = BindTarget(AF6, ("::", 80, 0, 0), False, spec)
    tu = BindTarget(AFU, "/tmp/s", None, P("*", "/tmp/s", "unix"))
    assert (t4.describe_host(), t4.ipv, t4.port, str(t4)) == ("127.0.0.1", "IPv4", 80, "[127.0.0.1]:80")
    assert (t6.describe_host(), t6.ipv, t6.port, str(t6)) == ("::", "IPv6", 80, "[::]:80")
    assert (tu.describe_host(), tu.ipv, tu.port, str(tu)) == ("/tmp/s", "UNIX", None, "/tmp/s")


# -- the real machine (loopback only) -------------------------------------------------------------


def _bind(target):
    sock = socket.socket(target.family, target.socktype)
    if target.family == AF6 and target.v6only is not None:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(target.v6only))
    sock.bind(target.address)
    return sock


def test_real_localhost():
    targets, notes = resolve(P("localhost", 0))
    hosts = {t.describe_host() for t in targets}
    assert "127.0.0.1" in hosts or "::1" in hosts
    assert all(t.port == 0 for t in targets)
    assert all(n.startswith("Resolved [localhost]:0 to [") for n in notes if n.startswith("Resolved"))
    for t in targets:
        assert t.v6only is (True if t.family == AF6 else None)
        _bind(t).close()


def test_real_localhost_ipv4():
    targets, _ = resolve(P("localhost", 0, ipv="4"))
    assert {t.family for t in targets} == {AF4}
    assert "127.0.0.1" in {t.describe_host() for t in targets}


def test_real_ipv4_literal():
    (t,), notes = resolve(P("127.0.0.1", 0, ipv="4"))
    assert (t.family, t.address, t.v6only, notes) == (AF4, ("127.0.0.1", 0), None, [])
    _bind(t).close()


@pytest.mark.skipif(not ipv6_usable(), reason="IPv6 is not usable on this host")
def test_real_ipv6_literal_shares_port_with_ipv4():
    (t6,), _ = resolve(P("::1", 0, ipv="6"))
    assert (t6.family, t6.address, t6.v6only) == (AF6, ("::1", 0, 0, 0), True)
    s6 = _bind(t6)
    try:
        port = s6.getsockname()[1]
        (t4,), _ = resolve(P("127.0.0.1", port, ipv="4"))
        _bind(t4).close()  # V6ONLY on ::1 lets 127.0.0.1 take the same port
    finally:
        s6.close()


@pytest.mark.skipif(ipv6_usable(), reason="only meaningful where IPv6 is not usable")
def test_real_ipv6_literal_without_ipv6():
    with pytest.raises(ResolveError, match="IPv6 is not usable"):
        resolve(P("::1", 0, ipv="6"))


def test_real_star_matches_the_probes():
    targets, notes = resolve(P("*", 0))
    v6, v4, v6only = ipv6_usable(), ipv4_usable(), bindv6only()
    if v6 and v4 and not v6only:
        assert summary(targets) == [(AF6, ("::", 0, 0, 0), False)]
    elif v6 and v4:
        assert summary(targets) == [(AF4, ("0.0.0.0", 0), None), (AF6, ("::", 0, 0, 0), True)]
    elif v4:
        assert summary(targets) == [(AF4, ("0.0.0.0", 0), None)]
        assert "IPv6 is not usable" in notes[0]
