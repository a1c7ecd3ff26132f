"""Unit tests for netserver.log (no network: syslog goes to a UNIX socket in a tmp dir)."""

import io
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import logtarget_fixture  # noqa: E402

from netserver import log as nslog  # noqa: E402
from netserver import loghandlers  # noqa: E402
from netserver.log import (  # noqa: E402
    LEVELS,
    NOTICE,
    TIME_FORMAT,
    LogConfigError,
    ServerLog,
    describe_target,
    syslog_facility_names,
    validate_log_file,
)

LINE_RE = re.compile(
    r"^(?P<time>\d{4}/\d{2}/\d{2}-\d{2}:\d{2}:\d{2}) (?P<pid>\d+) "
    r"(?P<level>ERROR|WARNING|NOTICE|INFO|DEBUG) (?P<msg>.*)$")

FIXTURE = "logtarget_fixture"


@pytest.fixture
def logs():
    """ServerLog factory that closes everything it made."""
    made = []

    def make(*args, **kwargs):
        log = ServerLog(*args, **kwargs)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


@pytest.fixture(autouse=True)
def _reset_fixture_module():
    logtarget_fixture.reset()
    yield
    logtarget_fixture.reset()


def read_lines(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


# --------------------------------------------------------------------------- levels

def test_level_constants(capsys):
    assert NOTICE == 25
    ServerLog(2).write(2, "names the level")  # logging is loaded (pytest's): the line builds the logger
    assert logging.getLevelName(NOTICE) == "NOTICE"
    assert LEVELS == {0: logging.ERROR, 1: logging.WARNING, 2: NOTICE,
                      3: logging.INFO, 4: logging.DEBUG}
    assert TIME_FORMAT == "%Y/%m/%d-%H:%M:%S"
    assert issubclass(LogConfigError, ValueError)


@pytest.mark.parametrize("log_level", range(5))
@pytest.mark.parametrize("msg_level", range(5))
def test_threshold_numbers(logs, log_level, msg_level):
    log = logs(log_level, f"{FIXTURE}:function_target")
    expected = msg_level <= log_level
    assert log.enabled(msg_level) is expected
    log.write(msg_level, "m")
    if expected:
        assert logtarget_fixture.calls == [(log_level, msg_level, "m")]
    else:
        assert logtarget_fixture.calls == []


@pytest.mark.parametrize("name,number", [
    ("err", 0), ("warning", 1), ("notice", 2), ("info", 3), ("debug", 4),
    ("ERROR", 0), ("warn", 1), ("2", 2),
])
def test_level_names(logs, name, number):
    log = logs(4, f"{FIXTURE}:function_target")
    log.write(name, "named")
    assert logtarget_fixture.calls == [(4, number, "named")]
    quiet = logs(number - 1 if number else 0, f"{FIXTURE}:function_target")
    assert quiet.enabled(name) is (number == 0)


def test_level_zero_is_never_silenced_and_above_four_is_dropped(logs):
    log = logs(0, f"{FIXTURE}:function_target")
    assert log.enabled(0) and not log.enabled(1)
    log.write(0, "error")
    log.write(1, "warning")
    log.write(-1, "below zero counts as error")
    assert [c[1:] for c in logtarget_fixture.calls] == [(0, "error"), (0, "below zero counts as error")]
    loud = logs(4, f"{FIXTURE}:function_target")
    assert not loud.enabled(5)


def test_unknown_level_name(logs):
    log = logs(2)
    with pytest.raises(ValueError):
        log.write("loud", "x")


@pytest.mark.parametrize("value,expected", [(0, 0), (4, 4), ("3", 3), (9, 4)])
def test_log_level_coercion(logs, value, expected):
    assert logs(value).log_level == expected


@pytest.mark.parametrize("value", [-1, "x", None, True, 1.5j])
def test_log_level_rejected(value):
    with pytest.raises(LogConfigError):
        ServerLog(value)


def test_log_level_change_at_runtime(logs):
    log = logs(2, f"{FIXTURE}:function_target")
    assert not log.logger.isEnabledFor(logging.DEBUG)  # fills logging's per-logger cache
    log.write(4, "dropped")
    log.log_level = 4
    assert log.logger.isEnabledFor(logging.DEBUG)
    log.write(4, "kept")
    assert [c[2] for c in logtarget_fixture.calls] == ["kept"]


def test_multiline_is_one_record_and_percent_is_literal(logs):
    log = logs(2, f"{FIXTURE}:function_target")
    log.write(2, "line one\nline two %s %(x)d")
    assert logtarget_fixture.calls == [(2, 2, "line one\nline two %s %(x)d")]


# --------------------------------------------------------------------------- file target

def test_file_target_format(logs, tmp_path):
    path = tmp_path / "server.log"
    log = logs(4, str(path))
    before = time.time()
    for level in range(5):
        log.write(level, f"message {level}")
    log.write(2, "Binding to TCP port 20203 on host :: with IPv6")
    lines = read_lines(path)  # flushed per record: readable without close()
    assert len(lines) == 6
    names = ["ERROR", "WARNING", "NOTICE", "INFO", "DEBUG", "NOTICE"]
    for line, name in zip(lines, names, strict=True):
        m = LINE_RE.match(line)
        assert m, line
        assert m["pid"] == str(os.getpid())
        assert m["level"] == name
        stamp = time.mktime(time.strptime(m["time"], TIME_FORMAT))
        assert before - 2 <= stamp <= time.time() + 1
    assert LINE_RE.match(lines[-1])["msg"] == "Binding to TCP port 20203 on host :: with IPv6"


def test_file_target_appends(logs, tmp_path):
    path = tmp_path / "server.log"
    path.write_text("existing\n")
    log = logs(2, str(path))
    log.write(2, "new")
    lines = read_lines(path)
    assert lines[0] == "existing" and lines[1].endswith(" NOTICE new")


def test_file_opened_at_construction(logs, tmp_path):
    path = tmp_path / "early.log"
    logs(2, str(path))
    assert path.exists()


def test_reopen_after_rename(logs, tmp_path):
    path = tmp_path / "server.log"
    rotated = tmp_path / "server.log.1"
    log = logs(2, str(path))
    log.write(2, "one")
    os.rename(path, rotated)
    log.write(2, "two")  # still the old (moved) file
    assert not path.exists()
    log.reopen()
    log.write(2, "three")
    assert [LINE_RE.match(x)["msg"] for x in read_lines(rotated)] == ["one", "two"]
    assert [LINE_RE.match(x)["msg"] for x in read_lines(path)] == ["three"]


def test_reopen_failure_keeps_old_file(logs, tmp_path):
    sub = tmp_path / "d"
    sub.mkdir()
    path = sub / "server.log"
    log = logs(2, str(path))
    shutil.move(str(sub), str(tmp_path / "moved"))
    log.reopen()  # the directory is gone: keep writing to the old file
    log.write(2, "still here")
    lines = read_lines(tmp_path / "moved" / "server.log")
    assert "Could not reopen log file" in lines[0]
    assert lines[1].endswith("NOTICE still here")


def test_fileno(logs, tmp_path):
    path = tmp_path / "server.log"
    log = logs(2, str(path))
    fd = log.fileno()
    assert isinstance(fd, int)
    assert os.fstat(fd).st_ino == os.stat(path).st_ino
    assert logs(2).fileno() is None
    assert logs(2, "logging:nstest.fileno").fileno() is None
    log.close()
    assert log.fileno() is None


def test_close_is_idempotent_and_drops_later_writes(logs, tmp_path, capsys):
    path = tmp_path / "server.log"
    log = logs(2, str(path))
    log.write(2, "before")
    log.close()
    log.close()
    log.write(0, "after")
    log.logger.error("direct after close")  # must not reach logging.lastResort
    assert [LINE_RE.match(x)["msg"] for x in read_lines(path)] == ["before"]
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- stderr target

def test_stderr_follows_replaced_sys_stderr(logs, capsys, monkeypatch):
    log = logs(2)  # built while capsys' stderr is installed ...
    log.write(2, "to capsys")
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    m = LINE_RE.match(err.splitlines()[0])
    assert m and m["msg"] == "to capsys" and m["pid"] == str(os.getpid())

    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replacement)  # ... and follows a later replacement
    log.write(1, "to replacement")
    assert LINE_RE.match(replacement.getvalue().strip())["msg"] == "to replacement"
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_a_thread_writing_while_another_builds_the_stderr_logger_loses_no_line(capsys, monkeypatch):
    """With logging loaded, the first stderr line builds the logger.  Held between making the
    logger and adding its handler, the builder must not have published it: another thread writing
    meanwhile would find it bare and lose its NOTICE line (logging's lastResort writes WARNING and
    above, without the format).  It finds none and builds its own."""
    log = ServerLog(2)
    building, written = threading.Event(), threading.Event()
    add_handler = logging.Logger.addHandler

    def held_add_handler(logger, handler):
        if not building.is_set():  # the first build only: the other thread's goes through
            building.set()
            assert written.wait(10), "the other thread never wrote"
        add_handler(logger, handler)

    monkeypatch.setattr(logging.Logger, "addHandler", held_add_handler)
    builder = threading.Thread(target=log.write, args=(2, "from the builder"))
    builder.start()
    try:
        assert building.wait(10), "the first write did not build the logger"
        log.write(2, "from the other thread")
    finally:
        written.set()
        builder.join(10)
    assert not builder.is_alive()
    log.close()
    lines = capsys.readouterr().err.splitlines()
    matches = [LINE_RE.match(line) for line in lines]
    assert all(match and match["level"] == "NOTICE" for match in matches), lines
    assert sorted(match["msg"] for match in matches) == ["from the builder", "from the other thread"]


