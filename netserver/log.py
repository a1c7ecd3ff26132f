"""Net::Server's logging options (log_level, log_file, syslog_*) on top of stdlib ``logging``.

Each server owns a private, unregistered :class:`logging.Logger`, built when
first needed; this module only builds its handler from ``log_file`` (stderr,
a file, syslog, a stdlib logger, or a user callable) and maps Net::Server's
0-4 levels onto logging's.  The default stderr target writes its lines
itself until the process has imported :mod:`logging` (see :class:`ServerLog`).
The logging side (the logger, the handler classes) is in
:mod:`netserver.loghandlers`, imported when a logger is first needed; apart
from it this module imports nothing of netserver, so every other module can
use it.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import socket
import stat
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Protocol

    class LogOptions(Protocol):
        """What :meth:`ServerLog.from_config` reads of a server's options (``netserver.options.Config``
        has them all: declared here so this module needs no netserver import)."""

        @property
        def log_file(self) -> Optional[str]: ...
        @property
        def log_level(self) -> int: ...
        @property
        def syslog_logsock(self) -> Optional[str]: ...
        @property
        def syslog_ident(self) -> str: ...
        @property
        def syslog_logopt(self) -> str: ...
        @property
        def syslog_facility(self) -> str: ...

        def get(self, name: str, default: Any = None) -> Any: ...

__all__ = [
    "NOTICE",
    "LEVELS",
    "TIME_FORMAT",
    "LogConfigError",
    "ServerLog",
    "describe_target",
    "open_log_file",
    "syslog_facility_names",
    "validate_log_file",
]

NOTICE = 25  # between logging.INFO and logging.WARNING; named when logging is loaded

#: Net::Server level -> logging level (0=>err, 1=>warning, 2=>notice, 3=>info, 4=>debug), as
#: logging's own numbers: this module does not import logging (see ServerLog).
LEVELS = {0: 40, 1: 30, 2: NOTICE, 3: 20, 4: 10}

#: Net::Server's timestamp format.
TIME_FORMAT = "%Y/%m/%d-%H:%M:%S"

LINE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(message)s"

# logging's names for LEVELS' numbers (NOTICE is named by loghandlers.private_logger), for the
# stderr lines written without logging (ServerLog._write_stderr).
_LEVEL_TEXT = ("ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")

# Level names accepted by ServerLog.write/enabled (syslog spellings plus aliases).
_LEVEL_NAMES = {
    "emerg": 0, "alert": 0, "crit": 0, "err": 0, "error": 0,
    "warning": 1, "warn": 1,
    "notice": 2,
    "info": 3,
    "debug": 4,
}

_CALLABLE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_SYSLOG_PORT = 514  # logging.handlers.SYSLOG_UDP_PORT (logging.handlers is imported only for syslog)
_DEV_LOG = "/dev/log"


class LogConfigError(ValueError):
    """A log_file / log_level / syslog_* / log_config / log_function value that cannot be used."""

    def __init__(self, message: str, option: str = "log_file"):
        super().__init__(message)
        self.option = option


# --------------------------------------------------------------------------- config

def _classify(value) -> tuple[str, str | None]:
    """(kind, normalised value) without side effects other than abspath.

    kind is one of 'stderr', 'syslog', 'logger', 'callable', 'file'.
    """
    if value is None:
        return "stderr", None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        raise LogConfigError(f"log_file must be a string, not {type(value).__name__}: {value!r}")
    if value == "":
        return "stderr", None
    if "\0" in value:
        raise LogConfigError(f"log_file contains a NUL byte: {value!r}")
    lower = value.lower()
    if lower == "stderr":
        return "stderr", "STDERR"
    if lower in ("sys::syslog", "syslog"):
        return "syslog", "Sys::Syslog"
    if lower == "log::log4perl":
        return "logger", "logging:netserver"
    if value.startswith("logging:"):
        name = value[len("logging:"):]
        if not name:
            raise LogConfigError(f"log_file {value!r}: missing logger name after 'logging:'")
        return "logger", value
    if _CALLABLE_RE.match(value):
        return "callable", value
    if "::" in value and "/" not in value:
        raise LogConfigError(
            f"log_file {value!r} looks like a Perl log module; only 'Sys::Syslog' and "
            f"'Log::Log4perl' are known (use 'pkg.module:callable' for your own)")
    return "file", os.path.abspath(value)


def _resolve_callable(spec: str):
    modname, attr = spec.split(":", 1)
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        raise LogConfigError(f"log_file {spec!r}: cannot import module {modname!r}: {exc}") from exc
    except Exception as exc:  # the module exists but blew up while importing
        raise LogConfigError(f"log_file {spec!r}: importing {modname!r} failed: {exc!r}") from exc
    try:
        func = getattr(module, attr)
    except AttributeError:
        raise LogConfigError(f"log_file {spec!r}: module {modname!r} has no attribute {attr!r}") from None
    if not callable(func):
        raise LogConfigError(f"log_file {spec!r}: {modname}.{attr} is not callable")
    return func


def validate_log_file(value) -> str | None:
    """Check a log_file value at configuration time and return its normal form.

    None/'' -> None (stderr); 'STDERR' (any case) -> 'STDERR';
    'Sys::Syslog'/'syslog' -> 'Sys::Syslog'; 'Log::Log4perl' -> 'logging:netserver';
    'logging:NAME' -> kept; 'pkg.mod:callable' -> kept once importable;
    anything else is a file path -> made absolute (the server may chdir/chroot
    later); its directory must exist.  Raises LogConfigError naming the value.
    """
    kind, norm = _classify(value)
    if norm is None:  # stderr, by default
        return None
    if kind == "callable":
        _resolve_callable(norm)
    elif kind == "file":
        directory = os.path.dirname(norm)
        if not os.path.isdir(directory):
            raise LogConfigError(f"log_file {value!r}: directory {directory!r} does not exist")
        if os.path.isdir(norm):
            raise LogConfigError(f"log_file {value!r} is a directory")
        if os.path.islink(norm) and not _kernel_path(norm):
            raise LogConfigError(f"log_file {value!r} is a symbolic link; name the file itself "
                                 f"(the server never follows a link to its log)")
    return norm


def _kernel_path(path: str) -> bool:
    """Paths under /dev and /proc: device nodes and the kernel's own links (``/dev/stderr``),
    which no service user can plant or replace; they are opened as they are."""
    return os.path.abspath(path).startswith(("/dev/", "/proc/"))


def open_log_file(path: str, mode: int = 0o644) -> int:
    """Open ``path`` for appending without following a symlink; return the descriptor.

    Root opens log files that may sit in a directory the service user can
    write (issue 14), so: a missing file is created with ``O_EXCL``; an
    existing one is opened with ``O_NOFOLLOW`` and must be a regular file
    with a single link (a hard link to a file elsewhere is refused).  Paths
    under /dev and /proc (``/dev/stderr``) are opened as they are.  Raises
    OSError saying why.
    """
    if _kernel_path(path):  # /dev/stderr, /proc/self/fd/1: the kernel's links, no user's
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY)
    base = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY
    for _ in range(10):
        try:
            fd = os.open(path, base | os.O_CREAT | os.O_EXCL, mode)
            return fd
        except FileExistsError:
            pass
        try:
            fd = os.open(path, base | os.O_NONBLOCK)  # never block on a planted FIFO
        except FileNotFoundError:
            continue  # removed meanwhile: create it
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, f"{path} is a symbolic link; not following it") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"has {st.st_nlink} hard links"
            raise OSError(errno.EPERM, f"{path} {what}; not writing to it")
        os.set_blocking(fd, True)
        return fd
    raise OSError(errno.EAGAIN, f"{path} keeps changing; not opening it")


# --------------------------------------------------------------------------- log_config

def read_log_config(path: str):
    """Read a ``log_config`` file: a ``logging.config`` dict (``.json``; ``.toml`` with tomllib)
    or an ini file for ``fileConfig``.  Returns the dict, or None for an ini file; raises
    LogConfigError saying what is wrong."""
    lower = path.lower()
    try:
        if lower.endswith(".json"):
            import json

            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        elif lower.endswith(".toml"):
            try:
                import tomllib
            except ImportError:
                raise LogConfigError("TOML needs Python 3.11 (tomllib); use a .json or .ini file",
                                     "log_config") from None
            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            import configparser

            parser = configparser.ConfigParser()
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
            missing = [s for s in ("loggers", "handlers", "formatters") if not parser.has_section(s)]
            if missing:
                raise LogConfigError(f"not a logging ini file: no [{missing[0]}] section", "log_config")
            return None
    except OSError as exc:
        raise LogConfigError(f"cannot read: {exc.strerror}", "log_config") from None
    except LogConfigError:
        raise
    except Exception as exc:  # JSON / TOML / ini syntax
        raise LogConfigError(f"cannot parse: {exc}", "log_config") from None
    if not isinstance(data, dict) or "version" not in data:
        raise LogConfigError("a logging.config dict needs a 'version' key (version = 1)", "log_config")
    return data


def apply_log_config(path: str) -> None:
    """Configure stdlib logging from ``path`` (existing loggers stay enabled unless it says otherwise)."""
    import logging.config

    data = read_log_config(path)
    try:
        if data is None:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        else:
            logging.config.dictConfig(dict({"disable_existing_loggers": False}, **data))
    except Exception as exc:
        raise LogConfigError(f"cannot apply: {exc}", "log_config") from None


def resolve_log_function(value, owner=None):
    """``log_function``: a callable, ``module:callable``, or the name of a method of ``owner``."""
    if value is None or callable(value):
        return value
    text = str(value).strip()
    if ":" in text:
        try:
            func = _resolve_callable(text)
        except LogConfigError as exc:
            raise LogConfigError(str(exc).replace("log_file ", "", 1), "log_function") from None
    else:
        func = getattr(owner, text, None)
        if func is None:
            raise LogConfigError(f"the server has no method {text!r}", "log_function")
    if not callable(func):
        raise LogConfigError(f"{text} is not callable", "log_function")
    return func


def describe_target(log_file: str | None) -> str:
    """Human description of a log_file value: 'stderr', 'syslog', 'logger NAME',
    'callable mod:attr' or 'file /abs/path'.  Does not import anything."""
    kind, norm = _classify(log_file)
    if kind == "stderr" or norm is None:  # None: stderr by default
        return "stderr"
    if kind == "syslog":
        return "syslog"
    if kind == "logger":
        return "logger " + norm[len("logging:"):]
    if kind == "callable":
        return "callable " + norm
    return "file " + norm


def syslog_facility_names() -> list[str]:
    """The facility names accepted by syslog_facility (e.g. 'daemon', 'local0')."""
    import logging.handlers

    return sorted(logging.handlers.SysLogHandler.facility_names)


def _syslog_facility(name) -> int:
    key = str(name).strip().lower()
    if key.startswith("log_"):  # Sys::Syslog also accepts LOG_DAEMON
        key = key[4:]
    import logging.handlers

    try:
        return logging.handlers.SysLogHandler.facility_names[key]
    except KeyError:
        raise LogConfigError(
            f"syslog_facility {name!r} is not a syslog facility "
            f"(one of: {', '.join(syslog_facility_names())})") from None


def _syslog_address(logsock):
    """syslog_logsock -> (address, socktype) for SysLogHandler; address None = console."""
    sock = None if logsock is None else str(logsock).strip()
    key = (sock or "unix").lower()
    udp, tcp = socket.SOCK_DGRAM, socket.SOCK_STREAM
    if key == "unix":
        if os.path.exists(_DEV_LOG):
            return _DEV_LOG, None
        return ("localhost", _SYSLOG_PORT), udp
    if key in ("udp", "inet"):
        return ("localhost", _SYSLOG_PORT), udp
    if key == "tcp":
        return ("localhost", _SYSLOG_PORT), tcp
    if key in ("native", "stream"):
        return _DEV_LOG, None
    if key == "console":
        return None, None
    if "/" in sock:
        return sock, None
    host, sep, port = sock.rpartition(":")
    if sep and host and port.isdigit():
        return (host.strip("[]"), int(port)), udp
    raise LogConfigError(
        f"syslog_logsock {logsock!r}: expected unix, native, stream, udp, inet, tcp, "
        f"console, a socket path or host:port")


def _probe_unix_socket(path: str) -> int:
    """Return the socket type that connects to the syslog socket at path, or raise OSError."""
    err: Optional[OSError] = None
    for socktype in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_UNIX, socktype)
        try:
            s.connect(path)
            return socktype
        except OSError as exc:
            err = exc
        finally:
            s.close()
    assert err is not None  # both types were tried and both failed
    raise err


def _net_server_level(levelno: int) -> int:
    for level in range(5):
        if levelno >= LEVELS[level]:
            return level
    return 4


# --------------------------------------------------------------------------- ServerLog

def _coerce_log_level(value) -> int:
    if isinstance(value, bool):
        raise LogConfigError(f"log_level must be 0-4, not {value!r}")
    try:
        level = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise LogConfigError(f"log_level must be 0-4, not {value!r}") from None
    if level < 0:
        raise LogConfigError(f"log_level must be 0-4, not {value!r}")
    return min(level, 4)  # Net::Server clamps anything above 4 to 4


def _write_stderr(level_text: str, message: str) -> None:
    """One line as the logger would write it (LINE_FORMAT, TIME_FORMAT, local time) to whatever
    ``sys.stderr`` is now; a failure to write loses the line, never the caller."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(f"{time.strftime(TIME_FORMAT)} {os.getpid()} {level_text} {message}\n")
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
    except Exception:
        pass


