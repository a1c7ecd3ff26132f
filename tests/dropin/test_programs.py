"""Real published programs on netserver, installed from the package registry (the test extra).

Each is run twice where it makes sense — on the standard modules and on
netserver (``compat.install()``, the one line, or a netserver mixin over the
program's own server class) — and must behave the same: Werkzeug's
``run_simple`` in its threaded, processes and reloader modes, dnslib's
``DNSServer`` and its command-line resolver (UDP and TCP, its own client),
and sshtunnel's forward server when a channel fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from procfs import live_children
from waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 15


def free_port_for_a_command_line() -> int:
    """A port number for programs that only take one on their command line (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(tmp_path, body: str, *args: str, upgrade: bool = True) -> subprocess.Popen:
    script = tmp_path / f"program_{upgrade}.py"
    script.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\n"
                      + ("import compat\ncompat.install()\n" if upgrade else "") + body)
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, group: bool = True) -> tuple:
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait()


def get(port: int) -> bytes:
    deadline_error = None
    for _ in range(100):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=TIMEOUT).read()
        except (ConnectionError, urllib.error.URLError) as exc:  # still starting
            deadline_error = exc
            import time
            time.sleep(0.1)
    raise AssertionError(f"no answer on port {port}: {deadline_error}")


# -- Werkzeug --------------------------------------------------------------------------------

WERKZEUG = """
import os
from werkzeug.serving import run_simple
from werkzeug.wrappers import Response

def app(environ, start_response):
    return Response("hello from %d\\n" % os.getpid())(environ, start_response)

mode, port = sys.argv[1], int(sys.argv[2])
options = {"threaded": {"threaded": True}, "processes": {"processes": 2}, "reloader": {"use_reloader": True}}[mode]
run_simple("127.0.0.1", port, app, **options)
"""


@pytest.mark.parametrize("mode", ["threaded", "processes", "reloader"])
@pytest.mark.slow
def test_werkzeug_run_simple(tmp_path, mode):
    pytest.importorskip("werkzeug")
    results = {}
    for upgrade in (False, True):
        port = free_port_for_a_command_line()
        proc = launch(tmp_path, WERKZEUG, mode, str(port), upgrade=upgrade)
        reply = get(port)
        code, out = stop(proc)
        assert reply.startswith(b"hello from "), out
        assert "Traceback" not in out, out
        results[upgrade] = code
    assert results[True] == results[False] == 0, results


WERKZEUG_MIXIN = """
import os
import netserver
from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Response

def app(environ, start_response):
    return Response("hello from %d\\n" % os.getpid())(environ, start_response)

class Pool(netserver.PreForkMixIn, BaseWSGIServer):
    min_servers = 2
    max_servers = 2

server = Pool("127.0.0.1", 0, app)
print("READY", server.server_address[1], flush=True)
try:
    server.serve_forever()
    print("SERVE_FOREVER RETURNED", flush=True)
except KeyboardInterrupt:
    print("KEYBOARD INTERRUPT", flush=True)
server.server_close()
"""


def test_werkzeug_server_class_under_a_prefork_mixin(tmp_path):
    pytest.importorskip("werkzeug")
    proc = launch(tmp_path, WERKZEUG_MIXIN, upgrade=False)
    line = proc.stdout.readline()
    assert line.startswith("READY"), line
    port = int(line.split()[1])
    wait_until(lambda: len(live_children(proc.pid)) == 2, what="the pool of 2")
    pids = {int(get(port).split()[-1]) for _ in range(4)}
    assert pids <= set(live_children(proc.pid)), "served by the pool's children"
    code, out = stop(proc, group=False)  # Ctrl-C to the parent alone: it stops the pool itself
    # Werkzeug's own serve_forever catches the KeyboardInterrupt, as it does without netserver.
    assert code == 0 and "SERVE_FOREVER RETURNED" in out and "Traceback" not in out, out
    assert "abnormally" not in out, out


# -- dnslib ----------------------------------------------------------------------------------

DNS_CLI = """
import runpy
sys.argv = ["dnslib.fixedresolver"] + sys.argv[1:]
runpy.run_module("dnslib.fixedresolver", run_name="__main__", alter_sys=True)
"""


def dns_answer(port: int, tcp: bool) -> str:
    from dnslib import DNSRecord

    for _ in range(100):
        try:
            reply = DNSRecord.question("abc.example").send("127.0.0.1", port, tcp=tcp, timeout=2)
            return str(DNSRecord.parse(reply).rr[0].rdata)
        except (ConnectionError, socket.timeout, OSError):
            import time
            time.sleep(0.1)
    raise AssertionError("no DNS answer")


