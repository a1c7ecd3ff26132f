"""Rule 2 in process: a mixin or compat server adds no public name to its host and touches none of the program's.

Built the socketserver way, a server's public names are its host class's,
plus the mixin's option declarations; netserver's own state is private.
Names a program keeps for itself (``logger``, ``config``, ``log``,
``options``, ``run``, ``client``…) are never read, called or overwritten.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import socketserver
import sys
import threading
import wsgiref.simple_server
import xmlrpc.server

import pytest

from hosts import MIXINS, PROGRAM_NAMES, OwnServer, allowed_extra_names

import compat.http_server
import compat.socketserver
import netserver


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def build(host_cls, mixin_name=None, tmp_path=None, **options):
    cls = host_cls if mixin_name is None else type("S", (getattr(netserver, mixin_name), host_cls), {})
    if issubclass(host_cls, socketserver.UnixStreamServer):
        address = str(tmp_path / f"s{os.getpid()}-{id(cls)}.sock")
    else:
        address = ("127.0.0.1", 0)
    if issubclass(host_cls, xmlrpc.server.SimpleXMLRPCServer):
        if mixin_name == "MultiplexMixIn":  # Multiplex runs MuxHandlers only (refused otherwise)
            options["requestHandler"] = netserver.MuxEchoHandler
        return cls(address, logRequests=False, **options)
    handler = Echo
    if mixin_name == "MultiplexMixIn":
        handler = netserver.MuxEchoHandler
    elif issubclass(host_cls, http.server.HTTPServer):
        handler = (wsgiref.simple_server.WSGIRequestHandler if issubclass(host_cls, wsgiref.simple_server.WSGIServer)
                   else http.server.BaseHTTPRequestHandler)
    return cls(address, handler, **options)


HOST_CLASSES = [socketserver.TCPServer, socketserver.UDPServer, socketserver.UnixStreamServer,
                http.server.HTTPServer, xmlrpc.server.SimpleXMLRPCServer, wsgiref.simple_server.WSGIServer,
                OwnServer]


@pytest.mark.parametrize("mixin", MIXINS + ("SingleMixIn",))
@pytest.mark.parametrize("host", HOST_CLASSES, ids=lambda c: c.__name__)
def test_a_mixin_adds_no_public_name_to_its_host(host, mixin, tmp_path):
    plain = build(host, tmp_path=tmp_path)
    server = build(host, mixin, tmp_path=tmp_path)
    try:
        added = {name for name in set(dir(server)) - set(dir(plain)) if not name.startswith("_")}
        assert added <= allowed_extra_names(type(server)), f"{mixin} over {host.__name__} adds {sorted(added)}"
    finally:
        plain.server_close()
        server.server_close()


COMPAT_PAIRS = [(name, getattr(compat.socketserver, name), getattr(socketserver, name))
                for name in socketserver.__all__ if name.endswith("Server") and hasattr(compat.socketserver, name)]
COMPAT_PAIRS += [(f"http.{name}", getattr(compat.http_server, name), getattr(http.server, name))
                 for name in ("HTTPServer", "ThreadingHTTPServer")]


@pytest.mark.parametrize("name, ours, theirs", COMPAT_PAIRS, ids=[p[0] for p in COMPAT_PAIRS])
def test_compat_classes_have_exactly_the_standard_public_names(name, ours, theirs):
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert public(ours) == public(theirs), (public(ours) ^ public(theirs))
    if ours is theirs:
        return  # re-exported as it is (BaseServer)
    stdlib_base = socketserver.UDPServer if issubclass(theirs, socketserver.UDPServer) else socketserver.TCPServer
    assert issubclass(ours, stdlib_base), "isinstance checks against the standard classes keep working"
    if issubclass(theirs, http.server.HTTPServer):
        assert issubclass(ours, http.server.HTTPServer), "isinstance(server, http.server.HTTPServer) holds"
        assert issubclass(ours, compat.socketserver.TCPServer), "and compat's TCPServer, as after compat.install()"


@pytest.mark.parametrize("mixin", MIXINS + ("SingleMixIn",))
def test_the_programs_own_names_are_left_alone(mixin):
    server = build(OwnServer, mixin)
    try:
        for name, value in PROGRAM_NAMES.items():
            assert getattr(server, name) == value, name
        assert server.log("info", "%s", "x") == "info: x" and server.run() == "the program's run"
    finally:
        server.server_close()
    for name, value in PROGRAM_NAMES.items():
        assert getattr(server, name) == value, f"server_close() touched {name}"


def test_a_program_logger_survives_serving_and_a_denied_client():
    """dnslib's pattern: the program sets ``server.logger`` after construction; a denied client costs nothing."""
    server = compat.socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, cidr_deny=["127.0.0.2/32"],
                                                            cidr_allow=["127.0.0.0/8"])
    server.logger = "dnslib's logger"
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    loop.start()
    try:
        denied = socket.socket()
        denied.bind(("127.0.0.2", 0))
        denied.settimeout(5)
        denied.connect(server.server_address)
        assert denied.recv(10) == b"", "the denied client is closed"
        denied.close()
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"hello\n")
            assert client.makefile("rb").readline() == b"hello\n"
        assert loop.is_alive(), "a denied client ended serve_forever"
    finally:
        server.shutdown()
        server.server_close()
    assert server.logger == "dnslib's logger"


