"""WSGI (PEP 3333), the Python counterpart of Net::Server's PSGI.

``build_environ`` turns a parsed request into the environ; ``Response``
is the ``start_response``/``write`` pair and the framing of what the app
returns (Content-Length when known, chunked on HTTP/1.1, close on HTTP/1.0);
``FileWrapper`` sends files with ``sendfile`` where it can.
"""

from __future__ import annotations

import io
import os
import re
import time
from wsgiref.handlers import format_date_time  # RFC 7231's form; email.utils would load random and 22 more
from urllib.parse import unquote_to_bytes

from .errors import REASONS, HTTPError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = ["build_environ", "Response", "FileWrapper", "http_date"]

_BASE_ENVIRON = {
    "wsgi.version": (1, 0),
    "wsgi.run_once": False,
    "SCRIPT_NAME": "",
}

_date_cache: List[Any] = [0, "", b""]


def http_date() -> str:
    """The ``Date`` header value, formatted once per second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = format_date_time(now)
        _date_cache[2] = f"Date: {_date_cache[1]}\r\n".encode("latin-1")
    return _date_cache[1]


def _date_line() -> bytes:
    """``Date: …\r\n``, encoded once per second."""
    if int(time.time()) != _date_cache[0]:
        http_date()
    return _date_cache[2]


class FileWrapper:
    """``wsgi.file_wrapper``: iterates in blocks, and lets the server ``sendfile`` a real file."""

    def __init__(self, filelike: Any, blksize: int = 65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def fileno(self) -> Optional[int]:
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None


# Per-request work that only depends on a few values is looked up, not recomputed: the environ
# key of a header name, the method and protocol strings.  The tables are bounded (a client
# controls the names it sends).
_ENVIRON_KEYS: Dict[bytes, Optional[str]] = {}
_METHODS: Dict[bytes, str] = {}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_TABLE_LIMIT = 512


def _environ_key(name: bytes) -> Optional[str]:
    """``Content-Type`` → ``CONTENT_TYPE``, ``X-A`` → ``HTTP_X_A``; None for a name with ``_``."""
    key = _ENVIRON_KEYS.get(name, "")
    if key == "":
        if b"_" in name:
            key = None  # 'Content_Length' must not pass for Content-Length (gunicorn and nginx drop these)
        else:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
        if len(_ENVIRON_KEYS) < _TABLE_LIMIT:
            _ENVIRON_KEYS[name] = key
    return key


def build_environ(request: Any, base: Dict[str, Any], script_name: str, path: bytes,
                  query: bytes, body: Any, body_size: int) -> Dict[str, Any]:
    """The per-request environ over ``base`` (server-wide keys computed once per connection).

    ``body`` is the binary file ``wsgi.input`` reads (``body_size`` bytes)."""
    environ = dict(base)
    method = _METHODS.get(request.method)
    if method is None:
        method = request.method.decode("latin-1")
        if len(_METHODS) < _TABLE_LIMIT:
            _METHODS[request.method] = method
    environ["REQUEST_METHOD"] = method
    environ["SCRIPT_NAME"] = script_name
    environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.version) or "HTTP/" + request.version
    environ["REQUEST_URI"] = request.target.decode("latin-1")
    for name, value in request.headers:
        key = _ENVIRON_KEYS.get(name) or _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ and key[0] == "H":  # a repeated header; CONTENT_* keep the last
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
        else:
            environ[key] = text
    environ["wsgi.input"] = body
    if body_size and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(body_size)
    if request.chunked:  # decoded here: the app reads CONTENT_LENGTH bytes, not chunks (Werkzeug
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # took a chunked body for an unknown length)
    return environ


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 5.5: no control characters but HTAB


def _check_header(name: str, value: str) -> None:
    if _CONTROL.search(name) or _CONTROL.search(value):
        raise HTTPError(500, f"the application sent a header with CR, LF or NUL (or another control character): {name!r}")
    if not _TOKEN.match(name):
        raise HTTPError(500, f"the application sent an invalid header name {name!r}")


# What start_response learns from a (status, headers) pair, kept for the pairs an app sends again
# and again (most apps pass the same few): the checks are made once and the head is pre-encoded.
_HEADS: Dict[Any, Tuple[int, bytes, Optional[int], bool, bool]] = {}
_SERVER_LINES: Dict[str, bytes] = {}


def _parse_head(status: str, headers: List[Tuple[str, str]]) -> Tuple[int, bytes, Optional[int], bool, bool]:
    """(code, encoded status line and app headers, Content-Length or None, app asked to close,
    app named its own Server).  The app's ``Date`` gives way to the server's, which is sent
    once (RFC 9110 6.6.1); an app's ``Server`` is sent instead of the server's."""
    _check_header("status", status)
    code = int(status[:3])
    for name, value in headers:
        _check_header(name, value)
    length = _declared_length(headers)
    close = own_server = False
    lines = [f"HTTP/1.1 {status}\r\n"]
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("content-length", "date"):
            continue
        elif lowered == "connection":
            close = close or value.lower() == "close"
        elif lowered != "transfer-encoding":  # the server frames the body itself
            own_server = own_server or lowered == "server"
            lines.append(f"{name}: {value}\r\n")
    return code, "".join(lines).encode("latin-1"), length, close, own_server


def _declared_length(headers: List[Tuple[str, str]]) -> Optional[int]:
    """The app's Content-Length, or None; HTTPError 500 when it is not a non-negative integer
    (or when two disagree), checked before anything is sent."""
    found = None
    for name, value in headers:
        if name.lower() != "content-length":
            continue
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise HTTPError(500, f"the application sent Content-Length {value!r}")
        if found is not None and int(text) != found:
            raise HTTPError(500, "the application sent two different Content-Lengths")
        found = int(text)
    return found


def _server_line(server_header: str) -> bytes:
    line = _SERVER_LINES.get(server_header)
    if line is None:
        line = _SERVER_LINES[server_header] = f"Server: {server_header}\r\n".encode("latin-1") \
            if server_header else b""
    return line


class Response:
    """``start_response`` and ``write`` for one request, writing to the connection."""

    __slots__ = ("conn", "version", "head_only", "keep_alive", "server_header", "status", "code",
                 "headers", "head_sent", "chunked", "length", "sent", "head_size", "wants_close", "parsed",
                 "mismatch")

    def __init__(self, conn: Any, version: str, head_only: bool, keep_alive: bool, server_header: str):
        self.conn = conn
        self.version = version
        self.head_only = head_only
        self.keep_alive = keep_alive
        self.server_header = server_header
        self.status: Optional[str] = None
        self.code = 0
        self.headers: List[Tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False
        self.length: Optional[int] = None
        self.sent = 0
        self.head_size = 0
        self.wants_close = False
        self.mismatch: Optional[str] = None  # why the body did not match the app's Content-Length

    def start_response(self, status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable:
        if exc_info:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        key = parsed = None
        if type(headers) is list:
            try:
                key = (status, *headers)
                parsed = _HEADS.get(key)
            except TypeError:  # a header given as a list: not hashable, checked every time
                key = None
        if parsed is None:
            parsed = _parse_head(status, headers)
            if key is not None:
                if len(_HEADS) >= _TABLE_LIMIT:
                    _HEADS.clear()
                _HEADS[key] = parsed
        self.parsed = parsed
        self.status = status
        self.code = parsed[0]
        self.headers = headers
        return self.write

    def _head(self, body_known: Optional[int]) -> bytes:
        """The status line and headers, with the framing chosen now."""
        code, prefix, length, close, own_server = self.parsed
        no_body = code in (204, 304) or code < 200
        close = close or not self.keep_alive
        parts = [prefix]
        if length is None and not no_body:
            if body_known is not None:
                length = body_known
            elif self.version == "1.1":
                self.chunked = not self.head_only
                if self.chunked:
                    parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                close = True  # HTTP/1.0 without a length: the end of the body is the close
        if length is not None and not no_body:
            parts.append(b"Content-Length: %d\r\n" % length)
            self.length = length
        parts.append(_date_line())
        if not own_server:
            parts.append(_SERVER_LINES.get(self.server_header) or _server_line(self.server_header))
        if close:
            parts.append(b"Connection: close\r\n\r\n")
            self.wants_close = True
        elif self.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        head = b"".join(parts)
        self.head_size = len(head)
        self.head_sent = True
        return head

    def write(self, data: bytes) -> None:
        """The ``write`` callable (and the body writer): frames ``data`` and sends it."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        out = b"" if self.head_sent else self._head(None)
        if data and not self.head_only and self.code not in (204, 304):
            if self.length is not None and self.sent + len(data) > self.length:
                data = data[:self.length - self.sent]  # never more than the app declared
                self._body_mismatch("more")
            self.sent += len(data)
            out += (b"%x\r\n%s\r\n" % (len(data), data)) if self.chunked else data
        if out:
            self.conn.sendall(out)

    def send_whole(self, body: bytes) -> None:
        """The app returned its whole body: one write with a Content-Length."""
        if type(body) is not bytes:
            body = _as_bytes(body)
        if self.head_sent:  # the app used write() first
            self.write(body)
            self.finish()
            return
        head = self._head(len(body))
        if self.head_only or self.code in (204, 304) or self.code < 200:
            self.conn.sendall(head)
            return
        length = self.length
        assert length is not None  # _head() framed a body: the app's Content-Length or len(body)
        if length != len(body):
            # The app's Content-Length is what the client reads by: never more, and a short
            # body can only be ended by closing (issue 14: the tail became the next response).
            self._body_mismatch("more" if len(body) > length else "fewer", len(body))
            body = body[:length]
        self.sent += len(body)
        self.conn.sendall(head + body)

    def send_file(self, wrapper: FileWrapper) -> bool:
        """``sendfile`` a real file when the framing allows; False to fall back to iteration."""
        fd = wrapper.fileno()
        if fd is None or self.head_sent or self.head_only or not hasattr(self.conn, "sendfile"):
            return False
        try:
            size = os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:
            return False
        declared = self.parsed[2]
        if declared is not None and declared != size:
            return False
        self.conn.sendall(self._head(size))
        if type(self.conn).__name__ == "SSLSocket":
            return self._stream(wrapper)
        self.sent += self.conn.sendfile(wrapper.filelike, os.lseek(fd, 0, os.SEEK_CUR), size)
        return True

    def _stream(self, wrapper: FileWrapper) -> bool:
        for block in wrapper:
            self.sent += len(block)
            self.conn.sendall(block)
        return True

    def finish(self) -> None:
        """End the body (the last chunk), sending the head if nothing was written."""
        if not self.head_sent:
            self.conn.sendall(self._head(0))
        elif self.chunked:
            self.conn.sendall(b"0\r\n\r\n")
        if self.length is not None and self.sent < self.length and not self.head_only \
                and self.code not in (204, 304) and self.mismatch is None:
            self._body_mismatch("fewer")  # only closing ends such a response

    def _body_mismatch(self, how: str, size: Optional[int] = None) -> None:
        """The body disagrees with the declared length: the connection must close."""
        self.wants_close = True
        if self.mismatch is None:
            told = f"{size} bytes" if size is not None else f"{how} bytes"
            self.mismatch = (f"the application declared Content-Length {self.length} but returned {told}; "
                             f"sent at most {self.length} and closed the connection")


