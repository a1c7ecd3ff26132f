"""SSL listeners: TLS clients served in every personality, the handshake never in the accept loop.

A throw-away CA (trustme) issues the server certificate (localhost,
127.0.0.1) and a client certificate; a second, unrelated CA issues the
certificate the server switches to on HUP.  Clients use the ``ssl`` module
with ``server_hostname='localhost'`` and trust only the CA they are given.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from harness import ROOT, TIMEOUT, python_env, read_all
from daemontools import (
    GREETING, alive, client_context, echo, live_children, served, tls_exchange, wait_until,
)

LOOPBACK_TLS = ["--port", "127.0.0.1:0/ssl"]
PERSONALITIES = {
    "Single": ["Single"],
    "Fork": ["Fork"],
    "PreFork": ["PreFork", "--min_servers", "2", "--max_servers", "3"],
    "Thread": ["Thread"],
}


def cert_args(tls, cert=None, key=None):
    return ["--SSL_cert_file", str(cert or tls.cert), "--SSL_key_file", str(key or tls.key)]


def port_of(server, label: str) -> int:
    ports = [port for proto, port, _host in server.bindings if proto == label]
    assert len(ports) == 1, server.bindings
    return ports[0]


def run_quietly(args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m netserver ARGS`` to completion, with no terminal (OpenSSL must not prompt)."""
    return subprocess.run([sys.executable, "-m", "netserver", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=python_env(), stdin=subprocess.DEVNULL,
                          start_new_session=True)


def tls_refused(port: int, context: ssl.SSLContext) -> bool:
    """The TLS exchange fails (handshake or first read) without the handler's reply."""
    try:
        reply = tls_exchange(port, context)
    except (ssl.SSLError, ConnectionError):
        return True
    return not GREETING.search(reply) and b"subject" not in reply


# -- served in every personality ---------------------------------------------------------------


@pytest.mark.parametrize("personality", sorted(PERSONALITIES))
def test_tls_client_is_served(servers, tls, personality):
    server = servers.start(PERSONALITIES[personality] + LOOPBACK_TLS + cert_args(tls))
    assert server.bindings[0][0] == "SSL"
    context = client_context(tls.ca)
    for _ in range(2):
        reply = tls_exchange(server.port, context)
        assert served(reply), reply


@pytest.mark.parametrize("personality", sorted(PERSONALITIES))
def test_plain_and_tls_ports_together(servers, tls, personality):
    server = servers.start(PERSONALITIES[personality] + ["--port", "127.0.0.1:0", "--port", "127.0.0.1:0/ssl"]
                           + cert_args(tls), bindings=2)
    plain, secure = port_of(server, "TCP"), port_of(server, "SSL")
    context = client_context(tls.ca)
    assert served(echo(plain))
    assert served(tls_exchange(secure, context))
    assert served(echo(plain))


# -- clients that do not speak TLS ----------------------------------------------------------------


@pytest.mark.parametrize("personality", ["Single", "PreFork"])
def test_plain_text_client_on_the_tls_port_is_closed(servers, tls, personality):
    server = servers.start(PERSONALITIES[personality] + LOOPBACK_TLS + cert_args(tls))
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"hello\r\nquit\r\n")
        try:
            received = read_all(sock)  # EOF (perhaps after a TLS alert) within TIMEOUT
        except ConnectionResetError:
            received = b""
    assert not GREETING.search(received) and b"You said" not in received, received
    assert served(tls_exchange(server.port, client_context(tls.ca)))


@pytest.mark.parametrize("personality", ["PreFork", "Thread"])
@pytest.mark.slow
def test_silent_clients_are_cut_off_and_do_not_hold_up_others(servers, tls, personality):
    args = ["PreFork", "--min_servers", "3", "--max_servers", "3"] if personality == "PreFork" else ["Thread"]
    server = servers.start(args + LOOPBACK_TLS + cert_args(tls) + ["--SSL_handshake_timeout", "1"])
    context = client_context(tls.ca)
    assert served(tls_exchange(server.port, context))  # warmed up

    started = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) for _ in range(2)]
    try:
        for _ in range(10):
            assert served(tls_exchange(server.port, context, timeout=2))
        busy = time.monotonic() - started
        for sock in silent:  # still waiting for their handshake: the others went past them
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1, socket.MSG_PEEK)
            sock.setblocking(True)
        assert busy < 1.0, f"10 TLS clients took {busy:.2f}s next to 2 silent ones"
        for sock in silent:
            sock.settimeout(TIMEOUT)
            try:
                assert sock.recv(4096) == b""
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - started
            assert 0.8 <= elapsed < 5, f"silent client cut off after {elapsed:.2f}s"
    finally:
        for sock in silent:
            sock.close()
    assert served(tls_exchange(server.port, context))


# -- client certificates --------------------------------------------------------------------------


PEERCERT_HANDLER = """
    import socketserver
    import netserver

    class PeerCert(socketserver.BaseRequestHandler):
        def handle(self):
            cert = self.request.getpeercert()
            self.request.sendall(b"subject " + repr(cert["subject"] if cert else None).encode() + b"\\n")

    netserver.PreFork.run(PeerCert)
"""