def test_the_constructor_reads_no_command_line(monkeypatch):
    """dnslib's command line has ``--port``: the server built inside must not take it."""
    monkeypatch.setattr(sys, "argv", ["prog", "--port", "9", "--tcp", "--log_level", "4"])
    for server in (compat.socketserver.UDPServer(("127.0.0.1", 0), Echo),
                   type("S", (netserver.PreForkMixIn, socketserver.UDPServer), {})(("127.0.0.1", 0), Echo),
                   netserver.Server(("127.0.0.1", 0), Echo)):
        try:
            assert server.server_address[0] == "127.0.0.1" and server.server_address[1] != 9
            assert server.socket.type == socket.SOCK_DGRAM or isinstance(server, netserver.Server)
        finally:
            server.server_close()
    assert sys.argv == ["prog", "--port", "9", "--tcp", "--log_level", "4"], "sys.argv was changed"


def test_command_line_is_an_explicit_opt_in(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--cidr_deny", "127.0.0.1/32", "--tcp"])

    class Opted(compat.socketserver.TCPServer):
        command_line = True

    server = Opted(("127.0.0.1", 0), Echo)
    try:
        assert server._host.config.cidr_deny == ["127.0.0.1/32"]
        assert sys.argv == ["prog", "--tcp"], "known options leave sys.argv, the program's stay"
    finally:
        server.server_close()


def test_options_as_class_attributes_and_keywords():
    class Pool(netserver.PreForkMixIn, xmlrpc.server.SimpleXMLRPCServer):
        max_servers = 8
        cidr_allow = ["10.0.0.0/8"]

    server = Pool(("127.0.0.1", 0), logRequests=False, min_servers=3)
    try:
        config = server._host.config
        assert (config.max_servers, config.min_servers, config.cidr_allow) == (8, 3, ["10.0.0.0/8"])
        assert str(config.source_of("max_servers")) == "class attribute"
    finally:
        server.server_close()


@pytest.mark.parametrize("mixin", ["ThreadMixIn", "ForkMixIn", "PreForkMixIn"])
def test_access_rules_given_to_a_mixin_are_enforced(mixin):
    """Today's bug: cidr_allow over a stdlib class was stored and every client served."""
    server = build(socketserver.TCPServer, mixin, cidr_allow=["10.0.0.0/8"])
    try:
        assert not server.verify_request(socket.socket(), ("127.0.0.1", 40000))
        assert server._host.config.cidr_allow == ["10.0.0.0/8"]
    finally:
        server.server_close()


@pytest.mark.parametrize("option, value", [("port", 8080), ("host", "0.0.0.0"), ("proto", "udp"),
                                           ("reuse_port", True), ("proxy_protocol", "v1"),
                                           ("no_client_stdout", False)])
def test_an_option_the_host_cannot_honour_is_refused(option, value):
    with pytest.raises(netserver.OptionError) as refused:
        build(xmlrpc.server.SimpleXMLRPCServer, "PreForkMixIn", **{option: value})
    assert option in str(refused.value) and "SimpleXMLRPCServer" in str(refused.value)


def test_another_personalitys_option_is_refused_by_name_and_a_typo_as_the_standard_class_does():
    """compat's ThreadingTCPServer is the standard thread per connection: ``max_servers`` is
    Thread's (the mixin's) option; an unknown keyword is the standard class's TypeError."""
    with pytest.raises(netserver.OptionError) as refused:
        compat.socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, max_servers=3)
    assert str(refused.value).startswith("max_servers: 3 from constructor arguments: ThreadingTCPServer has "
                                         "no such option") and "Thread" in str(refused.value)
    with pytest.raises(TypeError) as typo:
        compat.socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, max_server=3)
    with pytest.raises(TypeError) as standard:
        socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, max_server=3)
    assert str(typo.value) == str(standard.value)