@pytest.mark.parametrize("value", [None, "", "STDERR", "stderr"])
def test_stderr_spellings(logs, capsys, value):
    log = logs(2, value)
    assert log.description == "stderr"
    log.write(2, "hi")
    assert capsys.readouterr().err.endswith(" NOTICE hi\n")


# --------------------------------------------------------------------------- logging:NAME

def test_logging_target_reaches_stdlib_logger(logs, caplog):
    caplog.set_level(logging.DEBUG, logger="nstest.target")
    log = logs(4, "logging:nstest.target")
    log.write(2, "hello")
    log.write(4, "details")
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [("NOTICE", "hello"), ("DEBUG", "details")]


def test_logging_target_respects_stdlib_level(logs, caplog):
    caplog.set_level(logging.WARNING, logger="nstest.strict")
    log = logs(4, "logging:nstest.strict")
    log.write(3, "info is below the stdlib logger's level")
    log.write(1, "warning passes")
    assert [r.getMessage() for r in caplog.records] == ["warning passes"]


def test_log4perl_maps_to_netserver_logger(logs, caplog):
    caplog.set_level(logging.INFO, logger="netserver")
    log = logs(2, "Log::Log4perl")
    assert log.description == "logger netserver"
    log.write(2, "via log4perl slot")
    assert [r.getMessage() for r in caplog.records] == ["via log4perl slot"]