def test_client_certificate_required_and_seen_by_the_handler(servers, tls, write_script):
    script = write_script(PEERCERT_HANDLER)
    server = servers.start(LOOPBACK_TLS + cert_args(tls) + [
        "--SSL_verify_mode", "require", "--SSL_ca_file", str(tls.ca),
        "--min_servers", "1", "--max_servers", "2"], script=script)

    assert tls_refused(server.port, client_context(tls.ca)), "served without a client certificate"
    with_cert = client_context(tls.ca, tls.client_cert, tls.client_key)
    reply = tls_exchange(server.port, with_cert, payload=b"")
    assert reply.startswith(b"subject "), reply
    assert b"'commonName', 'test-client'" in reply, reply
    # A certificate from another CA is refused too.
    assert tls_refused(server.port, client_context(tls.ca, tls.other_cert, tls.other_cert_key))


# -- set-up errors, before anything is served --------------------------------------------------------


def _garbage_key(tmp_path):
    path = tmp_path / "garbage.key"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    return path


ERRORS = {
    "missing cert": (lambda t, p: ["--SSL_cert_file", str(p / "missing.pem"), "--SSL_key_file", str(t.key)],
                     (2,), r"SSL_cert_file.*no such file"),
    "unreadable key": (lambda t, p: cert_args(t, key=_garbage_key(p)), (1, 2), r"SSL_key_file"),
    "mismatched key": (lambda t, p: cert_args(t, key=t.other_key), (1, 2), r"does not match"),
    "require without CA": (lambda t, p: cert_args(t) + ["--SSL_verify_mode", "require"], (1, 2),
                           r"SSL_ca_file"),
    "bad cipher list": (lambda t, p: cert_args(t) + ["--SSL_cipher_list", "NO-SUCH-CIPHER"], (1, 2),
                        r"SSL_cipher_list"),
    "no certificate": (lambda t, p: [], (1, 2), r"SSL_cert_file"),
    "bad version": (lambda t, p: cert_args(t) + ["--SSL_version", "TLSv9"], (2,), r"SSL_version"),
    "bad verify mode": (lambda t, p: cert_args(t) + ["--SSL_verify_mode", "sometimes"], (2,),
                        r"SSL_verify_mode"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_ssl_setup_errors_are_clear_and_nothing_is_bound(tls, tmp_path, case):
    make_args, codes, message = ERRORS[case]
    done = run_quietly(["PreFork"] + LOOPBACK_TLS + make_args(tls, tmp_path))
    assert done.returncode in codes, (done.returncode, done.stderr)
    assert re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert "Binding to" not in done.stderr


def test_encrypted_key_needs_its_password(servers, tls):
    args = ["Single"] + LOOPBACK_TLS + cert_args(tls, key=tls.encrypted_key)
    done = run_quietly(args)
    assert done.returncode in (1, 2), done.stderr
    assert "SSL_key_file" in done.stderr and "Binding to" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    server = servers.start(args + ["--SSL_key_password", tls.password])
    assert served(tls_exchange(server.port, client_context(tls.ca)))


def test_encrypted_key_without_password_says_so_and_never_prompts(tls):
    done = run_quietly(["Single"] + LOOPBACK_TLS + cert_args(tls, key=tls.encrypted_key))
    assert done.returncode in (1, 2)
    assert "pass phrase" not in done.stderr.lower(), done.stderr  # a daemon must not ask the terminal
    assert "password" in done.stderr.lower(), done.stderr


def test_ssl_version_tls13_refuses_a_tls12_client(servers, tls):
    server = servers.start(["PreFork", "--min_servers", "1", "--max_servers", "2"] + LOOPBACK_TLS
                           + cert_args(tls) + ["--SSL_version", "TLSv1.3"])
    capped = client_context(tls.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_exchange(server.port, capped)
    assert served(tls_exchange(server.port, client_context(tls.ca)))


def test_default_accepts_a_tls12_client(servers, tls):
    server = servers.start(["Single"] + LOOPBACK_TLS + cert_args(tls))
    capped = client_context(tls.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert served(tls_exchange(server.port, capped))


# -- certificates are re-read on HUP ---------------------------------------------------------------


def test_certificates_are_reread_on_hup(servers, tls, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(tls.cert, cert)
    shutil.copy(tls.key, key)
    server = servers.start(["PreFork", "--min_servers", "1", "--max_servers", "2"] + LOOPBACK_TLS
                           + cert_args(tls, cert=cert, key=key))
    old_ca, new_ca = client_context(tls.ca), client_context(tls.other_ca)
    assert served(tls_exchange(server.port, old_ca))
    old_children = live_children(server.pid)

    shutil.copy(tls.other_cert, cert)
    shutil.copy(tls.other_cert_key, key)
    server.signal(signal.SIGHUP)
    server.wait_for(r"Binding to .*inherited fd")
    wait_until(lambda: not any(alive(pid) for pid in old_children), what="the old children to retire")

    assert served(tls_exchange(server.port, new_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_exchange(server.port, old_ca)


def test_ssl_error_after_the_fork_reaches_the_background_launcher(servers, tls, tmp_path):
    pid_file = tmp_path / "daemon.pid"
    servers.adopt_pid_file(pid_file)
    done = servers.launch(["PreFork", "--background", "--pid_file", str(pid_file)] + LOOPBACK_TLS
                          + cert_args(tls, key=tls.other_key), tmp_path / "launcher.out")
    assert done.returncode == 1, done.stdout
    assert done.stdout.count("does not match") == 1, done.stdout
    assert "Binding to" not in done.stdout
