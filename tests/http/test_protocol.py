"""HTTP/1.0 and 1.1 on the wire: persistence, pipelining, framing, 100-continue, HEAD, headers.

Every test talks to a real ``netserver HTTP --app wsgiapps:app`` process
(the session ``server`` fixture, PreFork, the default personality) through http.client,
urllib, curl or a raw socket.
"""

import email.utils
import http.client
import json
import socket
import time
import urllib.request

import pytest


from httpkit import Raw, curl, get, request, serve


def env_of(response):
    assert response.status == 200, response
    return json.loads(response.body)


# -- versions and persistence --------------------------------------------------------


def test_http10_request_is_answered_and_closed(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /env?v=10 HTTP/1.0\r\n\r\n")
        response = conn.response()
        assert response.version == "HTTP/1.1"
        assert response.header("Connection").lower() == "close"
        environ = env_of(response)
        assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
        assert environ["QUERY_STRING"] == "v=10"
        assert conn.closed()


def test_http10_keep_alive_when_asked(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /pid HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = conn.response()
        assert first.status == 200
        assert first.header("Connection").lower() == "keep-alive"
        conn.send(b"GET /pid HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        second = conn.response()
        assert second.body == first.body  # same serving process, same client port
        conn.send(b"GET /pid HTTP/1.0\r\n\r\n")
        third = conn.response()
        assert third.header("Connection").lower() == "close"
        assert conn.closed()


def test_http11_keep_alive_with_http_client(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        seen = []
        for _ in range(4):
            conn.request("GET", "/pid")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") is None  # persistent by default on 1.1
            seen.append(response.read())
        client_port = conn.sock.getsockname()[1]
    finally:
        conn.close()
    assert len(set(seen)) == 1, seen  # one connection, one serving process
    pid, port = seen[0].split()
    assert int(port) == client_port


def test_urllib_get(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/index", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"hello\n"
        assert response.headers["Content-Type"] == "text/plain"


def test_curl_reuses_one_connection(server):
    url = f"http://127.0.0.1:{server.port}/pid"
    result = curl("-w", "\n", url, url, url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().split()
    bodies = [" ".join(lines[i:i + 2]) for i in range(0, len(lines), 2)]
    assert len(bodies) == 3 and len(set(bodies)) == 1, bodies


def test_curl_http10(server):
    result = curl("-0", "-i", f"http://127.0.0.1:{server.port}/chunked")
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"alpha-beta-gamma"


# -- pipelining -----------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(server):
    pipeline = (b"GET /env?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nsecond-body"
                b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n"
                b"HEAD /index HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /env?n=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with Raw(server.port) as conn:
        conn.send(pipeline)  # one write
        assert env_of(conn.response())["QUERY_STRING"] == "n=1"
        assert conn.response().body == b"second-body"
        assert conn.response().body == b"alpha-beta-gamma"
        head = conn.response("HEAD")
        assert head.status == 200 and head.header("Content-Length") == "6"
        last = conn.response()
        assert env_of(last)["QUERY_STRING"] == "n=5"
        assert last.header("Connection").lower() == "close"
        assert conn.closed()
        assert conn.buffer == b""


def test_many_pipelined_requests_in_one_write(server):
    count = 200
    pipeline = b"".join(b"GET /env?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(count - 1))
    pipeline += b"GET /env?n=%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % (count - 1)
    with Raw(server.port) as conn:
        conn.send(pipeline)
        seen = [env_of(conn.response())["QUERY_STRING"] for _ in range(count)]
        assert conn.closed()
    assert seen == [f"n={i}" for i in range(count)]


def test_pipelined_requests_byte_by_byte(server):
    pipeline = (b"GET /env?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /env?n=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with Raw(server.port) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(pipeline)):
            conn.send(pipeline[i:i + 1])
        assert env_of(conn.response())["QUERY_STRING"] == "n=1"
        assert env_of(conn.response())["QUERY_STRING"] == "n=2"


def test_valid_request_before_a_bad_pipelined_one_is_answered(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
        first = conn.response()
        assert first.status == 200 and first.body == b"hello\n"
        assert conn.response().status == 400


# -- request bodies -------------------------------------------------------------------


def test_chunked_request_body(server):
    body = (b"5\r\nhello\r\n"
            b"1;ext=1\r\n \r\n"
            b"6\r\nchunks\r\n"
            b"0\r\nX-Trailer: yes\r\n\r\n")
    response = request(server.port, b"POST /env HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                     b"Content-Type: text/plain\r\nConnection: close\r\n\r\n" + body)
    environ = env_of(response)
    assert environ["body"] == "hello chunks"
    assert environ["CONTENT_LENGTH"] == "12"
    assert environ["extra"] == ""


def test_a_chunked_body_is_handed_over_decoded(server):
    """The body was de-chunked here: the app sees CONTENT_LENGTH and no Transfer-Encoding, and
    ``wsgi.input_terminated`` (Werkzeug read a chunked body as empty without it)."""
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    response = request(server.port, b"POST /env HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                     b"Connection: close\r\n\r\n" + body)
    environ = env_of(response)
    assert environ["CONTENT_LENGTH"] == "11" and "HTTP_TRANSFER_ENCODING" not in environ
    pytest.importorskip("werkzeug")
    response = request(server.port, b"POST /werkzeug-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                     b"Connection: close\r\n\r\n" + body)
    assert response.body == b"hello world"


def test_header_values_lose_trailing_whitespace(server):
    """RFC 9110 5.5: the field value excludes it (Django refuses 'Host: example.com ')."""
    response = request(server.port, b"POST /env HTTP/1.1\r\nHost: x  \r\nContent-Type: text/plain \t\r\n"
                                     b"X-Padded:   padded   \r\nContent-Length: 2 \r\nConnection: close\r\n\r\nab")
    environ = env_of(response)
    assert (environ["HTTP_HOST"], environ["CONTENT_TYPE"], environ["HTTP_X_PADDED"], environ["CONTENT_LENGTH"]) == \
        ("x", "text/plain", "padded", "2")
    assert environ["body"] == "ab"


def test_chunked_request_body_from_http_client(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/echo", body=iter([b"one-", b"two-", b"three"]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"one-two-three"
        conn.request("POST", "/echo", body=b"plain")  # the connection is still in step
        assert conn.getresponse().read() == b"plain"
    finally:
        conn.close()


# -- response framing -----------------------------------------------------------------


def test_chunked_response_on_http11(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.header("Content-Length") is None
        assert response.body == b"alpha-beta-gamma"
        conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")  # still usable afterwards
        assert conn.response().body == b"hello\n"


def test_chunked_response_wire_format(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        raw = conn.read_to_eof()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"6\r\nalpha-\r\n5\r\nbeta-\r\n5\r\ngamma\r\n0\r\n\r\n"


def test_chunked_response_with_http_client(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/chunked")
            response = conn.getresponse()
            assert response.chunked
            assert response.read() == b"alpha-beta-gamma"
    finally:
        conn.close()


def test_close_delimited_response_on_http10(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = conn.response()  # neither length nor chunked: read to EOF
        assert response.header("Transfer-Encoding") is None
        assert response.header("Content-Length") is None
        assert response.header("Connection").lower() == "close"
        assert response.body == b"alpha-beta-gamma"


def test_no_content_has_no_body(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /nocontent HTTP/1.1\r\nHost: t\r\n\r\nGET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.status == 204
        assert response.header("Content-Length") is None
        assert response.header("Transfer-Encoding") is None
        assert conn.response().body == b"hello\n"


# -- Expect: 100-continue ----------------------------------------------------------------


def test_expect_100_continue_before_body(server):
    with Raw(server.port) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
        interim = conn.response()  # nothing of the body has been sent yet
        assert (interim.status, interim.reason) == (100, "Continue")
        conn.send(b"payload")
        final = conn.response()
        assert final.status == 200 and final.body == b"payload"


def test_expect_100_continue_when_head_arrives_in_pieces(server):
    with Raw(server.port, timeout=2) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\n")
        time.sleep(0.3)
        conn.send(b"Content-Length: 7\r\nExpect: 100-continue\r\n\r\n")
        interim = conn.response()
        assert interim.status == 100
        conn.send(b"payload")
        assert conn.response().body == b"payload"


def test_expect_100_continue_refused_before_the_body(app_dir):
    """A body over max_body_size is refused on the head alone: no 100, no body sent."""
    with serve(["--app", "wsgiapps:app", "--max_body_size", "100"], app_dir=app_dir) as proc:
        with Raw(proc.port) as conn:
            conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            response = conn.response()
            assert response.status == 413
            assert conn.closed()


def test_expect_100_continue_ignored_on_http10(server):
    with Raw(server.port, timeout=3) as conn:
        conn.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        time.sleep(0.3)
        conn.send(b"hello")
        response = conn.response()
        assert response.status == 200 and response.body == b"hello"


def test_expect_100_continue_with_curl(server):
    started = time.monotonic()
    result = curl("-v", "-H", "Expect: 100-continue", "--data-binary", "curl-body",
                  f"http://127.0.0.1:{server.port}/echo")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"curl-body"
    assert b"HTTP/1.1 100 Continue" in result.stderr
    assert elapsed < 0.9  # curl waits 1 s for a 100 that never comes


# -- HEAD, headers, Connection: close -----------------------------------------------------


def test_head_has_headers_but_no_body(server):
    with Raw(server.port) as conn:
        conn.send(b"HEAD /index HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /index HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        first = conn.response("HEAD")
        assert first.status == 200
        assert first.header("Content-Length") == "6"
        assert first.header("Content-Type") == "text/plain"
        second = conn.response("HEAD")
        assert second.status == 200
        # nothing of either body went out: the next response starts right after the heads
        third = conn.response()
        assert third.body == b"hello\n"
        assert conn.closed()
        assert conn.buffer == b""


def test_head_with_http_client(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("HEAD", "/index")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b""
        assert response.getheader("Content-Length") == "6"
        conn.request("GET", "/index")
        assert conn.getresponse().read() == b"hello\n"
    finally:
        conn.close()


def test_date_and_server_headers(server):
    response = get(server.port, "/index")
    assert response.header("Server") == "TestServer/1"
    date = email.utils.parsedate_to_datetime(response.header("Date"))
    assert response.header("Date").endswith(" GMT")
    assert abs(date.timestamp() - time.time()) < 5
    assert len(response.header_all("Date")) == 1


def test_the_apps_server_header_replaces_ours_and_its_date_gives_way(server):
    response = get(server.port, "/own-server")
    assert response.header_all("Server") == ["myapp/1.0"]
    assert len(response.header_all("Date")) == 1 and not response.header("Date").startswith("Thu, 01 Jan 1970")


def test_a_str_body_is_the_apps_error_and_a_500(server):
    for route in ("/str-body", "/str-iter"):
        assert get(server.port, route).status == 500
    assert get(server.port, "/bytes-subclass").body == b"subclass"  # a subclass of bytes is bytes


def test_trailer_fields_never_join_the_request_headers(server):
    """A chunked body's trailer ('Host: evil', 'Authorization') is not the request's header section."""
    body = b"5\r\nhello\r\n0\r\nHost: evil\r\nAuthorization: Basic ZXZlOng=\r\nX-Late: 1\r\n\r\n"
    response = request(server.port, b"POST /env HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                     b"Connection: close\r\n\r\n" + body)
    environ = env_of(response)
    assert environ["HTTP_HOST"] == "x" and environ["body"] == "hello"
    assert "HTTP_AUTHORIZATION" not in environ and "HTTP_X_LATE" not in environ


def test_empty_server_revision_sends_no_server_header(app_dir):
    with serve(["--app", "wsgiapps:app", "--server_revision", ""], app_dir=app_dir) as proc:
        response = get(proc.port, "/index")
        assert response.status == 200
        assert response.header("Server") is None
        assert response.header("Date")


def test_connection_close_is_honoured(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                  b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")  # must be ignored
        response = conn.response()
        assert response.header("Connection").lower() == "close"
        assert conn.closed()
        assert conn.buffer == b""  # no second response


def test_connection_close_from_the_app_is_honoured(server):
    with Raw(server.port) as conn:
        conn.send(b"GET /app-close HTTP/1.1\r\nHost: t\r\n\r\nGET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        assert response.body == b"bye!\n"
        assert response.header_all("Connection") == ["close"]
        assert conn.closed()
        assert conn.buffer == b""


def test_absolute_form_target(server):
    response = request(server.port, b"GET http://example.test/env?x=1 HTTP/1.1\r\nHost: example.test\r\n"
                                     b"Connection: close\r\n\r\n")
    environ = env_of(response)
    assert environ["PATH_INFO"] == "/env"
    assert environ["QUERY_STRING"] == "x=1"
