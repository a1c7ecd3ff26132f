"""Apache-style access log lines, from a LogFormat compiled once.

Each ``%`` directive becomes a small function of the request record; a line
is the join of their results.  Supported: ``%% %a %A %b %B %{X}C %D %{X}e
%h %H %{X}i %I %l %m %{X}o %O %p %P %q %r %s %>s %<s %t %{fmt}t %T %u %U %v
%V %X``, with Apache's ``%400a`` / ``%!200a`` status conditions.
"""

from __future__ import annotations

import os
import re
import time

from ..log import open_log_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

__all__ = ["AccessLog", "Record", "compile_format", "named_format", "COMMON", "COMBINED"]

COMMON = '%h %l %u %t "%r" %>s %b'
COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
FORMATS = {"common": COMMON, "combined": COMBINED}  # Apache's names (Net::Server's default is combined)


def named_format(text: str) -> str:
    """``common`` / ``combined`` → that LogFormat; anything else is a LogFormat itself."""
    return FORMATS.get(text.strip().lower(), text)

_DIRECTIVE = re.compile(r"%(!?[0-9,]*)(?:\{([^}]*)\})?([<>]?[a-zA-Z%])")


class Record:
    """What one request leaves for the access log."""

    __slots__ = ("environ", "status", "response_headers", "sent", "head_size", "received", "start",
                 "end", "request_line", "keep_alive")

    def __init__(self) -> None:
        self.environ: Dict[str, Any] = {}
        self.status = 0
        self.response_headers: List[Any] = []
        self.sent = 0
        self.head_size = 0
        self.received = 0
        self.start = 0.0
        self.end = 0.0
        self.request_line = ""
        self.keep_alive = False


def _header_out(name: str) -> Callable[[Record], str]:
    lowered = name.lower()

    def value(record: Record) -> str:
        for key, val in record.response_headers:
            if key.lower() == lowered:
                return val
        return "-"
    return value


def _cookie(name: str) -> Callable[[Record], str]:
    from http.cookies import SimpleCookie  # when a format names a cookie: compiled before serving

    def value(record: Record) -> str:
        raw = record.environ.get("HTTP_COOKIE")
        if not raw:
            return "-"
        jar = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return "-"
        return jar[name].value if name in jar else "-"
    return value


def _time(fmt: Optional[str]) -> Callable[[Record], str]:
    pattern = fmt or "%d/%b/%Y:%H:%M:%S %z"

    def value(record: Record) -> str:
        return "[" + time.strftime(pattern, time.localtime(record.start)) + "]"
    return value


def _dash(text: Optional[str]) -> str:
    return text if text else "-"


def _remote_user(environ: Dict[str, Any]) -> str:
    """``%u``: ``REMOTE_USER`` (set by the app or its middleware), else the user a Basic
    ``Authorization`` header names (Apache's and gunicorn's ``%u``), else ``-``."""
    user = environ.get("REMOTE_USER")
    if not user:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth[:6].lower() == "basic ":
            import base64
            import binascii

            try:
                user = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1").partition(":")[0]
            except (binascii.Error, ValueError):
                user = None
    return _dash(user)


_SIMPLE: Dict[str, Callable[[Record], str]] = {
    "%": lambda r: "%",
    "a": lambda r: r.environ.get("REMOTE_ADDR", "-"),
    "A": lambda r: r.environ.get("netserver.local_addr", "-"),
    "b": lambda r: str(r.sent) if r.sent else "-",
    "B": lambda r: str(r.sent),
    "D": lambda r: str(int((r.end - r.start) * 1_000_000)),
    "f": lambda r: "-",
    "h": lambda r: r.environ.get("REMOTE_HOST") or r.environ.get("REMOTE_ADDR", "-"),
    "H": lambda r: r.environ.get("SERVER_PROTOCOL", "-"),
    "I": lambda r: str(r.received),
    "l": lambda r: "-",
    "m": lambda r: r.environ.get("REQUEST_METHOD", "-"),
    "O": lambda r: str(r.sent + r.head_size),
    "p": lambda r: str(r.environ.get("SERVER_PORT", "-")),
    "P": lambda r: str(os.getpid()),
    "q": lambda r: "?" + r.environ["QUERY_STRING"] if r.environ.get("QUERY_STRING") else "",
    "r": lambda r: r.request_line,
    "s": lambda r: str(r.status),
    "T": lambda r: str(int(r.end - r.start)),
    "u": lambda r: _remote_user(r.environ),
    "U": lambda r: r.environ.get("SCRIPT_NAME", "") + r.environ.get("PATH_INFO", ""),
    "v": lambda r: r.environ.get("SERVER_NAME", "-"),
    "V": lambda r: (r.environ.get("HTTP_HOST") or r.environ.get("SERVER_NAME", "-")),
    "X": lambda r: "+" if r.keep_alive else "-",
}


