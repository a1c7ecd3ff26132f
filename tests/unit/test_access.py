"""Unit tests for netserver.access (no network: DNS tests use loopback only)."""

import ipaddress
import re
import socket

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netserver.access import (
    AccessConfigError,
    AccessPolicy,
    Decision,
    compile_patterns,
    forward_confirms,
    normalize_address,
    parse_cidr_list,
    reverse_lookup,
)


# --------------------------------------------------------------- normalize_address

@pytest.mark.parametrize(
    "addr, expected",
    [
        ("10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("::FFFF:10.1.2.3", "10.1.2.3"),
        ("::ffff:a01:203", "10.1.2.3"),
        ("::FFFF:A01:203", "10.1.2.3"),
        ("0:0:0:0:0:ffff:10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3%eth0", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::1"),
        ("FE80::1%2", "fe80::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::1", "::1"),
        ("::", "::"),
        ("::102:304", "::102:304"),  # IPv4-compatible (deprecated) is not mapped
        ("", ""),
        ("/tmp/server.sock", "/tmp/server.sock"),
        ("localhost", "localhost"),
        ("127.1", "127.1"),
        ("010.0.0.1", "010.0.0.1"),
        ("10.0.0.1%eth0", "10.0.0.1%eth0"),
        ("fe80::1%", "fe80::1%"),
        (" 10.0.0.1", " 10.0.0.1"),
    ],
)
def test_normalize_address(addr, expected):
    assert normalize_address(addr) == expected


# ----------------------------------------------------------------- parse_cidr_list

@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        ("10.0.0.0/8, ::1/128", ["10.0.0.0/8", "::1/128"]),
        ("10.0.0.0/8 ::1/128", ["10.0.0.0/8", "::1/128"]),
        (" 10.0.0.0/8 ,\t192.168.0.0/16,,\n::1 ", ["10.0.0.0/8", "192.168.0.0/16", "::1/128"]),
        (["10.0.0.0/8", "192.168.0.0/16 2001:db8::/32"],
         ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]),
        (("127.0.0.1",), ["127.0.0.1/32"]),
        ("2001:db8::1", ["2001:db8::1/128"]),
        ("10.1.2.3/8", ["10.0.0.0/8"]),  # host bits cleared
        ("::ffff:127.0.0.0/104", ["127.0.0.0/8"]),
        ("::FFFF:127.0.0.0/104", ["127.0.0.0/8"]),
        ("::ffff:7f00:0/104", ["127.0.0.0/8"]),
        ("::ffff:10.1.2.3", ["10.1.2.3/32"]),
        ("::ffff:10.1.2.3/128", ["10.1.2.3/32"]),
        ("::ffff:0:0/96", ["0.0.0.0/0"]),
        ("0.0.0.0/0", ["0.0.0.0/0"]),
        ("::/0", ["::/0"]),
        ("fe80::%eth0/64", ["fe80::/64"]),
        ("", []),
        (" , ", []),
        ([], []),
        ((), []),
        (None, []),
    ],
)
def test_parse_cidr_list(value, expected):
    nets = parse_cidr_list(value)
    assert all(isinstance(n, netaddr.IPNetwork) for n in nets)
    assert [str(n) for n in nets] == expected


def test_parse_cidr_list_accepts_generator():
    assert [str(n) for n in parse_cidr_list(s for s in ["10.0.0.0/8"])] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "value, named",
    [
        ("10.0.0.0/33", "'10.0.0.0/33'"),
        ("::/129", "'::/129'"),
        ("10.0.0.0/", "'10.0.0.0/'"),
        ("10.0.0.0/-1", "'10.0.0.0/-1'"),
        ("10.0.0.0/+8", "'10.0.0.0/+8'"),
        ("10.0.0.0/255.0.0.0", "'10.0.0.0/255.0.0.0'"),
        ("10.0.0.0/8/8", "'10.0.0.0/8/8'"),
        ("10.0.0.0/0008", "'10.0.0.0/0008'"),
        ("nonsense", "'nonsense'"),
        ("10.0.0.0/8, bogus/8", "'bogus/8'"),
        (["10.0.0.0/8", "300.0.0.0/8"], "'300.0.0.0/8'"),
        ("127.1/32", "'127.1/32'"),
        ("010.0.0.0/8", "'010.0.0.0/8'"),
        ("::ffff:10.0.0.0/64", "'::ffff:10.0.0.0/64'"),
        ("::ffff:0:0/95", "'::ffff:0:0/95'"),
        ("::ffff:10.0.0.0/129", "'::ffff:10.0.0.0/129'"),
        ("10.0.0.0%eth0/8", "'10.0.0.0%eth0/8'"),
    ],
)
def test_parse_cidr_list_errors_name_the_bad_piece(value, named):
    with pytest.raises(AccessConfigError) as info:
        parse_cidr_list(value)
    assert named in str(info.value)
    assert "is not a CIDR block" in str(info.value)


