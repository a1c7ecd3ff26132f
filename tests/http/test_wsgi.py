"""WSGI (PEP 3333) through ``netserver HTTP --app module:attr`` run as a process."""

import http.client
import json
import os
import re
import shutil
import socket
import time

import pytest

from httpkit import Raw, get, log_mark, log_since, public_dir, request, serve, wait_until
from waiting import holds_for


def env_of(response):
    assert response.status == 200, response
    return json.loads(response.body)


# -- wsgiref.validate ---------------------------------------------------------------------------


def test_validator_wrapped_app_is_served_cleanly(app_dir):
    args = ["--app", "/v=wsgiapps:validated", "--app", "/s=wsgiapps:validated_stream", "--log_level", "4"]
    with serve(args, app_dir=app_dir) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
        try:
            conn.request("GET", "/v/path?q=1")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"method=GET path=/path body=\n"
            conn.request("POST", "/v/post", body=b"form=data", headers={"Content-Type": "text/plain"})
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"method=POST path=/post body=form=data\n"
            conn.request("HEAD", "/v/")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b""
            conn.request("GET", "/s/")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b"part1 part2"
        finally:
            conn.close()
        # A late validator complaint (from __del__, say) must not reach the log either.
        assert holds_for(lambda: not any(w in proc.log_text() for w in ("Error", "Traceback", "Warning")), 0.2)
        log = proc.log_text()
        assert "Error" not in log, log
        assert "Traceback" not in log, log
        assert "Warning" not in log, log


# -- environ ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mounted(app_dir):
    with serve(["--app", "/api=wsgiapps:app"], app_dir=app_dir) as proc:
        yield proc


