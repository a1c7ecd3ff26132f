"""Helpers for the HTTP tests: start ``netserver HTTP`` processes, talk raw HTTP.

``serve(args, ...)`` starts ``python -m netserver HTTP --port 127.0.0.1:0 ...``
with the test apps importable (see ``wsgiapps.py``); ``Raw`` is a raw-socket
client with a small response reader that frames bodies by Content-Length,
chunked coding or the close, so tests can check exactly what the server put
on the wire.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from typing import List, Optional, Sequence, Tuple

from harness import TIMEOUT, ServerProcess, python_env
from procfs import descendants, proc_state  # noqa: F401 - re-exported for the tests
from waiting import wait_until  # noqa: F401 - re-exported for the tests

HERE = os.path.dirname(os.path.abspath(__file__))


def public_dir(prefix: str = "netserver-http-") -> str:
    """A fresh directory that the unprivileged serving processes can read (0755)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def make_app_dir() -> str:
    """A world-readable directory holding wsgiapps.py (put on the server's PYTHONPATH)."""
    path = public_dir("netserver-apps-")
    shutil.copy(os.path.join(HERE, "wsgiapps.py"), os.path.join(path, "wsgiapps.py"))
    os.chmod(os.path.join(path, "wsgiapps.py"), 0o644)
    return path


def server_env(app_dir: Optional[str] = None) -> dict:
    env = python_env()
    if app_dir:
        env["PYTHONPATH"] = app_dir + os.pathsep + env["PYTHONPATH"]
    env.pop("HTTP_PROXY", None)
    return env


def serve(args: Sequence[str] = (), app_dir: Optional[str] = None, port: str = "127.0.0.1:0",
          cwd: Optional[str] = None, bindings: int = 1) -> ServerProcess:
    """``netserver HTTP --port PORT ARGS`` as a process (use as a context manager).

    Event-driven children are the default; with ``NETSERVER_TEST_HTTP_EVENT=0``
    in the environment every server gets ``--http_event 0``: the whole HTTP suite
    then runs against the classic loop (one connection per child at a time).
    """
    command = ["HTTP", "--port", port, *args]
    if os.environ.get("NETSERVER_TEST_HTTP_EVENT") == "0":
        command += ["--http_event", "0"]
    return ServerProcess(command, env=server_env(app_dir), cwd=cwd, bindings=bindings)


def write_script(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as out:
        out.write(text)
    os.chmod(path, 0o755)
    return path


# -- raw HTTP ----------------------------------------------------------------------


class Response:
    def __init__(self, version: str, status: int, reason: str, headers: List[Tuple[str, str]],
                 body: bytes, raw_head: bytes):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> List[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class Raw:
    """A raw TCP connection to the server with a buffered response reader."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Raw":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            if not self._fill():
                raise EOFError(f"EOF while reading a line; buffered {self.buffer!r}")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError(f"EOF after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def response(self, method: str = "GET") -> Response:
        """Read one response (interim 1xx responses are returned as such)."""
        head = b""
        line = self.readline()
        head += line
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        headers: List[Tuple[str, str]] = []
        while True:
            line = self.readline()
            head += line
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        status = int(code)
        response = Response(version, status, reason, headers, b"", head)
        lowered = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status < 200 or status in (204, 304):
            return response
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.readline() not in (b"\r\n", b"\n"):
                        pass
                    break
                body += self.read_exact(size)
                assert self.read_exact(2) == b"\r\n"
            response.body = body
        elif "content-length" in lowered:
            response.body = self.read_exact(int(lowered["content-length"]))
        else:
            response.body = self.read_to_eof()
        return response

    def closed(self, timeout: float = 3.0) -> bool:
        """True if the server closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buffer += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def request(port: int, data: bytes, method: str = "GET", timeout: float = TIMEOUT) -> Response:
    """Send ``data`` on a new connection and read one response."""
    with Raw(port, timeout=timeout) as conn:
        conn.send(data)
        return conn.response(method)


def refused(port: int, data: bytes, timeout: float = TIMEOUT) -> Tuple[Response, bool]:
    """Send a request the server should refuse: (its response, whether it then closed)."""
    with Raw(port, timeout=timeout) as conn:
        conn.send(data)
        response = conn.response()
        return response, conn.closed()


def get(port: int, path: str = "/", headers: str = "", host: str = "t") -> Response:
    data = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n".encode("latin-1")
    return request(port, data)


def log_mark(proc: ServerProcess) -> int:
    """A position in the server's log, for :func:`log_since`."""
    return len(proc.log_text().splitlines())


def log_since(proc: ServerProcess, mark: int) -> str:
    """What the server logged after ``log_mark`` returned ``mark``."""
    return "\n".join(proc.log_text().splitlines()[mark:])


def curl(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5)