def test_parse_cidr_list_mapped_short_prefix_message():
    with pytest.raises(AccessConfigError, match=r"IPv4-mapped.*at least 96.*/64"):
        parse_cidr_list("::ffff:10.0.0.0/64")


@pytest.mark.parametrize("value", [[1], ["10.0.0.0/8", None], b"10.0.0.0/8", 5])
def test_parse_cidr_list_rejects_non_strings(value):
    with pytest.raises(AccessConfigError, match="string"):
        parse_cidr_list(value)


def test_access_config_error_is_value_error():
    assert issubclass(AccessConfigError, ValueError)


# ---------------------------------------------------------------- compile_patterns

def test_compile_patterns_str_and_list():
    assert [p.pattern for p in compile_patterns(r"10\.0\.0\.1")] == [r"10\.0\.0\.1"]
    pats = compile_patterns([r"a, b", r".*\.example\.com"])  # a regex is never split
    assert [p.pattern for p in pats] == [r"a, b", r".*\.example\.com"]
    assert all(isinstance(p, re.Pattern) for p in pats)
    assert compile_patterns(()) == [] and compile_patterns(None) == []


@pytest.mark.parametrize("bad", ["(", "[a-", "a{2,1}", "*x"])
def test_compile_patterns_error_names_regex_and_reason(bad):
    with pytest.raises(AccessConfigError) as info:
        compile_patterns(["ok", bad])
    try:
        re.compile(bad)
    except re.error as exc:
        expected = str(exc)
    assert repr(bad) in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("value", [[1], [b"x"], 3])
def test_compile_patterns_rejects_non_strings(value):
    with pytest.raises(AccessConfigError, match="string"):
        compile_patterns(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allow": ["("]},
        {"deny": "[z-a]"},
        {"cidr_allow": "10.0.0.0/33"},
        {"cidr_deny": ["::ffff:10.0.0.0/64"]},
        {"cidr_allow": [42]},
    ],
)
def test_policy_rejects_bad_config(kwargs):
    with pytest.raises(AccessConfigError):
        AccessPolicy(**kwargs)


# ---------------------------------------------------------------- check(): tables

LOOP4 = {"cidr_allow": "127.0.0.0/8"}
MIXED = {"cidr_allow": "10.0.0.0/8, ::1/128 2001:db8::/32,192.168.1.0/24"}
DENY_FIRST = {"cidr_allow": "10.0.0.0/8", "cidr_deny": "10.1.0.0/16", "deny": [r"10\.2\.0\.1"]}
ONLY_DENY = {"cidr_deny": ["127.0.0.0/8", "::1"], "deny": [r"192\.168\..*"]}
HOSTS = {"allow": [r".*\.good\.example"], "deny": [r"evil\.good\.example"],
         "reverse_lookups": True}