def _directive(condition: str, argument: Optional[str], letter: str) -> Callable[[Record], str]:
    key = letter.lstrip("<>")
    if key == "i":
        header = "HTTP_" + (argument or "").upper().replace("-", "_")
        special = {"HTTP_CONTENT_TYPE": "CONTENT_TYPE", "HTTP_CONTENT_LENGTH": "CONTENT_LENGTH"}
        header = special.get(header, header)
        func = lambda r: r.environ.get(header) or "-"  # noqa: E731
    elif key == "e":
        name = argument or ""
        func = lambda r: str(r.environ.get(name) or os.environ.get(name) or "-")  # noqa: E731
    elif key == "o":
        func = _header_out(argument or "")
    elif key == "C":
        func = _cookie(argument or "")
    elif key == "t":
        func = _time(argument)
    elif key == "n":
        name = argument or ""
        func = lambda r: str(r.environ.get("netserver.notes", {}).get(name, "-"))  # noqa: E731
    elif key in _SIMPLE:
        func = _SIMPLE[key]
    else:
        raise ValueError(f"unknown access_log_format directive %{letter}")
    if not condition:
        return func
    negate = condition.startswith("!")
    statuses = {int(s) for s in condition.lstrip("!").split(",") if s}

    def conditional(record: Record) -> str:
        return func(record) if (record.status in statuses) != negate else "-"
    return conditional


def _escape(text: str) -> str:
    """Apache's ap_escape_logitem: '"' and '\\' backslashed, anything not printable ASCII as \\xhh."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            raw = ch.encode("latin-1") if ord(ch) < 256 else ch.encode("utf-8")
            out.extend(f"\\x{b:02x}" for b in raw)
    return "".join(out)


def _escaped(func: Callable[[Record], str]) -> Callable[[Record], str]:
    return lambda record: _escape(func(record))


def compile_format(fmt: str) -> Callable[[Record], str]:
    """A function turning a :class:`Record` into one log line; ``ValueError`` on a bad directive."""
    fmt = fmt.replace('\\"', '"')
    parts: List[Any] = []
    position = 0
    for match in _DIRECTIVE.finditer(fmt):
        if match.start() > position:
            parts.append(fmt[position:match.start()])
        parts.append(_escaped(_directive(*match.groups())))
        position = match.end()
    if position < len(fmt):
        parts.append(fmt[position:])
    if "%" in "".join(p for p in parts if isinstance(p, str)):
        raise ValueError(f"malformed access_log_format {fmt!r}")

    def line(record: Record) -> str:
        return "".join(p if isinstance(p, str) else p(record) for p in parts)
    return line


#: access_log_file values naming a standard stream (Net::Server::HTTP's), not a file.
STANDARD_STREAMS = {"STDERR": "stderr", "/DEV/STDERR": "stderr", "STDOUT": "stdout", "/DEV/STDOUT": "stdout"}


class AccessLog:
    """Writes one line per request to a file (opened before privileges are dropped) or stderr,
    or hands it to ``function`` (Net::Server's ``access_log_function``) instead."""

    def __init__(self, target: Optional[str], fmt: str, function: Optional[Callable[[str], Any]] = None):
        self.format = compile_format(named_format(fmt))
        self.target = target
        self.function = function
        self.stream: Any = None
        self.standard = STANDARD_STREAMS.get(target.upper(), None) if target else "stderr"
        if self.standard is None and function is None:
            self.stream = self._open()

    def _open(self) -> Any:
        # O_NOFOLLOW, a single-link regular file: root never follows a path the service user controls.
        assert self.target is not None  # a file is opened only when target names one (not a stream)
        return open(open_log_file(self.target), "a", encoding="utf-8", errors="replace")

    def write(self, record: Record) -> None:
        import sys

        if self.function is not None:
            self.function(self.format(record))
            return
        stream = self.stream or getattr(sys, self.standard or "stderr")  # looked up now: a daemon redirects them
        stream.write(self.format(record) + "\n")
        stream.flush()

    def reopen(self) -> None:
        """Open the path again (after logrotate); if that fails the old file stays in use (OSError)."""
        if self.stream is not None:
            new = self._open()
            old, self.stream = self.stream, new
            old.close()

    def fileno(self) -> Optional[int]:
        return self.stream.fileno() if self.stream is not None else None

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
