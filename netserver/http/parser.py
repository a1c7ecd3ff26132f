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

from typing import Any, Callable, Generic, List, Optional, Protocol, Tuple, TypeVar, overload

from urllib.parse import unquote_to_bytes

try:
    import httptools
except ImportError:  # pragma: no cover - depends on the installation
    # `pip install httptools` works however netserver was installed (from an index or a checkout).
    raise ImportError("the HTTP personality needs httptools: pip install httptools "
                      "(or the extra: pip install 'netserver[http]', from a checkout "
                      "pip install -e '.[http]')") from None

from .errors import HTTPError

__all__ = ["Request", "RequestReader", "Limits"]


class BodySink(Protocol):
    """What collects a request body as it arrives: a list (the default), or the handler's spooling BodyBuffer."""

    def append(self, data: bytes, /) -> None: ...


BodyT = TypeVar("BodyT", bound=BodySink)


class Limits:
    """``max_header_size`` (whole header section), ``max_uri_size``, ``max_headers``, ``max_body_size``."""

    __slots__ = ("max_header_size", "max_uri_size", "max_headers", "max_body_size")

    def __init__(self, max_header_size: int = 100_000, max_uri_size: int = 8192,
                 max_headers: int = 100, max_body_size: int = 16 * 1024 * 1024):
        self.max_header_size = max_header_size
        self.max_uri_size = max_uri_size
        self.max_headers = max_headers
        self.max_body_size = max_body_size


class Request(Generic[BodyT]):
    """One parsed request: method, target, version, headers (raw bytes pairs), body.

    ``body`` is what the reader's body factory made: a list of ``bytes`` unless told otherwise.
    """

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "expect_continue",
                 "continued", "chunked", "content_length")

    @overload
    def __init__(self: "Request[List[bytes]]") -> None: ...
    @overload
    def __init__(self, body: BodyT) -> None: ...

    def __init__(self, body: Any = None) -> None:
        self.method = b""
        self.target = b""
        self.version = "1.1"
        self.headers: List[Tuple[bytes, bytes]] = []
        if body is None:
            body = []
        self.body: BodyT = body
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


def _check_request_line(line: bytes) -> None:
    """Exactly one space between method, target and version (RFC 9112 3); llhttp skips extra
    ones, which a proxy in front may read differently."""
    if b"  " in line:
        raise HTTPError(400, "more than one space between the parts of the request line")