CHECK_CASES = [
    # no rules
    ({}, "10.0.0.1", None, False, True, "no rules"),
    ({}, "", None, False, True, "no rules"),
    ({"reverse_lookups": True}, "10.0.0.1", None, False, True, "no rules"),
    # unix socket peers
    (LOOP4, "", None, False, True, "unix socket peer"),
    (LOOP4, "/tmp/server.sock", None, False, True, "unix socket peer"),
    ({"deny": [".*"], "cidr_deny": "0.0.0.0/0"}, "", None, False, True, "unix socket peer"),
    # plain IPv4
    (LOOP4, "127.0.0.1", None, False, True, "matched cidr_allow 127.0.0.0/8"),
    (LOOP4, "127.255.255.255", None, False, True, "matched cidr_allow 127.0.0.0/8"),
    (LOOP4, "128.0.0.0", None, False, False, "no allow rule matched"),
    (LOOP4, "126.255.255.255", None, False, False, "no allow rule matched"),
    # IPv4-mapped peer vs plain rule
    (LOOP4, "::ffff:127.0.0.1", None, False, True, "matched cidr_allow 127.0.0.0/8"),
    (LOOP4, "::FFFF:7f00:1", None, False, True, "matched cidr_allow 127.0.0.0/8"),
    (LOOP4, "::ffff:10.0.0.1", None, False, False, "no allow rule matched"),
    ({"cidr_deny": "127.0.0.0/8"}, "::ffff:127.0.0.1", None, False, False,
     "matched cidr_deny 127.0.0.0/8"),
    # mapped rule vs plain and mapped peers
    ({"cidr_allow": "::ffff:127.0.0.0/104"}, "127.0.0.1", None, False, True,
     "matched cidr_allow 127.0.0.0/8"),
    ({"cidr_allow": "::ffff:127.0.0.0/104"}, "::ffff:127.0.0.1", None, False, True,
     "matched cidr_allow 127.0.0.0/8"),
    ({"cidr_deny": "::ffff:10.0.0.1"}, "10.0.0.1", None, False, False,
     "matched cidr_deny 10.0.0.1/32"),
    # IPv6
    ({"cidr_allow": "2001:db8::/32"}, "2001:db8:ffff::1", None, False, True,
     "matched cidr_allow 2001:db8::/32"),
    ({"cidr_allow": "2001:db8::/32"}, "2001:DB8::1", None, False, True,
     "matched cidr_allow 2001:db8::/32"),
    ({"cidr_allow": "2001:db8::/32"}, "2001:db9::1", None, False, False, "no allow rule matched"),
    ({"cidr_allow": "fe80::/10"}, "fe80::1%eth0", None, False, True, "matched cidr_allow fe80::/10"),
    ({"cidr_deny": "fe80::1"}, "fe80::1%lo", None, False, False, "matched cidr_deny fe80::1/128"),
    # families never cross (and nothing raises)
    ({"cidr_allow": "0.0.0.0/0"}, "::1", None, False, False, "no allow rule matched"),
    ({"cidr_allow": "::/0"}, "10.0.0.1", None, False, False, "no allow rule matched"),
    ({"cidr_allow": "::/0"}, "::ffff:10.0.0.1", None, False, False, "no allow rule matched"),
    ({"cidr_allow": "::/0"}, "2001:db8::1", None, False, True, "matched cidr_allow ::/0"),
    ({"cidr_deny": "::/0"}, "10.0.0.1", None, False, False, "no allow rule: deny rules alone refuse every other client"),
    ({"cidr_deny": "0.0.0.0/0"}, "::1", None, False, False, "no allow rule: deny rules alone refuse every other client"),
    # mixed v4/v6 lists in one option (munin#1177)
    (MIXED, "10.9.8.7", None, False, True, "matched cidr_allow 10.0.0.0/8"),
    (MIXED, "::1", None, False, True, "matched cidr_allow ::1/128"),
    (MIXED, "2001:db8::42", None, False, True, "matched cidr_allow 2001:db8::/32"),
    (MIXED, "192.168.1.200", None, False, True, "matched cidr_allow 192.168.1.0/24"),
    (MIXED, "::ffff:192.168.1.200", None, False, True, "matched cidr_allow 192.168.1.0/24"),
    (MIXED, "192.168.2.1", None, False, False, "no allow rule matched"),
    (MIXED, "::2", None, False, False, "no allow rule matched"),
    # deny before allow
    (DENY_FIRST, "10.0.0.1", None, False, True, "matched cidr_allow 10.0.0.0/8"),
    (DENY_FIRST, "10.1.2.3", None, False, False, "matched cidr_deny 10.1.0.0/16"),
    (DENY_FIRST, "10.2.0.1", None, False, False, r"matched deny 10\.2\.0\.1"),
    (DENY_FIRST, "::ffff:10.2.0.1", None, False, False, r"matched deny 10\.2\.0\.1"),
    (DENY_FIRST, "11.0.0.1", None, False, False, "no allow rule matched"),
    ({"allow": [".*"], "deny": [r"10\..*"]}, "10.0.0.1", None, False, False, r"matched deny 10\..*"),
    ({"cidr_allow": "10.0.0.1", "cidr_deny": "10.0.0.0/8"}, "10.0.0.1", None, False, False,
     "matched cidr_deny 10.0.0.0/8"),
    # only deny rules: Net::Server's "must match an allow and not match a deny" refuses the rest too
    (ONLY_DENY, "10.0.0.1", None, False, False, "no allow rule: deny rules alone refuse every other client"),
    (ONLY_DENY, "2001:db8::1", None, False, False, "no allow rule: deny rules alone refuse every other client"),
    (ONLY_DENY, "127.0.0.2", None, False, False, "matched cidr_deny 127.0.0.0/8"),
    (ONLY_DENY, "::1", None, False, False, "matched cidr_deny ::1/128"),
    (ONLY_DENY, "192.168.7.7", None, False, False, r"matched deny 192\.168\..*"),
    # only allow rules
    ({"allow": [r"10\.0\.0\.\d+"]}, "10.0.0.99", None, False, True, r"matched allow 10\.0\.0\.\d+"),
    ({"allow": [r"10\.0\.0\.\d+"]}, "10.0.1.99", None, False, False, "no allow rule matched"),
    # regexes are anchored at both ends
    ({"allow": [r"127\.0\.0\.1"]}, "127.0.0.1", None, False, True, r"matched allow 127\.0\.0\.1"),
    ({"allow": [r"127\.0\.0\.1"]}, "127.0.0.10", None, False, False, "no allow rule matched"),
    ({"allow": [r"27\.0\.0\.1"]}, "127.0.0.1", None, False, False, "no allow rule matched"),
    ({"allow": [r"0\.0\.1"]}, "127.0.0.1", None, False, False, "no allow rule matched"),
    ({"deny": [r"127\.0\.0\.1"]}, "127.0.0.10", None, False, False, "no allow rule: deny rules alone refuse every other client"),
    ({"allow": ["127.0.0.1|10.0.0.1"]}, "10.0.0.1", None, False, True, "matched allow"),
    ({"allow": ["127.0.0.1|10.0.0.1"]}, "10.0.0.12", None, False, False, "no allow rule matched"),
    # regexes see the normalised address and the original text
    ({"allow": [r"127\.0\.0\.1"]}, "::ffff:127.0.0.1", None, False, True, r"matched allow 127\.0\.0\.1"),
    ({"allow": [r"::ffff:127\.0\.0\.1"]}, "::ffff:127.0.0.1", None, False, True,
     r"matched allow ::ffff:127\.0\.0\.1"),
    # ... and an IPv4 peer is also tried in IPv4-mapped form, whichever socket it came on (issue 14)
    ({"allow": [r"::ffff:127\.0\.0\.1"]}, "127.0.0.1", None, False, True, r"matched allow ::ffff:127\.0\.0\.1"),
    ({"allow": ["2001:db8::1"]}, "2001:DB8:0::1", None, False, True, "matched allow 2001:db8::1"),
    ({"allow": ["fe80::1"]}, "fe80::1%eth0", None, False, True, "matched allow fe80::1"),
    ({"allow": [r"fe80::1%eth0"]}, "fe80::1%eth0", None, False, True, "matched allow fe80::1%eth0"),
    ({"deny": ["::1"], "cidr_allow": "::/0"}, "0::1", None, False, False, "matched deny ::1"),
    # host rules: only a forward-confirmed name is matched (CVE-2013-1841)
    (HOSTS, "192.0.2.1", "www.good.example", True, True,
     r"matched allow .*\.good\.example (host www.good.example)"),
    (HOSTS, "192.0.2.1", "www.good.example", False, False, "no allow rule matched"),
    (HOSTS, "192.0.2.1", None, True, False, "no allow rule matched"),
    (HOSTS, "192.0.2.1", "", True, False, "no allow rule matched"),
    (HOSTS, "192.0.2.1", "evil.good.example", True, False,
     r"matched deny evil\.good\.example (host evil.good.example)"),
    (HOSTS, "192.0.2.1", "evil.good.example", False, False, "no allow rule matched"),
    (HOSTS, "192.0.2.1", "www.good.example.attacker.test", True, False, "no allow rule matched"),
    (HOSTS, "::ffff:192.0.2.1", "a.good.example", True, True, "(host a.good.example)"),
    (HOSTS, "2001:db8::1", "a.good.example", True, True, "(host a.good.example)"),
    ({"deny": [r"evil\.test"], "reverse_lookups": True}, "192.0.2.1", "evil.test", False, False,
     "no allow rule: deny rules alone refuse every other client"),
    ({"deny": [r"evil\.test"], "reverse_lookups": True}, "192.0.2.1", "evil.test", True, False,
     r"matched deny evil\.test (host evil.test)"),
    # a confirmed host plus a CIDR rule: CIDR still applies to the address
    ({"allow": [r"x\.test"], "cidr_allow": "10.0.0.0/8", "reverse_lookups": True},
     "10.0.0.1", "y.test", True, True, "matched cidr_allow 10.0.0.0/8"),
    ({"deny": [r"x\.test"], "cidr_allow": "10.0.0.0/8", "reverse_lookups": True},
     "10.0.0.1", "x.test", True, False, r"matched deny x\.test"),
]


