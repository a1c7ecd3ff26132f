"""The HTTP request reader (netserver.http.parser), sans I/O: bytes in, requests or errors out.

Every case is fed whole, line by line and byte by byte: framing must not
depend on how TCP cut the stream.
"""

from __future__ import annotations

import pytest

pytest.importorskip("httptools")

from netserver.http.errors import HTTPError  # noqa: E402
from netserver.http.parser import Limits, Request, RequestReader  # noqa: E402

SMALL = Limits(max_header_size=300, max_uri_size=40, max_headers=5, max_body_size=10)


def pieces(data: bytes, how: str):
    if how == "whole":
        return [data]
    if how == "lines":
        return [line for line in data.splitlines(keepends=True)]
    return [data[i:i + 1] for i in range(len(data))]


FEEDS = ["whole", "lines", "bytes"]


def read_all(data: bytes, how: str, limits: Limits = SMALL):
    """Feed ``data`` in pieces; return the completed requests, or raise the HTTPError found."""
    reader = RequestReader(limits)
    done = []
    for piece in pieces(data, how):
        done.extend(reader.feed(piece))
    reader.check()
    return done, reader


# -- requests that are served ---------------------------------------------------------------------

@pytest.mark.parametrize("how", FEEDS)
@pytest.mark.parametrize("data, expect", [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     [dict(method=b"GET", target=b"/", version="1.1", keep_alive=True, body=b"")]),
    (b"GET /x?q=1 HTTP/1.0\r\n\r\n",
     [dict(method=b"GET", target=b"/x?q=1", version="1.0", keep_alive=False, body=b"")]),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", [dict(version="1.0", keep_alive=True)]),
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", [dict(keep_alive=False)]),
    (b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     [dict(method=b"POST", body=b"hello", content_length=5, chunked=False)]),
    (b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     [dict(body=b"abcde", chunked=True, content_length=None)]),
    (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     [dict(target=b"/1"), dict(target=b"/2")]),
    (b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
     [dict(expect_continue=True, body=b"ok")]),
    (b"PUT /u HTTP/1.0\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nok",
     [dict(expect_continue=False)]),  # Expect is ignored on HTTP/1.0 (RFC 9110 10.1.1)
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", [dict(method=b"OPTIONS", target=b"*")]),
    (b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", [dict(target=b"http://a/b")]),
    (b"GET HTTPS://a/b HTTP/1.1\r\nHost: a\r\n\r\n", [dict(target=b"HTTPS://a/b")]),
    (b"GET /a.b/c%41 HTTP/1.1\r\nHost: a\r\n\r\n", [dict(target=b"/a.b/c%41")]),
    (b"GET /a?x=../.. HTTP/1.1\r\nHost: a\r\n\r\n", [dict(target=b"/a?x=../..")]),  # query not a path
])
def test_served(data, expect, how):
    done, reader = read_all(data, how)
    assert len(done) == len(expect)
    for request, fields in zip(done, expect, strict=True):
        for name, value in fields.items():
            got = b"".join(request.body) if name == "body" else getattr(request, name)
            assert got == value, name
    assert not reader.mid_request


def test_headers_keep_their_order_and_case():
    done, _ = read_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nx-one: 2\r\n\r\n", "whole")
    request = done[0]
    assert request.headers == [(b"Host", b"a"), (b"X-One", b"1"), (b"x-one", b"2")]
    assert request.header(b"x-one") == b"1" and request.header(b"missing") is None


def test_mid_request_between_feeds():
    reader = RequestReader(SMALL)
    assert not reader.mid_request
    assert reader.feed(b"GET / HTTP/1.1\r\nHo") == []
    assert reader.mid_request
    assert len(reader.feed(b"st: a\r\n\r\n")) == 1
    assert not reader.mid_request


def test_a_fresh_request_object():
    request = Request()
    assert (request.method, request.target, request.version, request.keep_alive) == (b"", b"", "1.1", True)


# -- requests that are refused, with the status to answer --------------------------------------

@pytest.mark.parametrize("how", FEEDS)
@pytest.mark.parametrize("data, status, why", [
    (b"GET / HTTP/1.1\r\n\r\n", 400, "exactly one Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "exactly one Host"),
    (b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request target over"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(6)) + b"\r\n", 431,
     "more than 5 header fields"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 300 + b"\r\n\r\n", 431, "header section over"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n" + b"x" * 11, 413, "Content-Length over"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n" + b"x" * 11 + b"\r\n0\r\n\r\n",
     413, "request body over"),
    (b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, "unsupported Expect"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Transfer-Encoding on HTTP/1.0"),
    (b"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "dot segments"),
    (b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "dot segments"),
    (b"GET /./b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "dot segments"),
    (b"GET //evil HTTP/1.1\r\nHost: a\r\n\r\n", 400, "starts with //"),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk-form"),
    (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not origin-form"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, "malformed"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "malformed"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400, "upgrade"),
    (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed"),
])
def test_refused(data, status, why, how):
    with pytest.raises(HTTPError) as caught:
        read_all(data, how)
    assert caught.value.status == status
    assert why in str(caught.value)


def test_a_header_that_never_ends_is_refused_by_its_raw_size():
    """llhttp reports a field only when it ends: the raw bytes count too."""
    reader = RequestReader(SMALL)
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
    with pytest.raises(HTTPError) as caught:
        for _ in range(40):
            reader.feed(b"v" * 10)
    assert caught.value.status == 431


def test_good_requests_before_a_bad_one_are_answered_first():
    reader = RequestReader(SMALL)
    done = reader.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    assert [r.target for r in done] == [b"/1"]
    with pytest.raises(HTTPError) as caught:
        reader.check()
    assert caught.value.status == 400
    with pytest.raises(HTTPError):
        reader.feed(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")  # the reader stays failed


def test_error_text_carries_reason_and_detail():
    error = HTTPError(414, "request target over 40 bytes")
    assert str(error) == "414 URI Too Long: request target over 40 bytes"
    assert str(HTTPError(599)) == "599"
