"""CGI scripts (RFC 3875) as WSGI applications.

The script gets the full CGI environment and the request body on stdin; its
output is parsed for ``Status:``, ``Location:`` and the other headers (or,
for a non-parsed-header script named ``nph-*``, for its own status line).
A script that dies without a response is a 500, one that outlives
``timeout_cgi`` is killed and answered with 504; either way it is reaped,
so no zombie stays behind.
"""

from __future__ import annotations

import os
import signal
import subprocess

from .errors import HTTPError, REASONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["CGIApp"]

_PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")


class CGIApp:
    """A WSGI application that runs one CGI script per request."""

    def __init__(self, path: str, timeout: float = 60.0, log: Callable[[int, str], None] = lambda level, message: None,
                 on_spawn: Optional[Callable[[int, str], Any]] = None):
        self.on_spawn = on_spawn  # the server's exec_fork_hook(pid, path)
        self.path = os.path.abspath(path)
        self.nph = os.path.basename(path).startswith("nph-")
        self.timeout = timeout
        self.log = log

    def __repr__(self) -> str:
        return f"CGI {self.path}"

    def environment(self, environ: Dict[str, Any]) -> Dict[str, str]:
        env = {key: os.environ[key] for key in _PASS_THROUGH if key in os.environ}
        for key, value in environ.items():
            if isinstance(value, str) and key.isupper():
                env[key] = value
        env.pop("HTTP_PROXY", None)  # httpoxy (CVE-2016-5385): a Proxy header must not become the proxy
        env["GATEWAY_INTERFACE"] = "CGI/1.1"
        env["SCRIPT_FILENAME"] = self.path
        env.setdefault("SERVER_SOFTWARE", "netserver")
        if env.get("PATH_INFO"):
            env["PATH_TRANSLATED"] = os.path.join(os.path.dirname(self.path), env["PATH_INFO"].lstrip("/"))
        return env

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> List[bytes]:
        body = environ["wsgi.input"].read()
        try:
            proc = subprocess.Popen([self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=self.environment(environ),
                                    cwd=os.path.dirname(self.path), start_new_session=True)
        except OSError as exc:
            raise HTTPError(500, f"cannot run CGI script {self.path}: {exc.strerror}") from None
        if self.on_spawn is not None:
            self.on_spawn(proc.pid, self.path)
        try:
            output, errors = proc.communicate(body, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise HTTPError(504, f"CGI script {self.path} ran longer than {self.timeout}s") from None
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
        for line in errors.decode("utf-8", "replace").splitlines():
            self.log(1, f"CGI {os.path.basename(self.path)}: {line}")
        if not output:
            raise HTTPError(500, f"CGI script {self.path} produced no output "
                                 f"(exit status {proc.returncode})")
        status, headers, content = self.parse(output)
        start_response(status, headers)
        return [content]

    def parse(self, output: bytes) -> Tuple[str, List[Tuple[str, str]], bytes]:
        """Split CGI output into status, headers and body."""
        end, sep = _header_end(output)
        if end < 0:
            raise HTTPError(500, f"CGI script {self.path} sent no header section")
        head = output[:end].decode("latin-1").replace("\r\n", "\n").split("\n")
        content = output[end + sep:]
        status = None
        if self.nph:
            first = head.pop(0)
            parts = first.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise HTTPError(500, f"nph script {self.path} sent a bad status line")
            status = f"{parts[1]} {parts[2] if len(parts) > 2 else REASONS.get(int(parts[1]), '')}"
        headers: List[Tuple[str, str]] = []
        location = False
        for line in head:
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip() or name != name.strip():
                raise HTTPError(500, f"CGI script {self.path} sent a malformed header {line!r}")
            value = value.strip()
            lowered = name.lower()
            if lowered == "status":
                status = value
                continue
            if lowered == "location":
                location = True
            headers.append((name, value))
        if status is None:
            status = "302 Found" if location else "200 OK"
        if not status[:3].isdigit():
            raise HTTPError(500, f"CGI script {self.path} sent a bad Status {status!r}")
        if len(status) == 3:
            status += " " + REASONS.get(int(status), "")
        if not location and not any(n.lower() == "content-type" for n, _ in headers) and content:
            raise HTTPError(500, f"CGI script {self.path} sent a body without Content-Type")
        return status, headers, content


def _kill_group(proc: subprocess.Popen) -> None:
    """The script and anything it started (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _header_end(output: bytes) -> Tuple[int, int]:
    crlf = output.find(b"\r\n\r\n")
    lf = output.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, 4
    return lf, 2 if lf >= 0 else 0