@pytest.mark.parametrize("kwargs, peer, host, confirmed, allowed, reason", CHECK_CASES)
def test_check(kwargs, peer, host, confirmed, allowed, reason):
    decision = AccessPolicy(**kwargs).check(peer, host, confirmed)
    assert isinstance(decision, Decision)
    assert decision.allowed is allowed
    assert reason in decision.reason, decision.reason


@pytest.mark.parametrize(
    "kwargs, peer, allowed, reason",
    [
        ({"cidr_allow": "10.0.0.0/8"}, "10.0.0.1", True, "matched cidr_allow 10.0.0.0/8"),
        ({"cidr_deny": "10.0.0.0/8"}, "10.0.0.1", False, "matched cidr_deny 10.0.0.0/8"),
        ({"cidr_allow": "10.0.0.0/8"}, "1.2.3.4", False, "no allow rule matched"),
        ({"cidr_deny": "10.0.0.0/8"}, "1.2.3.4", False, "no allow rule: deny rules alone refuse every other client"),
        ({"cidr_deny": "10.0.0.0/8", "cidr_allow": "0.0.0.0/0"}, "1.2.3.4", True, "matched cidr_allow 0.0.0.0/0"),
    ],
)
def test_check_reason_is_exact(kwargs, peer, allowed, reason):
    assert AccessPolicy(**kwargs).check(peer) == Decision(allowed, reason)


