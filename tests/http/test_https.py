"""HTTPS: the HTTP personality over an ``ssl`` listener (``--port HOST:PORT/ssl``)."""

import http.client
import json
import os
import shutil

import pytest

from httpkit import curl, public_dir, serve
from pki import server_pki

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def pki():
    with server_pki() as files:
        yield files


def assert_index_served(port, pki, timeout=5):
    """GET /index over TLS (trusting the test CA) answers the app's ``hello``, each step within ``timeout``."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=pki["context"], timeout=timeout)
    try:
        conn.request("GET", "/index")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello\n")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def https_server(app_dir, pki):
    # defer_accept 0: a silent TCP client reaches a child at once, so the silent-client tests below
    # test the child's loop, not the kernel's deferral (test_defer_accept.py)
    args = ["--app", "wsgiapps:app", "--SSL_cert_file", pki["cert"], "--SSL_key_file", pki["key"],
            "--defer_accept", "0"]
    with serve(args, app_dir=app_dir, port="127.0.0.1:0/ssl") as proc:
        yield proc


def test_https_request_sees_https_scheme(https_server, pki):
    conn = http.client.HTTPSConnection("127.0.0.1", https_server.port, context=pki["context"], timeout=10)
    try:
        conn.request("GET", "/env?tls=1")
        response = conn.getresponse()
        assert response.status == 200
        environ = json.loads(response.read())
        assert environ["wsgi.url_scheme"] == "https"
        assert environ["HTTPS"] == "on"
        assert environ["QUERY_STRING"] == "tls=1"
        assert environ["SERVER_PORT"] == str(https_server.port)
        # keep-alive over TLS: the same connection serves the next request
        first_pid = environ["pid"]
        conn.request("POST", "/env", body=b"over-tls")
        again = json.loads(conn.getresponse().read())
        assert again["pid"] == first_pid and again["body"] == "over-tls"
        conn.request("GET", "/chunked")
        assert conn.getresponse().read() == b"alpha-beta-gamma"
    finally:
        conn.close()


def test_https_with_curl(https_server, pki):
    result = curl("--cacert", pki["ca"], f"https://localhost:{https_server.port}/index")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\n"


def test_https_rejected_without_the_ca(https_server):
    result = curl(f"https://localhost:{https_server.port}/index")
    assert result.returncode != 0  # an untrusted certificate: curl refuses, as it should
    result = curl("--cacert", "/dev/null", "-k", f"https://localhost:{https_server.port}/index")
    assert result.returncode == 0 and result.stdout == b"hello\n"


def test_https_file_wrapper_large_file(https_server, pki):
    directory = public_dir("netserver-tlsfile-")
    try:
        path = os.path.join(directory, "big.bin")
        data = os.urandom(1 << 20)
        with open(path, "wb") as out:
            out.write(data)
        os.chmod(path, 0o644)
        conn = http.client.HTTPSConnection("localhost", https_server.port, context=pki["context"], timeout=10)
        try:
            conn.request("GET", f"/file?path={path}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == data
            conn.request("GET", "/index")  # the TLS stream is still in step
            assert conn.getresponse().read() == b"hello\n"
        finally:
            conn.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_plain_and_tls_listeners_side_by_side(app_dir, pki):
    args = ["--app", "wsgiapps:app", "--SSL_cert_file", pki["cert"], "--SSL_key_file", pki["key"],
            "--port", "127.0.0.1:0/tcp"]
    with serve(args, app_dir=app_dir, port="127.0.0.1:0/ssl", bindings=2) as proc:
        ports = {proto: port for proto, port, _ in proc.bindings}
        assert set(ports) == {"SSL", "TCP"}, proc.bindings
        tls = http.client.HTTPSConnection("127.0.0.1", ports["SSL"], context=pki["context"], timeout=10)
        plain = http.client.HTTPConnection("127.0.0.1", ports["TCP"], timeout=10)
        try:
            tls.request("GET", "/env")
            assert json.loads(tls.getresponse().read())["wsgi.url_scheme"] == "https"
            plain.request("GET", "/env")
            environ = json.loads(plain.getresponse().read())
            assert environ["wsgi.url_scheme"] == "http" and "HTTPS" not in environ
        finally:
            tls.close()
            plain.close()


def test_silent_tcp_clients_do_not_block_tls(https_server, pki):
    """The handshake happens where the connection is served, never in the accept loop."""
    import socket
    import time

    silent = [socket.create_connection(("127.0.0.1", https_server.port), timeout=5) for _ in range(3)]
    try:
        started = time.monotonic()
        assert_index_served(https_server.port, pki)
        assert time.monotonic() - started < 2
    finally:
        for sock in silent:
            sock.close()


def test_plain_http_on_the_tls_port_is_dropped(https_server, pki):
    from httpkit import Raw, log_mark, log_since

    mark = log_mark(https_server)
    with Raw(https_server.port, timeout=5) as conn:
        conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"hello" not in conn.read_to_eof()  # no plaintext answer
    assert_index_served(https_server.port, pki)
    assert "Traceback" not in log_since(https_server, mark)


def _tls_raw(port, pki):
    from httpkit import Raw

    conn = Raw(port, timeout=10)
    conn.sock = pki["context"].wrap_socket(conn.sock, server_hostname="127.0.0.1")
    return conn


def test_silent_tls_clients_do_not_hold_the_only_process(app_dir, pki):
    """Event children run the handshake in their loop: silent TLS clients hold no process (issue 14)."""
    import socket
    import time

    args = ["--app", "wsgiapps:app", "--SSL_cert_file", pki["cert"], "--SSL_key_file", pki["key"],
            "--server_type", "PreForkSimple", "--max_servers", "1", "--http_event", "1", "--defer_accept", "0"]
    with serve(args, app_dir=app_dir, port="127.0.0.1:0/ssl") as proc:
        silent = [socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(5)]
        parked = [_tls_raw(proc.port, pki) for _ in range(3)]
        try:
            pids = set()
            for conn in parked:  # three idle keep-alive TLS connections, one process
                conn.send(b"GET /env HTTP/1.1\r\nHost: t\r\n\r\n")
                pids.add(json.loads(conn.response().body)["pid"])
            assert len(pids) == 1
            started = time.monotonic()
            assert_index_served(proc.port, pki)
            assert time.monotonic() - started < 2  # classic: the 5 silent handshakes first, 10 s each
            for conn in parked:
                conn.send(b"GET /env HTTP/1.1\r\nHost: t\r\n\r\n")
                assert json.loads(conn.response().body)["pid"] in pids
        finally:
            for sock in silent:
                sock.close()
            for conn in parked:
                conn.close()


def test_tls_pipelined_requests_in_separate_records_are_all_answered(https_server, pki):
    """Requests OpenSSL has already decrypted are not lost while the loop waits on epoll."""
    conn = _tls_raw(https_server.port, pki)
    try:
        requests = [f"GET /env?n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for n in range(4)]
        conn.send(b"".join(requests[:2]))  # one record with two requests
        for request in requests[2:]:
            conn.send(request)  # one record each
        assert [json.loads(conn.response().body)["QUERY_STRING"] for _ in range(4)] == [
            "n=0", "n=1", "n=2", "n=3"]
        conn.send(b"POST /env HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70000)
        assert len(json.loads(conn.response().body)["body"]) == 70000  # a body over several records
    finally:
        conn.close()


@pytest.mark.slow
def test_a_silent_tls_client_is_closed_at_the_handshake_timeout(app_dir, pki):
    import socket

    args = ["--app", "wsgiapps:app", "--SSL_cert_file", pki["cert"], "--SSL_key_file", pki["key"],
            "--SSL_handshake_timeout", "1"]
    with serve(args, app_dir=app_dir, port="127.0.0.1:0/ssl") as proc:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=8) as silent:
            assert silent.recv(100) == b""  # closed without a word


def test_a_refused_tls_client_gets_400_and_silent_refused_ones_hold_nothing(app_dir, pki):
    """Over TLS the access check follows the handshake, in the loop: a silent client from a denied
    address cannot make the child wait on a handshake to send its 400."""
    import socket
    import time

    args = ["--app", "wsgiapps:app", "--SSL_cert_file", pki["cert"], "--SSL_key_file", pki["key"],
            "--server_type", "PreForkSimple", "--max_servers", "1", "--http_event", "1",
            "--cidr_deny", "127.0.0.0/8", "--defer_accept", "0"]
    with serve(args, app_dir=app_dir, port="127.0.0.1:0/ssl") as proc:
        silent = [socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(3)]
        try:
            started = time.monotonic()
            conn = _tls_raw(proc.port, pki)
            try:
                conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                response = conn.response()
                assert (response.status, response.reason) == (400, "Bad Request")
            finally:
                conn.close()
            assert time.monotonic() - started < 2  # not after 3 silent handshakes of 5 s each
        finally:
            for sock in silent:
                sock.close()
        proc.wait_for(r"Denying connection from")