class RequestReader(Generic[BodyT]):
    """Feed bytes, get complete requests.  Also reports when headers are complete (for 100-continue)."""

    @overload
    def __init__(self: "RequestReader[List[bytes]]", limits: Limits) -> None: ...
    @overload
    def __init__(self, limits: Limits, body: Callable[[], BodyT]) -> None: ...

    def __init__(self, limits: Limits, body: Callable[[], Any] = list) -> None:
        self.limits = limits
        self.new_body: Callable[[], BodyT] = body  # what collects a body: a list, or the handler's BodyBuffer
        self.parser = httptools.HttpRequestParser(self)
        self.current: Optional[Request[BodyT]] = None
        self.done: List[Request[BodyT]] = []
        self.body_size = 0
        self.header_size = 0
        self.in_headers = False

    # -- the interface -------------------------------------------------------

    def feed(self, data: bytes) -> List[Request[BodyT]]:
        """Parse ``data``; return the requests it completed (possibly several: pipelining).

        A request refused after others in the same data completed is
        reported by the next :meth:`check` (or ``feed``), so the good ones
        are answered first, in order.
        """
        self.check()
        if self.current is None or self.in_headers:
            self.raw_head += len(data)
        try:
            for piece in self._pieces(data):
                self.parser.feed_data(piece)
                if self.chunk_pending:
                    self._check_chunk_size(piece)
                if self.current is not None and self.current.chunked and not self.in_headers:
                    self.chunk_line = (self.chunk_line + piece)[-256:]  # a size line split over pieces
        except HTTPError as error:
            self.failure = error
        except httptools.HttpParserUpgrade:
            if self.done:
                self.done.pop()  # the request asking for the upgrade is refused, not served
            self.failure = HTTPError(400, "protocol upgrade is not supported")
        except httptools.HttpParserError as exc:
            # An HTTPError raised in a callback arrives wrapped by httptools.
            self.failure = self.failure or HTTPError(400, f"malformed request: {exc}")
        if self.in_headers and self.raw_head > self.limits.max_header_size and self.failure is None:
            # A field that never ends is never reported by llhttp: count the raw bytes too.
            self.failure = HTTPError(431, f"header section over {self.limits.max_header_size} bytes")
        done, self.done = self.done, []
        if not done:
            self.check()
        return done

    failure: Optional[HTTPError] = None
    raw_head = 0

    # -- where a request line starts (llhttp does not say) ---------------------------
    #
    # llhttp skips repeated spaces in the request line and names no offsets, and a chunk's
    # size is not reported at all.  So the data is fed in pieces cut where the state
    # changes — after a request line, at the end of a header section or a chunked body
    # (both end in CRLF CRLF), at the end of a Content-Length body — and each request line
    # and each chunk-size line is seen whole (issue 14).  Usually two pieces per request.

    request_line = b""
    line_open = False      # a request line has begun and its LF not yet seen
    line_done = False      # the current request's line has been checked
    before = b""           # the last bytes fed before the current piece (for CRLF CRLF across feeds)
    chunk_pending = False  # a chunk header was parsed; its size is checked after the piece
    chunk_data = 0         # chunk data bytes seen since that chunk header

    def _pieces(self, data: bytes):
        pos, size = 0, len(data)
        while pos < size:
            current = self.current
            if current is None or (self.in_headers and not self.line_done):
                if not self.line_open:
                    self.request_line, self.line_open, self.line_done = b"", True, False
                newline = data.find(b"\n", pos)
                end = size if newline < 0 else newline + 1
                if len(self.request_line) <= self.limits.max_uri_size + 64:
                    self.request_line += data[pos:end]
                if newline >= 0:
                    line = self.request_line.lstrip(b"\r\n")
                    if line:  # empty lines before a request line are skipped (RFC 9112 2.2)
                        self.line_open, self.line_done = False, True
                        _check_request_line(line)
                    else:
                        self.request_line = b""
            elif self.in_headers or current.chunked:
                seen = (self.before + data[:pos])[-3:]
                found = (seen + data[pos:]).find(b"\r\n\r\n")
                end = size if found < 0 else pos + found + 4 - len(seen)
                end = max(end, pos + 1)
            elif current.content_length is not None:
                end = min(size, pos + max(current.content_length - self.body_size, 1))
            else:
                end = size
            yield data[pos:end]
            pos = end
        self.before = (self.before + data)[-3:]

    def _check_chunk_size(self, piece: bytes) -> None:
        """Right after a chunk-size line: refuse a chunk the body limit cannot hold at once,
        instead of waiting for bytes that would be refused anyway (issue 14)."""
        self.chunk_pending = False
        head = piece[:len(piece) - self.chunk_data]
        line = (self.chunk_line + head).rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        digits = line.split(b";", 1)[0].strip()
        try:
            declared = int(digits, 16)
        except ValueError:
            return
        if self.body_size - self.chunk_data + declared > self.limits.max_body_size:
            self._fail(413, f"chunk of {declared} bytes: request body over {self.limits.max_body_size} bytes")

    chunk_line = b""

    def check(self) -> None:
        """Raise the error found in data already fed, if any."""
        if self.failure is not None:
            raise self.failure

    @property
    def mid_request(self) -> bool:
        """True once a request has started and is not complete (for the header timeout)."""
        return self.current is not None

    # -- llhttp callbacks ---------------------------------------------------------
    #
    # llhttp calls on_message_begin first: every other callback finds ``current`` set.

    def _fail(self, status: int, detail: str) -> None:
        self.failure = HTTPError(status, detail)
        raise self.failure

    def on_message_begin(self) -> None:
        self.chunk_line = b""
        self.current = Request(self.new_body())
        self.in_headers = True
        self.body_size = 0
        self.header_size = 0

    def on_url(self, url: bytes) -> None:
        request = self.current
        assert request is not None
        request.target += url
        self.header_size += len(url)
        if len(request.target) > self.limits.max_uri_size:
            self._fail(414, f"request target over {self.limits.max_uri_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_headers:
            return  # a trailer field after a chunked body: never the request's headers (a trailing
            # 'Host: evil' or 'Authorization' would join the environ); llhttp refuses framing ones
        request = self.current
        assert request is not None
        headers = request.headers
        if len(headers) >= self.limits.max_headers:
            self._fail(431, f"more than {self.limits.max_headers} header fields")
        self.header_size += len(name) + len(value) + 4
        if self.header_size > self.limits.max_header_size:
            self._fail(431, f"header section over {self.limits.max_header_size} bytes")
        # llhttp keeps trailing whitespace; RFC 9110 5.5 leaves it out of the field value (Django
        # refuses 'Host: example.com ').
        headers.append((name, value.rstrip(b" \t") if value[-1:] in (b" ", b"\t") else value))

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        parser = self.parser
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        self.in_headers = False
        self.raw_head = 0
        try:
            self._check(request)
        except HTTPError as error:
            self.failure = error
            raise

    def on_chunk_header(self) -> None:
        self.chunk_pending = True
        self.chunk_data = 0

    def on_chunk_complete(self) -> None:
        self.chunk_pending = False  # its data is all here: on_body counted it

    def on_body(self, body: bytes) -> None:
        self.chunk_data += len(body)
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_size:
            self._fail(413, f"request body over {self.limits.max_body_size} bytes")
        request = self.current
        assert request is not None
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        assert request is not None
        self.done.append(request)
        self.current = None

    # -- what llhttp leaves to us ---------------------------------------------------

    def _check(self, request: Request[BodyT]) -> None:
        host = 0
        transfer_encoding = False
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == b"host":
                host += 1
            elif lowered == b"transfer-encoding":
                if value.strip().lower() != b"chunked":  # 'identity, chunked' and the like (issue 14)
                    raise HTTPError(400, f"Transfer-Encoding {value!r}: only chunked is accepted")
                transfer_encoding = True
                request.chunked = True
            elif lowered == b"content-length":
                request.content_length = int(value)
            elif lowered == b"expect" and request.version == "1.1":  # ignored on 1.0 (RFC 9110 10.1.1)
                if value.strip().lower() != b"100-continue":
                    raise HTTPError(417, f"unsupported Expect: {value!r}")
                request.expect_continue = True
        if request.version not in ("1.0", "1.1"):
            raise HTTPError(400, f"HTTP version {request.version} is not served")
        if request.version == "1.1" and host != 1:
            raise HTTPError(400, "HTTP/1.1 needs exactly one Host header")
        if request.version == "1.0" and transfer_encoding:
            raise HTTPError(400, "Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1)")
        target = request.target
        path = target.split(b"?", 1)[0]
        if b"." in path or b"%" in path:  # the common path has neither: skip the decoding
            segments = unquote_to_bytes(path).split(b"/")
            if b".." in segments or b"." in segments:
                raise HTTPError(400, "dot segments in the request path")
        if target.startswith(b"//"):
            raise HTTPError(400, "request target starts with //")
        if target == b"*" and request.method != b"OPTIONS":
            raise HTTPError(400, "asterisk-form is only for OPTIONS")
        if not (target.startswith(b"/") or target == b"*" or target[:7].lower() == b"http://"
                or target[:8].lower() == b"https://"):
            raise HTTPError(400, "request target is not origin-form or absolute-form")
        if request.content_length is not None and request.content_length > self.limits.max_body_size:
            raise HTTPError(413, f"Content-Length over {self.limits.max_body_size} bytes")