def test_overlapping_blocks_report_a_block_that_contains_the_peer():
    policy = AccessPolicy(cidr_deny="10.0.0.0/8, 10.1.0.0/16, 11.0.0.0/8, 10.2.3.4", cidr_allow="0.0.0.0/0")
    assert policy.check("10.1.2.3").reason in ("matched cidr_deny 10.0.0.0/8",
                                               "matched cidr_deny 10.1.0.0/16")
    assert policy.check("11.255.0.1").reason == "matched cidr_deny 11.0.0.0/8"
    assert policy.check("12.0.0.0").allowed


def test_decision_truthiness_follows_allowed():
    assert Decision(True, "x")
    assert not Decision(False, "x")
    allowed, reason = Decision(False, "why")
    assert (allowed, reason) == (False, "why")


def test_check_is_repeatable_and_policy_reusable():
    policy = AccessPolicy(**DENY_FIRST)
    first = [policy.check(a) for a in ("10.0.0.1", "10.1.0.1", "11.0.0.1")]
    second = [policy.check(a) for a in ("10.0.0.1", "10.1.0.1", "11.0.0.1")]
    assert first == second


def test_inputs_as_lists_and_strings_are_equivalent():
    a = AccessPolicy(allow=r"10\.0\.0\.1", cidr_allow="192.168.0.0/16 ::1")
    b = AccessPolicy(allow=[r"10\.0\.0\.1"], cidr_allow=["192.168.0.0/16", "::1"])
    for peer in ("10.0.0.1", "192.168.3.3", "::1", "::2", "8.8.8.8"):
        assert a.check(peer) == b.check(peer)


# ------------------------------------------------------------- double reverse lookups

DR_CASES = [
    # mode, host, confirmed, allowed, reason fragment
    (1, "ok.test", True, True, "no allow/deny rules"),
    (1, "ok.test", False, False, "reverse lookup not forward-confirmed"),
    (1, None, False, False, "reverse lookup not forward-confirmed"),
    (1, None, True, False, "reverse lookup not forward-confirmed"),
    (True, "ok.test", False, False, "reverse lookup not forward-confirmed"),
    ("1", "ok.test", False, False, "reverse lookup not forward-confirmed"),
    ("detail", "ok.test", False, False, "'ok.test' does not resolve to 192.0.2.1"),
    ("detail", None, False, False, "no host name for 192.0.2.1"),
    ("detail", "ok.test", True, True, "ok.test"),
    ("autofail", "ok.test", True, False, "autofail"),
    ("autofail", "ok.test", False, False, "reverse lookup not forward-confirmed"),
    ("autofail", None, False, False, "reverse lookup not forward-confirmed"),
    ("AutoFail", "ok.test", True, False, "autofail"),
    ("debug", "ok.test", False, False, "reverse lookup not forward-confirmed"),
    ("debug", None, False, False, "no host name"),
    ("debug", "ok.test", True, True, "no allow/deny rules"),
    ("debug autofail", "ok.test", True, False, "autofail"),
]