@pytest.mark.slow
def test_dnslib_command_line_resolver_udp_and_tcp(tmp_path):
    """``python -m dnslib.fixedresolver --port N --tcp``: its own --port is not netserver's."""
    pytest.importorskip("dnslib")
    outcomes = {}
    for upgrade in (False, True):
        port = free_port_for_a_command_line()
        proc = launch(tmp_path, DNS_CLI, "--port", str(port), "--tcp", "--address", "127.0.0.1",
                      "--response", ". 60 IN A 10.1.2.3", upgrade=upgrade)
        answers = (dns_answer(port, tcp=False), dns_answer(port, tcp=True))
        code, out = stop(proc)
        assert answers == ("10.1.2.3", "10.1.2.3"), out
        assert "AttributeError" not in out and "Address already in use" not in out, out
        outcomes[upgrade] = code
    assert outcomes[True] == outcomes[False], f"Ctrl-C ends both alike: {outcomes}"


DNS_MIXIN = """
import socketserver
import netserver
from dnslib.server import DNSServer, DNSLogger
from dnslib.fixedresolver import FixedResolver

class Pool(netserver.PreForkMixIn, socketserver.{base}):
    min_servers = 2
    max_servers = 2
    cidr_deny = ["127.0.0.2/32"]
    cidr_allow = ["127.0.0.0/8"]

resolver = FixedResolver(". 60 IN A 10.9.8.7")
logger = DNSLogger("request,reply")
server = DNSServer(resolver, port=0, address="127.0.0.1", server=Pool, logger=logger)
print("READY", server.server.server_address[1], flush=True)
try:
    server.start()
except KeyboardInterrupt:
    print("KEYBOARD INTERRUPT", flush=True)
server.server.server_close()
"""


@pytest.mark.parametrize("base, tcp", [("UDPServer", False), ("TCPServer", True)])
@pytest.mark.slow
def test_dnslib_server_class_under_a_prefork_mixin_with_a_denied_client(tmp_path, base, tcp):
    pytest.importorskip("dnslib")
    proc = launch(tmp_path, DNS_MIXIN.replace("{base}", base), upgrade=False)
    line = proc.stdout.readline()
    assert line.startswith("READY"), line + proc.stdout.read()
    port = int(line.split()[1])
    wait_until(lambda: len(live_children(proc.pid)) == 2, what="the pool of 2")
    denied = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    denied.bind(("127.0.0.2", 0))
    denied.settimeout(1)
    from dnslib import DNSRecord

    query = DNSRecord.question("abc.example").pack()
    if tcp:
        denied.connect(("127.0.0.1", port))
        denied.sendall(len(query).to_bytes(2, "big") + query)
        assert denied.recv(100) == b"", "a denied TCP client is closed"
    else:
        denied.sendto(query, ("127.0.0.1", port))
        with pytest.raises(socket.timeout):
            denied.recv(512)
    denied.close()
    assert dns_answer(port, tcp) == "10.9.8.7", "a denied client costs nothing to the others"
    assert proc.poll() is None and len(live_children(proc.pid)) == 2
    code, out = stop(proc, group=False)
    assert code == 0 and "KEYBOARD INTERRUPT" in out, out
    assert "Traceback" not in out, out
    assert "Denying connection from [127.0.0.2]" in out, "the refusal is logged (netserver's log, stderr)"


# -- sshtunnel -------------------------------------------------------------------------------

SSHTUNNEL = """
import logging, socket
import paramiko, sshtunnel

logging.basicConfig(stream=sys.stdout, format="LOG %(name)s %(message)s", level=logging.ERROR)
logger = logging.getLogger("tunnel")

class Handler(sshtunnel._ForwardHandler):
    remote_address = ("127.0.0.1", 9)
    ssh_transport = paramiko.Transport(socket.socket())  # never negotiated: every channel fails
    logger = logger

server = sshtunnel._ThreadingForwardServer(("127.0.0.1", 0), Handler, logger=logger)
print("READY", server.server_address[1], flush=True)
import threading
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.readline()
server.shutdown()
server.server_close()
print("CLOSED", flush=True)
"""


@pytest.mark.slow
def test_sshtunnel_forward_server_logs_a_failed_channel_with_its_own_logger(tmp_path):
    pytest.importorskip("sshtunnel")
    for upgrade in (False, True):
        script = tmp_path / f"tunnel_{upgrade}.py"
        script.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\n"
                          + ("import compat\ncompat.install()\n" if upgrade else "") + SSHTUNNEL)
        proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            line = proc.stdout.readline()
            assert line.startswith("READY"), line + proc.stdout.read()
            with socket.create_connection(("127.0.0.1", int(line.split()[1])), timeout=TIMEOUT) as client:
                client.settimeout(TIMEOUT)
                assert client.recv(10) == b"", "the failed tunnel closes the connection"
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            out, _ = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, out
        assert "LOG tunnel Could not establish connection from local" in out, (upgrade, out)
        assert "Traceback" not in out and "CLOSED" in out, (upgrade, out)