def test_a_keyword_the_hosts_own_init_takes_stays_the_hosts():
    """``max_servers`` is Fork's option, but this program's server takes it itself (by name, in
    ``**kwargs``, or in a decorator's wrapper): netserver leaves it to the program."""
    class Named(socketserver.TCPServer):
        def __init__(self, address, handler, max_servers=1):
            self.mine = max_servers
            super().__init__(address, handler)

    class Anything(socketserver.TCPServer):
        def __init__(self, address, handler, **extra):
            self.mine = extra["max_servers"]
            super().__init__(address, handler)

    def taking_max_servers(init):
        @functools.wraps(init)
        def wrapper(self, address, handler, max_servers=1):
            self.mine = max_servers
            init(self, address, handler)

        return wrapper

    class Wrapped(socketserver.TCPServer):
        @taking_max_servers
        def __init__(self, address, handler):
            super().__init__(address, handler)

    for host in (Named, Anything, Wrapped):
        class Server(netserver.SingleMixIn, host):
            pass

        server = Server(("127.0.0.1", 0), Echo, max_servers=3)
        try:
            assert server.mine == 3
        finally:
            server.server_close()


def test_the_start_up_line_names_the_programs_class_not_netservers_adapter(capsys):
    server = compat.socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo, log_level=2)
    server.server_close()

    class Pool(netserver.PreForkMixIn, socketserver.TCPServer):
        pass

    Pool(("127.0.0.1", 0), Echo, log_level=2).server_close()
    err = capsys.readouterr().err
    assert " ThreadingTCPServer (type Single) starting!" in err and " Pool (type PreFork) starting!" in err
    assert "StdlibHost" not in err


def test_a_compat_subclass_keeps_its_own_attributes_that_share_an_option_name():
    """The one-line upgrade opts into no option: a program's own ``port``, ``user``, ``background``,
    ``log_file`` or ``log_level`` on its server class stay its own (they used to rebind the server
    on every interface, drop root, fork it into the background, or fail on logging.INFO)."""
    import logging

    class AppServer(compat.socketserver.TCPServer):
        port = 8765
        host = "0.0.0.0"
        user = "nobody"
        background = True
        log_file = "/nonexistent/app.log"
        log_level = logging.INFO
        cidr_allow = ["10.0.0.0/8"]

    uid = os.geteuid()
    with AppServer(("127.0.0.1", 0), Echo) as server:
        assert server.server_address[0] == "127.0.0.1" and server.server_address[1] != 8765
        assert os.geteuid() == uid and os.getpid() == server._host._owner_pid
        config = server._host.config
        assert (config.log_level, config.log_file, config.cidr_allow) == (1, None, [])
        assert str(config.source_of("user")) == "default"
        assert (server.port, server.user, server.log_level) == (8765, "nobody", logging.INFO)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with socket.create_connection(server.server_address, timeout=10) as conn:
                conn.sendall(b"still served\n")
                assert conn.makefile("rb").readline() == b"still served\n"
        finally:
            server.shutdown()
            thread.join(10)


def test_a_subclass_of_a_compat_pool_class_gives_options_as_attributes():
    """``PreForkingTCPServer`` is a pool the program chose: its subclass's ``max_servers`` is the pool's."""

    class Pool(compat.socketserver.PreForkingTCPServer):
        max_servers = 3
        min_servers = 2

    with Pool(("127.0.0.1", 0), Echo) as server:
        config = server._host.config
        assert (config.max_servers, config.min_servers) == (3, 2)
        assert str(config.source_of("max_servers")) == "class attribute"


def test_a_bad_option_value_names_itself_and_its_source():
    class Bad(netserver.PreForkMixIn, socketserver.TCPServer):
        max_servers = 0

    with pytest.raises(netserver.OptionError) as bad:
        Bad(("127.0.0.1", 0), Echo)
    assert "max_servers" in str(bad.value) and "class attribute" in str(bad.value)


@pytest.mark.parametrize("mixin", ["ThreadMixIn", "ForkMixIn", "PreForkMixIn", "PreForkSimpleMixIn"])
def test_two_mixins_that_each_decide_where_a_request_runs_are_refused(mixin):
    with pytest.raises(TypeError) as refused:
        build(socketserver.ThreadingTCPServer, mixin)
    assert "ThreadingMixIn" in str(refused.value) and mixin in str(refused.value)


def test_an_access_rule_attribute_that_is_not_applied_is_said_so(capsys):
    """A plain compat subclass takes no options as attributes; one named like an access rule is
    what the program believes protects it, so the log says it is not applied."""

    class S(compat.socketserver.ThreadingTCPServer):
        cidr_allow = ["10.0.0.0/8"]

    class Rules:
        deny = [r"10\..*"]

    class Pool(Rules, netserver.ThreadMixIn, socketserver.TCPServer):
        pass

    for cls in (S, Pool):
        cls(("127.0.0.1", 0), Echo).server_close()
    err = capsys.readouterr().err
    assert "S.cidr_allow is not applied" in err and "Rules.deny is not applied" in err