@pytest.mark.parametrize("mode, host, confirmed, allowed, reason", DR_CASES)
def test_double_reverse_lookups(mode, host, confirmed, allowed, reason):
    policy = AccessPolicy(double_reverse_lookups=mode)
    assert policy.active and policy.needs_hostname and policy.reverse_lookups
    decision = policy.check("192.0.2.1", host, confirmed)
    assert decision.allowed is allowed
    assert reason in decision.reason, decision.reason


@pytest.mark.parametrize("mode", [None, False, 0, "", "0"])
def test_double_reverse_lookups_off_values(mode):
    policy = AccessPolicy(double_reverse_lookups=mode)
    assert policy.double_reverse_lookups is None
    assert not policy.active
    assert policy.check("192.0.2.1", "x.test", False) == Decision(True, "no rules")


@pytest.mark.parametrize(
    "kwargs, peer, host, confirmed, allowed, reason",
    [
        # the double-reverse failure wins even over an allow rule
        ({"cidr_allow": "0.0.0.0/0"}, "192.0.2.1", "x.test", False, False,
         "reverse lookup not forward-confirmed"),
        ({"cidr_allow": "0.0.0.0/0"}, "192.0.2.1", "x.test", True, True, "matched cidr_allow 0.0.0.0/0"),
        ({"cidr_deny": "192.0.2.0/24"}, "192.0.2.1", "x.test", True, False, "matched cidr_deny"),
        ({"allow": [r"x\.test"]}, "192.0.2.1", "x.test", True, True, r"(host x.test)"),
        ({"allow": [r"x\.test"]}, "192.0.2.1", "x.test", False, False,
         "reverse lookup not forward-confirmed"),
        # unix peers are immune, as in Net::Server
        ({}, "", None, False, True, "unix socket peer"),
        ({}, "/run/x.sock", None, False, True, "unix socket peer"),
    ],
)
def test_double_reverse_lookups_with_rules(kwargs, peer, host, confirmed, allowed, reason):
    decision = AccessPolicy(double_reverse_lookups=1, **kwargs).check(peer, host, confirmed)
    assert decision.allowed is allowed
    assert reason in decision.reason, decision.reason


def test_double_reverse_debug_still_denies_and_notes_confirmed_names():
    # As in Net::Server: 'debug' only adds detail for confirmed peers; it never lets an unconfirmed one in.
    policy = AccessPolicy(cidr_allow="10.0.0.0/8", double_reverse_lookups="debug")
    ok = policy.check("10.0.0.1", "x.test", True)
    assert ok.allowed and "matched cidr_allow 10.0.0.0/8" in ok.reason
    assert "double reverse debug" in ok.reason
    assert not policy.check("10.0.0.1", "x.test", False).allowed
    no = policy.check("11.0.0.1", "y.test", True)
    assert not no.allowed and "no allow rule matched" in no.reason


@pytest.mark.parametrize(
    "reverse, expected_mode",
    [("double", 1), ("Double", 1), (2, 1), ("2", 1), ("doubledetail", "detail"),
     ("2autofail", "autofail")],
)
def test_reverse_lookups_double_spelling(reverse, expected_mode):
    policy = AccessPolicy(reverse_lookups=reverse)
    assert policy.reverse_lookups is True
    assert policy.double_reverse_lookups == expected_mode
    assert policy.active and policy.needs_hostname


# ------------------------------------------------------------- active / needs_hostname

@pytest.mark.parametrize(
    "kwargs, active, needs_hostname",
    [
        ({}, False, False),
        ({"allow": [], "deny": (), "cidr_allow": "", "cidr_deny": None}, False, False),
        ({"reverse_lookups": True}, False, False),
        ({"cidr_allow": "10.0.0.0/8"}, True, False),
        ({"cidr_deny": "10.0.0.0/8"}, True, False),
        ({"cidr_allow": "10.0.0.0/8", "reverse_lookups": True}, True, False),
        ({"allow": ["x"]}, True, False),
        ({"deny": ["x"]}, True, False),
        ({"allow": ["x"], "reverse_lookups": True}, True, True),
        ({"deny": ["x"], "reverse_lookups": 1}, True, True),
        ({"deny": ["x"], "reverse_lookups": "0"}, True, False),
        ({"double_reverse_lookups": 1}, True, True),
        ({"double_reverse_lookups": "debug", "cidr_allow": "::1"}, True, True),
    ],
)
def test_active_and_needs_hostname(kwargs, active, needs_hostname):
    policy = AccessPolicy(**kwargs)
    assert policy.active is active
    assert policy.needs_hostname is needs_hostname


