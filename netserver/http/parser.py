"""Reading HTTP/1.x requests, sans I/O, behind one small interface.

``RequestReader.feed(bytes)`` returns the requests completed so far; the
limits and the framing rules are enforced here and reported as
:class:`~netserver.http.errors.HTTPError` with the status to answer.  It
uses llhttp (through ``httptools``): measured 16× faster than h11 on a
typical request and stricter by default — it refuses Transfer-Encoding
with Content-Length, duplicate Content-Length, obsolete line folding, bare
LF, and CR, NUL or white space where a header name ends.  The rules llhttp
leaves to the server (Host on HTTP/1.1, Transfer-Encoding on HTTP/1.0,
request targets) are checked here.  docs/http.md has the comparison.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import httptools

from .errors import HTTPError

__all__ = ["Request", "RequestReader", "Limits"]


class Limits:
    """``max_header_size`` (whole header section), ``max_uri_size``, ``max_headers``, ``max_body_size``."""

    __slots__ = ("max_header_size", "max_uri_size", "max_headers", "max_body_size")

    def __init__(self, max_header_size: int = 100_000, max_uri_size: int = 8192,
                 max_headers: int = 100, max_body_size: int = 16 * 1024 * 1024):
        self.max_header_size = max_header_size
        self.max_uri_size = max_uri_size
        self.max_headers = max_headers
        self.max_body_size = max_body_size


class Request:
    """One parsed request: method, target, version, headers (raw bytes pairs), body."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "expect_continue",
                 "continued", "chunked", "content_length")

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.version = "1.1"
        self.headers: List[Tuple[bytes, bytes]] = []
        self.body: List[bytes] = []
        self.keep_alive = True
        self.expect_continue = False
        self.continued = False
        self.chunked = False
        self.content_length: Optional[int] = None

    def header(self, name: bytes) -> Optional[bytes]:
        """The first value of a header (``name`` lower-case)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class RequestReader:
    """Feed bytes, get complete requests.  Also reports when headers are complete (for 100-continue)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self.current: Optional[Request] = None
        self.done: List[Request] = []
        self.body_size = 0
        self.header_size = 0
        self.in_headers = False
        self.waiting_continue: Optional[Request] = None

    # -- the interface -------------------------------------------------------

    def feed(self, data: bytes) -> List[Request]:
        """Parse ``data``; return the requests it completed (possibly several: pipelining)."""
        if self.in_headers or self.current is None:
            self.header_size += len(data)
        try:
            self.parser.feed_data(data)
        except HTTPError:
            raise
        except httptools.HttpParserUpgrade:
            raise HTTPError(400, "protocol upgrade is not supported") from None
        except httptools.HttpParserError as exc:
            raise HTTPError(400, f"malformed request: {exc}") from None
        if self.in_headers and self.header_size > self.limits.max_header_size:
            raise HTTPError(431, f"header section over {self.limits.max_header_size} bytes")
        done, self.done = self.done, []
        return done

    @property
    def mid_request(self) -> bool:
        """True once a request has started and is not complete (for the header timeout)."""
        return self.current is not None

    # -- llhttp callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = Request()
        self.in_headers = True
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        request = self.current
        request.target += url
        if len(request.target) > self.limits.max_uri_size:
            raise HTTPError(414, f"request target over {self.limits.max_uri_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.current.headers
        if len(headers) >= self.limits.max_headers:
            raise HTTPError(431, f"more than {self.limits.max_headers} header fields")
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.current
        parser = self.parser
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        self.in_headers = False
        self.header_size = 0
        self._check(request)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_size:
            raise HTTPError(413, f"request body over {self.limits.max_body_size} bytes")
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(self.current)
        self.current = None

    # -- what llhttp leaves to us ---------------------------------------------------

    def _check(self, request: Request) -> None:
        host = 0
        transfer_encoding = False
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == b"host":
                host += 1
            elif lowered == b"transfer-encoding":
                transfer_encoding = True
                request.chunked = True
            elif lowered == b"content-length":
                request.content_length = int(value)
            elif lowered == b"expect":
                if value.strip().lower() != b"100-continue":
                    raise HTTPError(417, f"unsupported Expect: {value!r}")
                request.expect_continue = True
        if request.version == "1.1" and host != 1:
            raise HTTPError(400, "HTTP/1.1 needs exactly one Host header")
        if request.version == "1.0" and transfer_encoding:
            raise HTTPError(400, "Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1)")
        target = request.target
        if target.startswith(b"//"):
            raise HTTPError(400, "request target starts with //")
        if not (target.startswith(b"/") or target == b"*" or target[:7].lower() == b"http://"
                or target[:8].lower() == b"https://"):
            raise HTTPError(400, "request target is not origin-form or absolute-form")
        if request.content_length is not None and request.content_length > self.limits.max_body_size:
            raise HTTPError(413, f"Content-Length over {self.limits.max_body_size} bytes")