def test_environ_keys(mounted):
    body = b"name=value"
    data = (b"POST /api/env/sub/path?a=1&b=two HTTP/1.1\r\nHost: example.test:8080\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n"
            b"X-Custom-Header: custom\r\nCookie: a=1\r\nCookie: b=2\r\nAccept: x\r\nAccept: y\r\n"
            b"User-Agent: test-agent/1\r\nConnection: close\r\n\r\n" + body)
    with Raw(mounted.port) as conn:
        conn.send(data)
        client_port = conn.sock.getsockname()[1]
        environ = env_of(conn.response())
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/api"
    assert environ["PATH_INFO"] == "/env/sub/path"
    assert environ["QUERY_STRING"] == "a=1&b=two"
    assert environ["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert environ["CONTENT_LENGTH"] == "10"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["SERVER_NAME"] in ("127.0.0.1", "localhost", "example.test")
    assert environ["SERVER_PORT"] == str(mounted.port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == str(client_port)
    assert environ["HTTP_HOST"] == "example.test:8080"
    assert environ["HTTP_X_CUSTOM_HEADER"] == "custom"
    assert environ["HTTP_USER_AGENT"] == "test-agent/1"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "x,y"
    assert environ["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in environ
    assert environ["body"] == "name=value"
    assert environ["extra"] == ""  # wsgi.input ends with the body


def test_environ_without_body_and_percent_decoding(mounted):
    response = get(mounted.port, "/api/env/a%20b/%C3%A9?x=%20y")
    environ = env_of(response)
    assert environ["PATH_INFO"] == "/env/a b/\u00c3\u00a9"  # latin-1 decoded bytes, PEP 3333
    assert environ["QUERY_STRING"] == "x=%20y"  # not decoded
    assert environ["REQUEST_URI"] == "/api/env/a%20b/%C3%A9?x=%20y"
    assert environ.get("CONTENT_LENGTH", "") in ("", "0")
    assert environ["body"] == "" and environ["extra"] == ""


def test_wsgi_input_is_bounded_by_the_body_on_a_pipelined_connection(mounted):
    with Raw(mounted.port) as conn:
        conn.send(b"POST /api/env HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /api/env?second=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        first = env_of(conn.response())
        assert first["body"] == "hello"
        assert first["extra"] == ""  # the next request is not readable as body
        second = env_of(conn.response())
        assert second["QUERY_STRING"] == "second=1"


def test_mount_prefix_matches_whole_segments(mounted):
    assert get(mounted.port, "/api").body == b"hello\n"  # exactly the prefix: PATH_INFO ""
    assert env_of(get(mounted.port, "/api/env"))["SCRIPT_NAME"] == "/api"
    # /apienv is not under /api: "/" answers it (the first app), with the whole path as PATH_INFO
    response = get(mounted.port, "/apienv")
    assert response.status == 404 and response.body == b"not found\n"


def test_underscore_header_cannot_spoof_content_length(mounted):
    response = request(mounted.port, b"POST /api/env HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                                     b"Content_Length: 99\r\nConnection: close\r\n\r\nabc")
    environ = env_of(response)
    assert environ["CONTENT_LENGTH"] == "3"


# -- what the app returns -------------------------------------------------------------------------


def test_write_callable_with_content_length(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /write-length HTTP/1.1\r\nHost: t\r\n\r\nGET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.status == 200 and response.body == b"written-by-write"
        assert conn.response().body == b"hello\n"


def test_write_callable_on_http10(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /write HTTP/1.0\r\n\r\n")
        response = conn.response()
        assert response.status == 200 and response.body == b"written-by-write"


def test_write_callable_chunked_on_http11(server):
    with Raw(server.port, timeout=1.5) as conn:
        conn.send(b"GET /write HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.status == 200 and response.body == b"written-by-write"
        conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.response().body == b"hello\n"


def test_iterable_close_is_called(server):
    marker_dir = public_dir("netserver-marker-")
    os.chmod(marker_dir, 0o1777)  # the serving process (nobody) writes the marker
    try:
        marker = os.path.join(marker_dir, "closed")
        response = get(server.port, f"/close?marker={marker}")
        assert response.status == 200 and response.body == b"closing body"
        def marker_text():
            try:
                with open(marker) as handle:
                    return handle.read()
            except FileNotFoundError:
                return ""
        wait_until(lambda: marker_text() == "closed", timeout=5, what="the app's close() to run")
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def big_file():
    directory = public_dir("netserver-files-")
    path = os.path.join(directory, "big.bin")
    data = os.urandom(1 << 20)
    with open(path, "wb") as out:
        out.write(data)
    os.chmod(path, 0o644)
    yield path, data
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("route", ["file", "file-nolength"])
def test_file_wrapper_serves_a_large_file_intact(server, big_file, route):
    path, data = big_file
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(2):  # twice on one connection: the framing stays in step
            conn.request("GET", f"/{route}?path={path}")
            response = conn.getresponse()
            assert response.status == 200
            if route == "file":
                assert response.getheader("Content-Length") == str(len(data))
            body = response.read()
            assert len(body) == len(data) and body == data
    finally:
        conn.close()


def test_client_leaving_mid_response_harms_nobody(server, big_file):
    path, _ = big_file
    mark = log_mark(server)
    for route in ("file", "file-nolength"):
        with Raw(server.port) as conn:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.send(f"GET /{route}?path={path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert conn.readline().startswith(b"HTTP/1.1 200")
        # closed with most of the megabyte unread
    assert get(server.port, "/index").body == b"hello\n"
    assert holds_for(lambda: "Traceback" not in log_since(server, mark), 0.3), log_since(server, mark)


def test_file_wrapper_head_sends_no_body(server, big_file):
    path, data = big_file
    with Raw(server.port) as conn:
        conn.send(f"HEAD /file?path={path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
                  + b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        head = conn.response("HEAD")
        assert head.status == 200 and head.header("Content-Length") == str(len(data))
        assert conn.response().body == b"hello\n"


def test_wsgi_errors_reaches_the_server_log(server):
    assert get(server.port, "/stderr").body == b"ok"
    server.wait_for(r"app-wrote-to-stderr")


# -- errors ---------------------------------------------------------------------------------------------


def test_app_exception_is_a_500_with_traceback_in_the_log(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /boom?tag=t500 HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.status == 500
        assert b"kaboom" not in response.body  # the traceback is for the log, not the client
        assert conn.closed()
    server.wait_for(r"Traceback \(most recent call last\)")
    server.wait_for(r"RuntimeError: kaboom-t500")
    assert get(server.port, "/index").status == 200  # and the server goes on


def test_app_exception_after_headers_cuts_the_response(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /boom-late HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = conn.read_to_eof()  # the server closes: the head is out, a 500 is too late
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"partial" in body
    assert not body.endswith(b"0\r\n\r\n")  # never a complete-looking response
    server.wait_for(r"RuntimeError: late-failure")


@pytest.mark.parametrize("route", ["crlf", "crlf-name"])
def test_header_with_crlf_is_refused(server, route):
    response = get(server.port, f"/{route}")
    assert response.status == 500
    assert response.header("Set-Cookie") is None
    assert b"evil" not in response.raw_head
    assert b"should not be sent" not in response.body
    server.wait_for(r"CR, LF or NUL")


def test_status_with_crlf_is_refused(server):
    response = get(server.port, "/status-crlf")
    assert response.status == 500
    assert response.header("Set-Cookie") is None


@pytest.mark.parametrize("route", ["long", "long-list"])
def test_body_longer_than_content_length_is_not_sent(server, route):
    with Raw(server.port, timeout=1.5) as conn:
        conn.send(f"GET /{route} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        response = conn.response()
        assert response.body == b"12345"
        try:
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
            following = conn.response()
        except (EOFError, ConnectionError):
            return  # closing the connection is also correct
        assert following.body == b"hello\n"  # not the app's smuggled bytes


@pytest.mark.parametrize("route", ["short", "short-list"])
def test_body_shorter_than_content_length_closes_the_connection(server, route):
    with Raw(server.port, timeout=1.5) as conn:
        conn.send(f"GET /{route} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        started = time.monotonic()
        with pytest.raises(EOFError):
            conn.response()
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("route", ["utf8-length", "list-short"])
def test_whole_body_disagreeing_with_content_length_never_desyncs(server, route):
    """A one-item body that disagrees with the app's Content-Length (issue 14, finding 4): at most
    the declared bytes are sent, and the connection closes, so no tail becomes the next response."""
    mark = log_mark(server)
    with Raw(server.port, timeout=3) as conn:
        conn.send(f"GET /{route} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        if route == "list-short":
            with pytest.raises(EOFError):
                conn.response()
        else:
            response = conn.response()
            assert response.body == "héllo wörld\n".encode("utf-8")[:len("héllo wörld\n")]
            assert conn.closed(), f"kept alive after a length mismatch; buffered {conn.buffer!r}"
            assert b"smuggled" not in conn.buffer
    wait_until(lambda: "declared Content-Length" in log_since(server, mark))


@pytest.mark.parametrize("route", ["negative-length", "word-length"])
def test_bad_content_length_from_the_app_is_a_500(server, route):
    response = get(server.port, f"/{route}")
    assert response.status == 500
    assert b"should not be sent" not in response.body


def test_vertical_tab_in_an_app_header_is_refused(server):
    response = get(server.port, "/vt-header")
    assert response.status == 500
    assert b"\x0b" not in response.raw_head


# -- dispatch ---------------------------------------------------------------------------------------


def test_multiple_mounts_dispatch_by_prefix(app_dir):
    args = ["--app", "/api=wsgiapps:api", "--app", "/other=wsgiapps:other", "--app", "/api/deep=wsgiapps:other"]
    with serve(args, app_dir=app_dir) as proc:
        assert get(proc.port, "/api/x/y").body == b"api script=/api path=/x/y"
        assert get(proc.port, "/api").body == b"api script=/api path="
        assert get(proc.port, "/other/z").body == b"other script=/other path=/z"
        assert get(proc.port, "/api/deep/q").body == b"other script=/api/deep path=/q"
        assert get(proc.port, "/api/deeper").body == b"api script=/api path=/deeper"
        # nothing at "/": the first app answers it
        assert get(proc.port, "/elsewhere").body == b"api script= path=/elsewhere"


def test_default_page_without_app():
    with serve([]) as proc:
        response = get(proc.port, "/some/path?x=1")
        assert response.status == 200
        assert response.header("Content-Type").startswith("text/html")
        assert b"netserver" in response.body
        assert b"/some/path" in response.body


def test_unimportable_app_is_a_startup_error(app_dir):
    from harness import run_command

    result = run_command(["HTTP", "--port", "127.0.0.1:0", "--app", "no_such_module_xyz:app"])
    assert result.returncode != 0
    assert re.search(r"\bapp\b", result.stderr), result.stderr


@pytest.mark.parametrize("bind, connect_to", [
    ("127.0.0.1:0", ["127.0.0.1"]),  # one address: known from the bind, no getsockname per connection
    ("0.0.0.0:0", ["127.0.0.1", "127.0.0.2"]),  # a wildcard: each connection's own local address
])
def test_server_name_is_the_address_the_client_connected_to(app_dir, bind, connect_to):
    with serve(["--app", "wsgiapps:app"], app_dir=app_dir, port=bind) as proc:
        for host in connect_to:
            with Raw(proc.port, host=host) as conn:
                conn.send(b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                environ = env_of(conn.response())
            assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (host, str(proc.port))


def test_unix_socket_listener_environ(app_dir):
    import subprocess

    directory = public_dir("netserver-unix-")
    sock = os.path.join(directory, "http.sock")
    try:
        with serve(["--app", "wsgiapps:app"], app_dir=app_dir, port=f"{sock}|unix"):
            result = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", sock,
                                     "http://unix.test/env?u=1"], capture_output=True, timeout=15)
            assert result.returncode == 0, result.stderr
            environ = json.loads(result.stdout)
            assert environ["QUERY_STRING"] == "u=1"
            assert environ["HTTP_HOST"] == "unix.test"
            assert environ["SERVER_NAME"] != ""
            assert environ["SERVER_PORT"].isdigit()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