def test_repr_mentions_rules():
    text = repr(AccessPolicy(allow=["a"], cidr_deny="::ffff:10.0.0.0/104"))
    assert "'a'" in text and "10.0.0.0/8" in text


# -------------------------------------------------------------------- DNS helpers

def _resolver_knows_localhost():
    try:
        addrs = {normalize_address(i[4][0]) for i in socket.getaddrinfo("localhost", None)}
    except OSError:
        return False
    return "127.0.0.1" in addrs


def test_forward_confirms_localhost():
    if not _resolver_knows_localhost():
        pytest.skip("resolver does not map localhost to 127.0.0.1")
    assert forward_confirms("localhost", "127.0.0.1")
    assert forward_confirms("localhost", "::ffff:127.0.0.1")
    assert not forward_confirms("localhost", "127.0.0.2")


def test_forward_confirms_bad_input_is_false():
    assert not forward_confirms("localhost", "")
    assert not forward_confirms("localhost", "/tmp/sock")
    assert not forward_confirms("", "127.0.0.1")
    assert not forward_confirms(None, "127.0.0.1")
    assert not forward_confirms("bad\x00name", "127.0.0.1")
    assert not forward_confirms("\udcff", "127.0.0.1")


def test_reverse_lookup_loopback():
    try:
        expected = socket.gethostbyaddr("127.0.0.1")[0]
    except OSError:
        pytest.skip("resolver has no name for 127.0.0.1")
    assert reverse_lookup("127.0.0.1") == expected
    assert reverse_lookup("::ffff:127.0.0.1") == expected


def test_reverse_lookup_failures_are_none():
    assert reverse_lookup("") is None
    assert reverse_lookup("/tmp/sock") is None
    assert reverse_lookup("localhost") is None  # a name, not an address
    assert reverse_lookup(None) is None


def test_reverse_lookup_error_is_none(monkeypatch):
    def boom(addr):
        raise socket.herror(1, "Unknown host")

    monkeypatch.setattr(socket, "gethostbyaddr", boom)
    assert reverse_lookup("192.0.2.1") is None


def test_reverse_lookup_uses_normalised_address(monkeypatch):
    seen = []

    def fake(addr):
        seen.append(addr)
        return ("h.test", [], [addr])

    monkeypatch.setattr(socket, "gethostbyaddr", fake)
    assert reverse_lookup("::FFFF:192.0.2.1") == "h.test"
    assert reverse_lookup("FE80::1%eth0") == "h.test"
    assert seen == ["192.0.2.1", "fe80::1"]