class ServerLog:
    """The server's log: a private logging.Logger once built (not registered in
    logging's manager, propagate=False, so two servers in one process never
    share handlers) plus Net::Server's level threshold.

    log_level 0 means errors only: level-0 messages are always written (unlike
    Perl, where 0 switches logging off).  Levels above 4 are clamped to 4.

    The logger is built when first needed: at once for a file (opened before
    chroot and the privilege drop), syslog, a stdlib logger or a callable.
    The default stderr target writes its lines itself, in the same format,
    for as long as nothing else in the process has imported :mod:`logging`
    and nobody asked for the logger: then no fork pays for logging's at-fork
    hooks (netserver.loghandlers says what they cost).
    """

    def __init__(self, log_level: int = 2, log_file: str | None = None, *, syslog_logsock=None,
                 syslog_ident="netserver", syslog_logopt="pid", syslog_facility="daemon",
                 name="netserver"):
        self._name = name
        self._logger: Any = None
        self._handler: Any = None
        self._closed = False
        self._pending_warning: Optional[str] = None
        self.log_level = log_level
        self.target = validate_log_file(log_file)
        kind, norm = _classify(self.target)
        self.kind = kind
        self._norm = norm
        self._syslog = (syslog_logsock, syslog_ident, syslog_logopt, syslog_facility)
        self.description = describe_target(self.target)
        if kind != "stderr":  # the default: built once logging is loaded (write) or asked for
            self._build()

    def _build(self) -> Any:
        """Make the logger and its handler (importing logging); return the logger."""
        from . import loghandlers

        logger = loghandlers.private_logger(self._name, NOTICE)
        self._apply_level(logger)
        if self._closed:
            logger.addHandler(loghandlers.logging.NullHandler())
            self._logger = logger
            return logger
        kind, norm = self.kind, self._norm
        if kind == "stderr" or norm is None:  # (norm is None only for stderr)
            handler = self._formatted(loghandlers.StderrHandler())
        elif kind == "file":
            try:
                handler = self._formatted(loghandlers.FileHandler(norm, open_log_file))
            except OSError as exc:
                raise LogConfigError(f"log_file {norm}: {exc.strerror or exc}") from None
        elif kind == "logger":
            handler = loghandlers.LoggerHandler(norm[len("logging:"):])
        elif kind == "callable":
            handler = self._callable_handler(norm)
        else:
            handler = self._syslog_handler(*self._syslog)
        self._handler = handler
        logger.addHandler(handler)
        self._logger = logger  # published only now: another thread's write() must not find it bare
        if self._pending_warning:
            # Always shown, whatever log_level: the operator asked for syslog and is not getting it.
            logger.handle(logger.makeRecord(
                logger.name, LEVELS[1], __file__, 0, self._pending_warning, (), None))
            self._pending_warning = None
        return logger

    @property
    def logger(self) -> Any:
        """The private :class:`logging.Logger` (built now if it was not yet)."""
        return self._logger or self._build()

    @property
    def handler(self) -> Any:
        """The logging handler ``log_file`` names."""
        if self._logger is None:
            self._build()
        return self._handler

    # -- construction helpers
    @staticmethod
    def _formatted(handler: Any) -> Any:
        from .loghandlers import with_format

        return with_format(handler, LINE_FORMAT, TIME_FORMAT)

    def _callable_handler(self, spec: str) -> Any:
        from .loghandlers import FunctionHandler, logging

        factory = _resolve_callable(spec)
        result = factory(self.log_level)
        if isinstance(result, logging.Handler):
            return result
        if callable(result):
            return FunctionHandler(result, _net_server_level)
        raise LogConfigError(
            f"log_file {spec!r}: returned {type(result).__name__}, expected a logging.Handler "
            f"or a function f(level, message)")

    def _syslog_handler(self, logsock, ident, logopt, facility) -> Any:
        from .loghandlers import StderrHandler, logging, syslog_handler_class

        fac = _syslog_facility(facility)
        address, socktype = _syslog_address(logsock)
        if address is None:  # 'console'
            self.description = "stderr (syslog_logsock console)"
            return self._formatted(StderrHandler())
        with_pid = "pid" in re.split(r"[\s|,]+", str(logopt or "").lower())
        where = address if isinstance(address, str) else "%s:%s" % address
        try:
            if isinstance(address, str):
                socktype = _probe_unix_socket(address)
            handler = syslog_handler_class()(address, fac, socktype, str(ident or ""), with_pid)
        except OSError as exc:
            self._pending_warning = f"syslog unavailable at {where} ({exc}); logging to stderr instead"
            self.description = "stderr (syslog unavailable)"
            return self._formatted(StderrHandler())
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.description = f"syslog {where}"
        return handler

    # -- level
    @property
    def log_level(self) -> int:
        return self._log_level

    @log_level.setter
    def log_level(self, value) -> None:
        self._log_level = _coerce_log_level(value)
        if self._logger is not None:
            self._apply_level()

    def _apply_level(self, logger: Any = None) -> None:
        logger = logger or self._logger
        logger.setLevel(LEVELS[self._log_level])
        # The logger is not in logging's manager, so setLevel cannot clear its cache.
        cache = getattr(logger, "_cache", None)
        if cache is not None:
            cache.clear()

    @staticmethod
    def _level_number(level) -> int:
        if isinstance(level, str):
            key = level.strip().lower()
            if key.isdigit():
                return int(key)
            try:
                return _LEVEL_NAMES[key]
            except KeyError:
                raise ValueError(f"unknown log level {level!r}") from None
        return int(level)

    @property
    def path(self) -> "str | None":
        """The log file's path when the target is a file, else None."""
        return self.target if self.kind == "file" else None

    @classmethod
    def from_config(cls, config: LogOptions, owner: object = None) -> "ServerLog":
        """The log described by a server config's logging options.

        ``log_config`` configures stdlib logging first, and then (unless
        ``log_file`` says otherwise) the server logs through the
        ``netserver`` logger, so its lines go where the application's do.
        ``log_function`` (a callable, ``module:callable`` or a method name
        of ``owner``) takes every line instead of ``log_file``.
        """
        log_file = config.log_file
        log_config = config.get("log_config")
        if log_config:
            apply_log_config(log_config)
            if log_file is None:
                log_file = "logging:netserver"
        function = resolve_log_function(config.get("log_function"), owner)
        if function is not None:
            log_file = None
        log = cls(
            config.log_level, log_file,
            syslog_logsock=config.syslog_logsock, syslog_ident=config.syslog_ident,
            syslog_logopt=config.syslog_logopt, syslog_facility=config.syslog_facility,
        )
        if function is not None:
            log.use_function(function)
        return log

    def use_function(self, func) -> None:
        """Send every line to ``func(level 0-4, message)`` instead of the current target."""
        from .loghandlers import FunctionHandler

        logger = self.logger
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        self._handler = FunctionHandler(func, _net_server_level)
        logger.addHandler(self._handler)
        self.kind, self.target, self._norm = "callable", None, None
        self.description = f"function {getattr(func, '__qualname__', func)!r}"

    def enabled(self, level) -> bool:
        """True if a message at Net::Server level (0-4 or name) would be written."""
        number = self._level_number(level)
        return number <= 0 or number <= self._log_level

    # -- output
    def write(self, level, message) -> None:
        """Log message at Net::Server level (0-4 or 'err'/'warning'/'notice'/'info'/'debug').
        A multi-line message stays one record; '%' in it is not interpreted."""
        number = self._level_number(level)
        if self._closed or not (number <= 0 or number <= self._log_level):
            return
        text, number = str(message), min(max(number, 0), 4)
        logger = self._logger
        if logger is None:
            if self.kind != "stderr":
                logger = self._build()
            elif "logging" in sys.modules:
                try:
                    logger = self._build()
                except ImportError:  # after a chroot or privilege drop netserver's files may be out of reach
                    pass
            if logger is None:
                _write_stderr(_LEVEL_TEXT[number], text)
                return
        logger.handle(logger.makeRecord(logger.name, LEVELS[number], "(netserver)", 0, text, (), None))

    def reopen(self) -> None:
        """Reopen a log file (after logrotate moved it; on USR1/HUP).  No-op for other
        targets.  If the path cannot be opened, the old file stays in use and the
        failure is logged to it."""
        if self._logger is None:  # stderr, nothing written yet: nothing to reopen
            return
        for handler in list(self._logger.handlers):
            reopen = getattr(handler, "reopen", None)
            if reopen is None:
                continue
            try:
                reopen()
            except OSError as exc:
                self.write(0, f"Could not reopen log file {getattr(handler, 'baseFilename', '?')}: {exc}")

    def preload_names(self) -> tuple:
        """Modules to import before a chroot or privilege drop: the logging side, if a logger exists
        or may be built (logging is loaded); none while the stderr lines are written without it."""
        return ("netserver.loghandlers",) if self._logger is not None or "logging" in sys.modules else ()

    def close(self) -> None:
        """Close the handlers.  Later writes are dropped.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        logger = self._logger
        if logger is None:  # never built: nothing opened
            return
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            try:
                handler.close()
            except Exception:
                pass
        from .loghandlers import logging

        # Direct self.logger calls must not fall back to logging.lastResort.
        logger.addHandler(logging.NullHandler())

    def fileno(self) -> int | None:
        """The log file's descriptor when the target is a file, else None."""
        if self._closed or self.kind != "file" or self._logger is None:
            return None
        stream = getattr(self._handler, "stream", None)
        if stream is None:
            return None
        try:
            return stream.fileno()
        except (OSError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"<ServerLog {self.description} log_level={self._log_level}>"
