"""PROXY protocol behind a real HAProxy (send-proxy and send-proxy-v2), and hostile headers."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import TIMEOUT, ServerProcess, python_env, read_all

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")

CONFIG = """
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend front
    bind 127.0.0.1:{front}
    default_backend back
backend back
    server s1 127.0.0.1:{back} {send}
"""


def start_haproxy(back_port: int, send: str):
    """HAProxy on a random high port (up to 5 tries); returns (process, port, config dir)."""
    directory = tempfile.mkdtemp(prefix="ns-haproxy-")
    for _ in range(5):
        front = random.randint(21000, 32000)
        path = os.path.join(directory, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(CONFIG.format(front=front, back=back_port, send=send))
        proc = subprocess.Popen(["haproxy", "-f", path, "-db"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
                return proc, front, directory
            except OSError:
                time.sleep(0.05)
        stop(proc)
    shutil.rmtree(directory, ignore_errors=True)
    pytest.fail("haproxy did not start")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def talk_from(source: str, port: int, line: bytes = b"hi") -> bytes:
    client = socket.socket()
    client.bind((source, 0))
    client.settimeout(TIMEOUT)
    client.connect(("127.0.0.1", port))
    client.sendall(line + b"\nquit\n")
    data = read_all(client)
    client.close()
    return data


@needs_haproxy
@pytest.mark.parametrize("send, mode", [("send-proxy", "v1"), ("send-proxy-v2", "v2"),
                                        ("send-proxy", "auto"), ("send-proxy-v2", "auto")])
def test_behind_haproxy_the_real_client_is_seen(send, mode):
    with ServerProcess(["PreFork", "--port", "127.0.0.1:0", "--user", "root", "--min_servers", "2",
                        "--proxy_protocol", mode, "--proxy_allow", "127.0.0.1/32", "--cidr_deny", "127.0.0.3/32", "--cidr_allow", "127.0.0.0/8",
                        "--log_level", "3"]) as server:
        proc, front, directory = start_haproxy(server.port, send)
        try:
            assert b'You said "hi"' in talk_from("127.0.0.2", front)
            server.wait_for(r"CONNECT \[127\.0\.0\.2\]:\d+")  # the client, not HAProxy's 127.0.0.1
            assert talk_from("127.0.0.3", front) == b""  # access control sees the real client
            server.wait_for(r"Denying connection from \[127\.0\.0\.3\]")
        finally:
            stop(proc)
            shutil.rmtree(directory, ignore_errors=True)


@needs_haproxy
def test_http_environ_has_the_real_client(tmp_path):
    app = tmp_path / "whoami.py"
    app.write_text("def app(environ, start_response):\n"
                   "    body = environ['REMOTE_ADDR'].encode()\n"
                   "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
                   "    return [body]\n")
    os.chmod(tmp_path, 0o755)
    env = python_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    with ServerProcess(["HTTP", "--app", "whoami:app", "--port", "127.0.0.1:0", "--user", "root",
                        "--server_type", "Single", "--proxy_protocol", "v2", "--proxy_allow", "127.0.0.1"], env=env) as server:
        proc, front, directory = start_haproxy(server.port, "send-proxy-v2")
        try:
            client = socket.socket()
            client.bind(("127.0.0.2", 0))
            client.settimeout(TIMEOUT)
            client.connect(("127.0.0.1", front))
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert read_all(client).endswith(b"\r\n\r\n127.0.0.2")
            client.close()
        finally:
            stop(proc)
            shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 10.0.0.1\r\n",                             # too few fields
    b"PROXY TCP4 10.0.0.1 127.0.0.1 99999 80\r\n",          # bad port
    b"PROXY TCP4 ::1 127.0.0.1 1 80\r\n",                   # wrong family
    b"PROXY TCP4 10.0.0.1 127.0.0.1 1",                     # truncated, then closed
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x0a\x00",      # truncated v2
    b"GET / HTTP/1.0\r\n\r\n",                              # no header at all
])
def test_trusted_peer_with_a_bad_header_loses_its_connection(header):
    with ServerProcess(["Single", "--port", "127.0.0.1:0", "--user", "root", "--proxy_protocol", "auto",
                        "--proxy_allow", "127.0.0.1/32"]) as server:
        bad = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        bad.sendall(header)
        bad.shutdown(socket.SHUT_WR)
        assert b"Welcome" not in read_all(bad)
        bad.close()
        server.wait_for(r"Refusing a connection from proxy 127\.0\.0\.1")
        good = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        good.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 4321 80\r\nhi\nquit\n")
        assert b'You said "hi"' in read_all(good)  # the server goes on
        good.close()


def test_untrusted_peer_cannot_spoof_its_address():
    with ServerProcess(["Single", "--port", "127.0.0.1:0", "--user", "root", "--proxy_protocol", "v1",
                        "--proxy_allow", "10.0.0.0/8", "--log_level", "3"]) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        client.sendall(b"PROXY TCP4 10.9.9.9 127.0.0.1 4321 80\r\nquit\n")
        reply = read_all(client)
        client.close()
        assert b'You said "PROXY TCP4 10.9.9.9' in reply  # just data: not honoured
        assert re.search(r"CONNECT \[127\.0\.0\.1\]", server.log_text())
        assert "10.9.9.9]" not in server.log_text()


# -- issue 14 --------------------------------------------------------------------------------------


def test_proxy_protocol_needs_an_explicit_proxy_allow():
    """No peer is trusted by default: a local user could otherwise claim any source address."""
    from harness import run_command

    result = run_command(["Single", "--port", "127.0.0.1:0", "--user", "root", "--proxy_protocol", "v1"])
    assert result.returncode != 0
    assert "needs proxy_allow" in result.stderr, result.stderr


def test_an_ipv4_mapped_tcp6_source_is_shown_in_ipv4_form():
    with ServerProcess(["Single", "--port", "127.0.0.1:0", "--user", "root", "--proxy_protocol", "v1",
                        "--proxy_allow", "127.0.0.1", "--log_level", "3"]) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        client.sendall(b"PROXY TCP6 ::ffff:10.1.1.1 ::1 4321 80\r\nhi\nquit\n")
        assert b'You said "hi"' in read_all(client)
        client.close()
        server.wait_for(r"CONNECT \[10\.1\.1\.1\]:4321")
        assert "a01:101" not in server.log_text()


@pytest.mark.parametrize("personality", ["Single", "PreFork", "Thread"])
def test_proxy_protocol_on_a_tls_listener(tmp_path, personality):
    """The PROXY header comes before the TLS handshake; reading it used to raise ValueError
    (MSG_PEEK on an SSLSocket), killing Single, a PreFork child or a Thread worker per connection."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    extra = ["--min_servers", "1", "--max_servers", "1"] if personality == "PreFork" else []
    with ServerProcess([personality, "--port", "127.0.0.1:0/ssl", "--user", "root", "--proxy_protocol", "v1",
                        "--proxy_allow", "127.0.0.1", "--SSL_cert_file", str(tmp_path / "both.pem"),
                        "--SSL_key_file", str(tmp_path / "both.pem"), "--log_level", "3", *extra]) as server:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        for n in range(3):  # the same worker serves them all: it must survive each
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            raw.sendall(f"PROXY TCP4 10.0.0.{n + 1} 127.0.0.1 4321 443\r\n".encode())
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"hi\nquit\n")
                assert b'You said "hi"' in read_all(tls)
            server.wait_for(rf"CONNECT \[10\.0\.0\.{n + 1}\]")
        assert "ValueError" not in server.log_text()
