"""The :mod:`logging` side of the server's log: its private logger and the handlers ``log_file`` names.

Imported by :class:`netserver.log.ServerLog` when it first needs a logger:
at construction for a file, syslog, a stdlib logger or a callable; for the
default stderr only once the program has imported :mod:`logging` itself
(or asks for the logger).  Until then netserver never imports
:mod:`logging`, whose at-fork hooks (a lock taken before every ``fork()``
and every handler's lock re-made in every child) cost a fork-per-connection
server about a tenth of its speed (docs/performance.md, "Drop-in servers")
and every pool child about 20 pages of its own.  Free of netserver imports:
``log.py`` hands in what it needs.
"""

from __future__ import annotations

import logging
import os
import sys


def private_logger(name: str, notice: int) -> logging.Logger:
    """A logger outside logging's manager (two servers in one process never share handlers);
    ``notice`` is named NOTICE, Net::Server's level 2."""
    if logging.getLevelName(notice) != "NOTICE":
        logging.addLevelName(notice, "NOTICE")
    logger = logging.Logger(name)
    logger.propagate = False
    return logger


def with_format(handler: logging.Handler, line_format: str, time_format: str) -> logging.Handler:
    handler.setFormatter(logging.Formatter(line_format, time_format))
    return handler


class StderrHandler(logging.StreamHandler):
    """StreamHandler that writes to whatever sys.stderr is at emit time."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__/setStream assign; always follow sys.stderr
        pass


class FileHandler(logging.FileHandler):
    """Append-mode file, opened now (before chroot / privilege drop), reopenable.

    ``opener(path)`` returns the descriptor (``log.open_log_file``: no symlink
    followed, issue 14)."""

    def __init__(self, path: str, opener):
        self._opener = opener
        super().__init__(path, mode="a", encoding="utf-8", delay=False)

    def _open(self):
        return self._builtin_open(self._opener(self.baseFilename), "a", encoding=self.encoding,
                                  errors=self.errors)

    def reopen(self) -> None:
        """Open the path again (logrotate moved the file).  If the path cannot be
        opened (e.g. after chroot) the old stream is kept and OSError is raised."""
        self.acquire()
        try:
            new = self._open()
            old, self.stream = self.stream, new
            if old is not None and _same_file(old.fileno(), 2):
                os.dup2(new.fileno(), 2)  # a daemon's stderr follows its log file
            if old is not None:
                try:
                    old.flush()
                finally:
                    old.close()
        finally:
            self.release()


def _same_file(fd_a: int, fd_b: int) -> bool:
    try:
        a, b = os.fstat(fd_a), os.fstat(fd_b)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


_SysLogHandlerClass = None


def syslog_handler_class() -> type:
    """``SysLogHandler`` knowing NOTICE, built on first use: ``logging.handlers`` (with ``pickle``,
    ``queue``…) is imported only by a server that logs to syslog."""
    global _SysLogHandlerClass
    if _SysLogHandlerClass is None:
        import logging.handlers

        class _SysLogHandler(logging.handlers.SysLogHandler):
            """SysLogHandler that knows NOTICE and prefixes 'ident[current pid]: '."""

            priority_map = {**logging.handlers.SysLogHandler.priority_map, "NOTICE": "notice"}

            def __init__(self, address, facility, socktype, ident: str, with_pid: bool):
                self._ident_name = ident
                self._with_pid = with_pid
                super().__init__(address=address, facility=facility, socktype=socktype)

            @property
            def ident(self):  # computed per record: children log their own pid after fork
                if not self._ident_name:
                    return ""
                if self._with_pid:
                    return f"{self._ident_name}[{os.getpid()}]: "
                return f"{self._ident_name}: "

            @ident.setter
            def ident(self, value):
                self._ident_name, self._with_pid = (value or ""), False

        _SysLogHandlerClass = _SysLogHandler
    return _SysLogHandlerClass


class LoggerHandler(logging.Handler):
    """Hands records to a stdlib logger (the 'logging:NAME' target)."""

    def __init__(self, name: str):
        super().__init__()
        self.target = logging.getLogger(name)

    def emit(self, record):
        if self.target.isEnabledFor(record.levelno):
            self.target.handle(record)


class FunctionHandler(logging.Handler):
    """Calls f(level 0-4, message) for each record (Net::Server's log function);
    ``to_level`` maps a logging level to Net::Server's 0-4."""

    def __init__(self, func, to_level):
        super().__init__()
        self.func = func
        self._to_level = to_level

    def emit(self, record):
        try:
            self.func(self._to_level(record.levelno), record.getMessage())
        except Exception:
            self.handleError(record)