# --------------------------------------------------------------------------- mod:callable

def test_callable_returning_function(logs):
    log = logs(3, f"{FIXTURE}:function_target")
    assert logtarget_fixture.factory_args == [3]  # called once, with log_level
    log.write(0, "zero")
    log.write(3, "three")
    log.write(4, "four is above log_level")
    assert logtarget_fixture.calls == [(3, 0, "zero"), (3, 3, "three")]
    assert logtarget_fixture.factory_args == [3]


def test_callable_returning_handler(logs):
    log = logs(2, f"{FIXTURE}:handler_target")
    assert logtarget_fixture.factory_args == [2]
    log.write(1, "warn")
    assert [(r.levelno, r.getMessage()) for r in logtarget_fixture.records] == [(logging.WARNING, "warn")]
    assert log.description == f"callable {FIXTURE}:handler_target"


def test_callable_returning_nonsense():
    with pytest.raises(LogConfigError, match="bad_return"):
        ServerLog(2, f"{FIXTURE}:bad_return")


# --------------------------------------------------------------------------- syslog

@pytest.fixture
def syslog_sock():
    """A bound UNIX datagram socket standing in for /dev/log (short path: sun_path limit)."""
    d = tempfile.mkdtemp(prefix="nslog")
    path = os.path.join(d, "log.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    yield s, path
    s.close()
    shutil.rmtree(d, ignore_errors=True)


def test_syslog_unix_datagram(logs, syslog_sock):
    sock, path = syslog_sock
    log = logs(4, "Sys::Syslog", syslog_logsock=path, syslog_ident="myserver",
               syslog_logopt="pid|cons", syslog_facility="daemon")
    assert log.description == f"syslog {path}"
    log.write(2, "Server started")
    data = sock.recv(4096)
    assert data == f"<29>myserver[{os.getpid()}]: Server started\0".encode()
    log.write(0, "boom")
    assert sock.recv(4096).startswith(b"<27>myserver[")  # daemon.err = 3*8+3
    log.write("debug", "dbg")
    assert sock.recv(4096).startswith(b"<31>")


def test_syslog_without_pid_and_other_facility(logs, syslog_sock):
    sock, path = syslog_sock
    log = logs(2, "syslog", syslog_logsock=path, syslog_ident="ident",
               syslog_logopt="ndelay", syslog_facility="LOG_LOCAL0")
    log.write(1, "multi\nline")
    assert sock.recv(4096) == b"<132>ident: multi\nline\0"  # local0(16)*8 + warning(4)


def test_syslog_unreachable_falls_back_to_stderr(logs, tmp_path, capsys):
    missing = str(tmp_path / "no-such.sock")
    log = logs(0, "Sys::Syslog", syslog_logsock=missing)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1  # exactly one warning, shown even at log_level 0
    m = LINE_RE.match(err[0])
    assert m and m["level"] == "WARNING" and "syslog unavailable" in m["msg"] and missing in m["msg"]
    assert log.description.startswith("stderr")
    log.write(0, "error goes to stderr")
    assert capsys.readouterr().err.endswith(" ERROR error goes to stderr\n")


def test_syslog_bad_facility():
    with pytest.raises(LogConfigError, match="bogus"):
        ServerLog(2, "Sys::Syslog", syslog_facility="bogus", syslog_logsock="/nonexistent/x")


def test_syslog_facility_names():
    names = syslog_facility_names()
    assert "daemon" in names and "local7" in names and names == sorted(names)


@pytest.mark.parametrize("logsock,expected", [
    ("udp", (("localhost", 514), socket.SOCK_DGRAM)),
    ("inet", (("localhost", 514), socket.SOCK_DGRAM)),
    ("tcp", (("localhost", 514), socket.SOCK_STREAM)),
    ("native", ("/dev/log", None)),
    ("stream", ("/dev/log", None)),
    ("/run/x.sock", ("/run/x.sock", None)),
    ("loghost:5514", (("loghost", 5514), socket.SOCK_DGRAM)),
    ("[::1]:514", (("::1", 514), socket.SOCK_DGRAM)),
    ("console", (None, None)),
])
def test_syslog_address_mapping(logsock, expected):
    assert nslog._syslog_address(logsock) == expected


@pytest.mark.parametrize("logsock", [None, "unix"])
def test_syslog_default_address(logsock, monkeypatch, tmp_path):
    monkeypatch.setattr(nslog, "_DEV_LOG", str(tmp_path / "absent"))
    assert nslog._syslog_address(logsock) == (("localhost", 514), socket.SOCK_DGRAM)
    present = tmp_path / "present"
    present.touch()
    monkeypatch.setattr(nslog, "_DEV_LOG", str(present))
    assert nslog._syslog_address(logsock) == (str(present), None)


def test_syslog_bad_logsock():
    with pytest.raises(LogConfigError, match="carrier-pigeon"):
        nslog._syslog_address("carrier-pigeon")


def test_syslog_handler_priority_map_not_mutated_globally():
    assert "NOTICE" not in logging.handlers.SysLogHandler.priority_map
    assert loghandlers.syslog_handler_class().priority_map["NOTICE"] == "notice"


# --------------------------------------------------------------------------- validate / describe

@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None),
    ("STDERR", "STDERR"), ("stderr", "STDERR"), ("StdErr", "STDERR"),
    ("Sys::Syslog", "Sys::Syslog"), ("syslog", "Sys::Syslog"),
    ("Log::Log4perl", "logging:netserver"), ("logging:my.app", "logging:my.app"),
    (f"{FIXTURE}:function_target", f"{FIXTURE}:function_target"),
    ("logging.handlers:SysLogHandler", "logging.handlers:SysLogHandler"),
])
def test_validate_log_file_values(value, expected):
    assert validate_log_file(value) == expected