def test_forward_confirms_compares_normalised_forms(monkeypatch):
    def fake(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:192.0.2.1", 0, 0, 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:DB8::1", 0, 0, 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::7%eth0", 0, 0, 2)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert forward_confirms("h.test", "192.0.2.1")
    assert forward_confirms("h.test", "2001:db8:0::1")
    assert forward_confirms("h.test", "fe80::7%lo")
    assert not forward_confirms("h.test", "192.0.2.2")


def test_forward_confirms_resolver_error_is_false(monkeypatch):
    def boom(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", boom)
    assert not forward_confirms("h.test", "192.0.2.1")


# ------------------------------------------------------------------ property tests

ipv4_ints = st.integers(min_value=0, max_value=2**32 - 1)
ipv6_ints = st.integers(min_value=0, max_value=2**128 - 1)


@st.composite
def cidr_block(draw):
    if draw(st.booleans()):
        addr = ipaddress.IPv4Address(draw(ipv4_ints))
        prefix = draw(st.integers(0, 32))
        if draw(st.booleans()):
            return f"::ffff:{addr}/{prefix + 96}"
        return f"{addr}/{prefix}"
    addr = ipaddress.IPv6Address(draw(ipv6_ints))
    if addr.ipv4_mapped is not None:
        return f"{addr}/128"
    return f"{addr}/{draw(st.integers(0, 128))}"


cidr_lists = st.lists(cidr_block(), max_size=6).map(", ".join)


@settings(max_examples=300, deadline=None)
@given(ipv4_ints, cidr_lists, cidr_lists)
def test_mapped_peer_decided_like_plain_peer(value, allow, deny):
    policy = AccessPolicy(cidr_allow=allow, cidr_deny=deny)
    plain = str(ipaddress.IPv4Address(value))
    expected = policy.check(plain)
    assert policy.check("::ffff:" + plain) == expected
    assert policy.check(str(ipaddress.IPv6Address(2**32 * 0xFFFF + value))) == expected
    assert policy.check("::FFFF:" + plain) == expected


@settings(max_examples=300, deadline=None)
@given(ipv4_ints, cidr_lists)
def test_cidr_decision_agrees_with_ipaddress(value, blocks):
    policy = AccessPolicy(cidr_allow=blocks)
    nets = [n for n in parse_cidr_list(blocks) if n.version == 4]
    inside = any(
        ipaddress.IPv4Address(value) in ipaddress.ip_network(str(n)) for n in nets
    )
    decision = policy.check(str(ipaddress.IPv4Address(value)))
    assert decision.allowed is (inside or not policy.active)


@settings(max_examples=300, deadline=None)
@given(ipv6_ints, cidr_lists)
def test_ipv6_cidr_decision_agrees_with_ipaddress(value, blocks):
    addr = ipaddress.IPv6Address(value)
    policy = AccessPolicy(cidr_deny=blocks, cidr_allow="0.0.0.0/0, ::/0")  # the rest served: deny decides
    peer = addr.ipv4_mapped or addr
    nets = [ipaddress.ip_network(str(n)) for n in parse_cidr_list(blocks)]
    inside = any(peer.version == n.version and peer in n for n in nets)
    assert policy.check(str(addr)).allowed is (not inside)


FULL_POLICY = AccessPolicy(
    allow=[r".*\.example", r"10\..*"],
    deny=[r"evil.*"],
    cidr_allow="192.168.0.0/16, 2001:db8::/32",
    cidr_deny="::1, 127.0.0.0/8",
    reverse_lookups=True,
    double_reverse_lookups="detail",
)


@settings(max_examples=500, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text()), st.booleans())
def test_check_never_raises_on_arbitrary_text(peer, host, confirmed):
    for policy in (FULL_POLICY, AccessPolicy(cidr_allow="10.0.0.0/8"), AccessPolicy()):
        decision = policy.check(peer, host, confirmed)
        assert isinstance(decision.allowed, bool) and isinstance(decision.reason, str)
    assert isinstance(normalize_address(peer), str)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parsers_raise_only_access_config_error(text):
    for parser in (parse_cidr_list, compile_patterns):
        try:
            parser(text)
        except AccessConfigError:
            pass


# -- issue 14: address rules see addresses only; IPv4-mapped rules match --------------------------------


def test_address_looking_allow_regex_does_not_match_a_confirmed_host_name():
    """``127.0.0.1.attacker.example`` forward-confirms to the attacker's own address."""
    policy = AccessPolicy(allow=[r"127\..*"], reverse_lookups=1)
    assert not policy.check("203.0.113.9", "127.0.0.1.attacker.example", True).allowed
    assert policy.check("127.0.0.1").allowed


def test_host_regex_still_matches_a_confirmed_host_name():
    policy = AccessPolicy(allow=[r".*\.example\.com"], reverse_lookups=1)
    assert policy.check("203.0.113.9", "www.example.com", True).allowed
    assert not policy.check("203.0.113.9", "www.example.com", False).allowed


def test_address_looking_deny_regex_is_not_dodged_or_triggered_by_names():
    policy = AccessPolicy(deny=[r"10\..*"], cidr_allow="0.0.0.0/0", reverse_lookups=1)
    assert policy.check("203.0.113.9", "10.example.net", True).allowed  # a name is not an address
    assert not policy.check("10.1.2.3", "ok.example.net", True).allowed


@pytest.mark.parametrize("peer", ["10.1.2.3", "::ffff:10.1.2.3"])
def test_deny_regex_in_ipv4_mapped_form_matches_an_ipv4_peer(peer):
    assert not AccessPolicy(deny=[r"::ffff:10\..*"]).check(peer).allowed
    assert not AccessPolicy(deny=[r"10\..*"]).check(peer).allowed
