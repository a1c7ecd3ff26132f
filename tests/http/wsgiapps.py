"""WSGI applications the HTTP tests serve with ``netserver HTTP --app wsgiapps:NAME``.

The tests copy this file into a world-readable temporary directory and put
that directory on the server's PYTHONPATH (the serving processes run as
``nobody`` when the tests run as root).  ``app`` routes on the first segment
of PATH_INFO so one server answers most tests; the other names are mounted
on their own.
"""

import json
import os
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator


def _query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _text(start_response, body, status="200 OK", ctype="text/plain"):
    data = body.encode("utf-8") if isinstance(body, str) else body
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def environ_json(environ, start_response):
    """The environ's str values, plus what reading the body gives."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    body = stream.read(int(length)) if length.isdigit() else b""
    extra = stream.read(10)
    result = {k: v for k, v in environ.items() if isinstance(v, str)}
    result["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    result["wsgi.multithread"] = environ["wsgi.multithread"]
    result["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
    result["body"] = body.decode("latin-1")
    result["extra"] = extra.decode("latin-1")
    result["pid"] = os.getpid()
    return _text(start_response, json.dumps(result), ctype="application/json")


class _Bytes(bytes):
    pass


class ClosingBody:
    """An iterable whose close() leaves a marker file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __iter__(self):
        yield b"closing "
        yield b"body"

    def close(self):
        with open(self.marker, "w") as out:
            out.write("closed")


def app(environ, start_response):
    route = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
    query = _query(environ)
    if route in ("", "index"):
        return _text(start_response, "hello\n")
    if route == "env":
        return environ_json(environ, start_response)
    if route == "pid":
        return _text(start_response, f"{os.getpid()} {environ.get('REMOTE_PORT')}")
    if route == "sleep":  # a slow app: ?s seconds, then the serving pid
        time.sleep(float(query.get("s", "0.3")))
        return _text(start_response, str(os.getpid()))
    if route == "big":  # one block of ?size bytes (a slow reader's response)
        return _text(start_response, b"x" * int(query.get("size", "1048576")), ctype="application/octet-stream")
    if route == "count":  # reads the body in blocks, as an upload handler would; answers its size
        size, body = 0, environ["wsgi.input"]
        while True:
            block = body.read(65536)
            if not block:
                break
            size += len(block)
        return _text(start_response, str(size).encode())
    if route == "echo":
        data = environ["wsgi.input"].read()
        return _text(start_response, data, ctype="application/octet-stream")
    if route == "chunked":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def parts():
            for word in (b"alpha-", b"beta-", b"gamma"):
                yield word
        return parts()
    if route == "write":
        # The write() callable, then an empty iterable (PEP 3333's legacy path).
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        write(b"by-write")
        return []
    if route == "write-length":
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "16")])
        write(b"written-")
        write(b"by-write")
        return []
    if route == "close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody(query["marker"])
    if route == "file":
        path = query["path"]
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(path)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 32768)
    if route == "file-nolength":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(query["path"], "rb"))
    if route == "boom":
        raise RuntimeError("kaboom-" + query.get("tag", "x"))
    if route == "boom-late":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def failing():
            yield b"partial"
            raise RuntimeError("late-failure")
        return failing()
    if route == "crlf":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Split", "a\r\nSet-Cookie: evil=1")])
        return [b"should not be sent"]
    if route == "crlf-name":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-A\r\nSet-Cookie", "evil=1")])
        return [b"should not be sent"]
    if route == "status-crlf":
        start_response("200 OK\r\nSet-Cookie: evil=1", [("Content-Type", "text/plain")])
        return [b"should not be sent"]
    if route == "short":
        # Declares more than it sends: the server must not leave the client waiting forever
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return iter([b"only-ten-b"])
    if route == "long":
        # Sends more than it declared: the excess must never reach the client as a next response
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return iter([b"12345", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"])
    if route == "utf8-length":
        # The common bug: len() of the str, not of its UTF-8 bytes (issue 14, finding 4)
        text = "héllo wörld\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
        return [text.encode("utf-8") + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"]
    if route == "list-short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"only-ten-b"]
    if route in ("negative-length", "word-length"):
        value = "-5" if route == "negative-length" else "five"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", value)])
        return [b"should not be sent"]
    if route == "vt-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Odd", "a\x0bb")])
        return [b"should not be sent"]
    if route == "long-list":  # the same as a list: the whole-body path
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"12345HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"]
    if route == "short-list":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"only-ten-b"]
    if route == "app-close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"),
                                  ("Connection", "close")])
        return [b"bye!\n"]
    if route == "nocontent":
        start_response("204 No Content", [])
        return []
    if route == "stderr":
        print("app-wrote-to-stderr", file=environ["wsgi.errors"])
        return _text(start_response, "ok")
    if route == "own-server":  # the app's Server and a stale Date of its own
        start_response("200 OK", [("Content-Type", "text/plain"), ("Server", "myapp/1.0"),
                                  ("Date", "Thu, 01 Jan 1970 00:00:00 GMT")])
        return [b"ok"]
    if route in ("str-body", "str-iter"):  # PEP 3333 says bytes: a str is the app's bug
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"] if route == "str-body" else iter(["not", "bytes"])
    if route == "bytes-subclass":  # numpy.bytes_ and the like are bytes (PEP 3333)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [_Bytes(b"subclass")]
    if route == "werkzeug-body":  # what Werkzeug (Flask) reads of the body
        from werkzeug.wrappers import Request

        return _text(start_response, Request(environ).get_data())
    return _text(start_response, "not found\n", status="404 Not Found")


def _validated(environ, start_response):
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = stream.read(length) if length else b""
    # the validator only allows read(size) with one argument
    data = f"method={environ['REQUEST_METHOD']} path={environ['PATH_INFO']} body={body.decode()}\n".encode()
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    assert callable(write)
    return [data]


def _validated_stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"part1 ", b"part2"])


validated = validator(_validated)
validated_stream = validator(_validated_stream)


def api(environ, start_response):
    """Mounted at a prefix: reports SCRIPT_NAME and PATH_INFO."""
    body = f"api script={environ['SCRIPT_NAME']} path={environ['PATH_INFO']}"
    return _text(start_response, body)


def other(environ, start_response):
    body = f"other script={environ['SCRIPT_NAME']} path={environ['PATH_INFO']}"
    return _text(start_response, body)