def test_validate_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert validate_log_file("server.log") == str(tmp_path / "server.log")
    assert validate_log_file(str(tmp_path / "x.log")) == str(tmp_path / "x.log")
    assert not (tmp_path / "server.log").exists()  # no side effects


@pytest.mark.parametrize("value,fragment", [
    ("/nonexistent-dir-for-nslog/server.log", "does not exist"),
    ("no_such_module_nslog:func", "no_such_module_nslog"),
    (f"{FIXTURE}:no_such_attribute", "no_such_attribute"),
    (f"{FIXTURE}:not_callable", "not callable"),
    ("Log::Dispatch", "Log::Dispatch"),
    ("logging:", "logger name"),
    (42, "42"),
])
def test_validate_log_file_errors(value, fragment):
    with pytest.raises(LogConfigError, match=re.escape(fragment)):
        validate_log_file(value)


def test_validate_directory_is_rejected(tmp_path):
    with pytest.raises(LogConfigError, match="directory"):
        validate_log_file(str(tmp_path))


def test_serverlog_validates_log_file():
    with pytest.raises(LogConfigError):
        ServerLog(2, "/nonexistent-dir-for-nslog/server.log")


@pytest.mark.parametrize("value,expected", [
    (None, "stderr"), ("STDERR", "stderr"), ("Sys::Syslog", "syslog"),
    ("Log::Log4perl", "logger netserver"), ("logging:app", "logger app"),
    ("pkg.mod:attr", "callable pkg.mod:attr"), ("/var/log/x.log", "file /var/log/x.log"),
])
def test_describe_target(value, expected):
    assert describe_target(value) == expected