def _as_bytes(data: Any) -> bytes:
    """A body piece whose type is not exactly ``bytes``: a subclass or a bytes-like one as bytes;
    anything else (a ``str``) is the application's error, a 500 while nothing is sent yet (PEP
    3333: bytes only)."""
    if isinstance(data, bytes):
        return data  # a subclass of bytes (numpy.bytes_…): bytes as PEP 3333 means it
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise HTTPError(500, f"the application returned {type(data).__name__} in its body, not bytes")


def error_body(status: int, detail: str = "") -> Tuple[str, List[Tuple[str, str]], bytes]:
    reason = REASONS.get(status, "Error")
    body = f"<h1>{status} {reason}</h1>\n".encode()
    return f"{status} {reason}", [("Content-Type", "text/html; charset=utf-8")], body


def run_app(app: Callable, environ: Dict[str, Any], response: Response) -> None:
    """Call a WSGI app and send what it returns; closes the iterable (PEP 3333)."""
    result: Iterable[bytes] = app(environ, response.start_response)
    try:
        if isinstance(result, FileWrapper) and response.status is not None and response.send_file(result):
            return
        if isinstance(result, (list, tuple)) and len(result) <= 1 and response.status is not None:
            response.send_whole(result[0] if result else b"")
            return
        for data in result:
            if data:
                response.write(data)
        if response.status is None:
            raise HTTPError(500, "the application returned without calling start_response")
        response.finish()
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()