def test_describe_target_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert describe_target("x.log") == "file " + str(tmp_path / "x.log")


# --------------------------------------------------------------------------- isolation / fork

def test_two_instances_do_not_share_handlers(logs, tmp_path):
    a = logs(2, str(tmp_path / "a.log"))
    b = logs(2, str(tmp_path / "b.log"))
    assert a.logger is not b.logger
    assert a.logger is not logging.getLogger("netserver")
    assert not a.logger.propagate and not b.logger.propagate
    assert not set(a.logger.handlers) & set(b.logger.handlers)
    a.write(2, "for a")
    b.write(2, "for b")
    assert [LINE_RE.match(x)["msg"] for x in read_lines(tmp_path / "a.log")] == ["for a"]
    assert [LINE_RE.match(x)["msg"] for x in read_lines(tmp_path / "b.log")] == ["for b"]
    a.close()
    b.write(2, "b still open")
    assert len(read_lines(tmp_path / "b.log")) == 2


def _wait_child(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("child did not exit")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_logs_its_own_pid(logs, tmp_path, syslog_sock):
    path = tmp_path / "fork.log"
    log = logs(2, str(path))
    sock, sockpath = syslog_sock
    slog = logs(2, "Sys::Syslog", syslog_logsock=sockpath, syslog_ident="fk")
    log.write(2, "parent before")
    slog.write(2, "parent")
    assert sock.recv(4096) == f"<29>fk[{os.getpid()}]: parent\0".encode()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            log.write(2, "from child")
            slog.write(2, "child")
            code = 0
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    log.write(2, "parent after")
    parsed = [LINE_RE.match(x) for x in read_lines(path)]
    assert [(m["pid"], m["msg"]) for m in parsed] == [
        (str(os.getpid()), "parent before"),
        (str(pid), "from child"),
        (str(os.getpid()), "parent after"),
    ]
    assert sock.recv(4096) == f"<29>fk[{pid}]: child\0".encode()
