"""HUP hand-over (netserver.restart): the environment encoding, the check run, and a real exec."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap

import pytest

from forked import run_forked
from netserver import restart
from netserver.restart import decode_sockets, encode_sockets

# -- BOUND_SOCKETS encoding -------------------------------------------------------------------------

@pytest.mark.parametrize("pairs, raw", [
    ([], ""),
    ([(3, "127.0.0.1|20203|tcp|4")], "3|127.0.0.1|20203|tcp|4"),
    ([(3, "a"), (4, "b")], "3|a;4|b"),
    ([(5, "/tmp/a;b.sock|unix"), (6, "k")], "5|/tmp/a;b.sock|unix;6|k"),
    ([(7, "[::]|80|tcp|6"), (8, "[::]|80|tcp|6")], "7|[::]|80|tcp|6;8|[::]|80|tcp|6"),
])
def test_sockets_round_trip(pairs, raw):
    assert encode_sockets(pairs) == raw
    decoded = decode_sockets(raw)
    assert sorted((fd, key) for key, fds in decoded.items() for fd in fds) == sorted(pairs)


@pytest.mark.parametrize("raw, expected", [
    ("", {}),
    ("x|key", {}),  # not a descriptor: ignored
    ("3|", {"": [3]}),
    ("3|a;junk;4|b", {"a;junk": [3], "b": [4]}),  # ';' not followed by "<fd>|" belongs to the key
])
def test_decode_sockets_edge_cases(raw, expected):
    assert decode_sockets(raw) == expected


def test_take_inherited_reads_and_removes_the_environment(monkeypatch):
    monkeypatch.setenv(restart.SOCKETS_ENV, "3|a;4|b;5|a")
    monkeypatch.setenv(restart.CHILDREN_ENV, "101,102,,x")
    monkeypatch.setenv(restart.STATE_ENV, json.dumps({"max_servers": 7}))
    assert restart.restarting()
    sockets, children, state = restart.take_inherited()
    assert sockets == {"a": [3, 5], "b": [4]}
    assert children == [101, 102]
    assert state == {"max_servers": 7}
    for name in (restart.SOCKETS_ENV, restart.CHILDREN_ENV, restart.STATE_ENV):
        assert name not in os.environ
    assert not restart.restarting()


def test_take_inherited_when_not_restarting(monkeypatch):
    for name in (restart.SOCKETS_ENV, restart.CHILDREN_ENV, restart.STATE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert restart.take_inherited() == ({}, [], {})


def test_take_inherited_survives_a_bad_state(monkeypatch):
    monkeypatch.setenv(restart.STATE_ENV, "{not json")
    assert restart.take_inherited()[2] == {}


def test_take_pid_file_fd(monkeypatch, tmp_path):
    fd = os.open(tmp_path / "pid", os.O_RDWR | os.O_CREAT)
    try:
        os.set_inheritable(fd, True)
        monkeypatch.setenv(restart.PID_FILE_ENV, str(fd))
        assert restart.take_pid_file_fd() == fd
        assert not os.get_inheritable(fd), "close-on-exec again once adopted"
        assert restart.PID_FILE_ENV not in os.environ
    finally:
        os.close(fd)
    assert restart.take_pid_file_fd() is None  # nothing handed over
    monkeypatch.setenv(restart.PID_FILE_ENV, str(fd))  # closed now
    assert restart.take_pid_file_fd() is None
    monkeypatch.setenv(restart.PID_FILE_ENV, "garbage")
    assert restart.take_pid_file_fd() is None


def test_checking_config(monkeypatch):
    monkeypatch.delenv(restart.CHECK_ENV, raising=False)
    assert not restart.checking_config()
    monkeypatch.setenv(restart.CHECK_ENV, "1")
    assert restart.checking_config()


# -- the check run --------------------------------------------------------------------------------

def command(monkeypatch, source: str) -> None:
    """Make ``source`` the command line that the check (and exec) runs."""
    monkeypatch.setattr(restart, "_ORIGINAL_ARGV", [sys.executable, "-c", textwrap.dedent(source)])


def test_check_new_image_passes(monkeypatch):
    command(monkeypatch, "import os, sys; sys.exit(0 if os.environ.get('NETSERVER_CHECK_CONFIG') == '1' else 9)")
    assert restart.check_new_image() == (True, "")


def test_check_new_image_hands_nothing_over(monkeypatch):
    """The check image must not adopt the running server's sockets, children or pid file."""
    for name in (restart.SOCKETS_ENV, restart.CHILDREN_ENV, restart.STATE_ENV, restart.PID_FILE_ENV):
        monkeypatch.setenv(name, "3")
    command(monkeypatch, """
        import os, sys
        told = ("NETSERVER_CHECK_CONFIG", "NETSERVER_CHECK_HELD")  # check mode, and what not to bind
        leaked = [n for n in os.environ if n.startswith("NETSERVER_") and n not in told]
        sys.exit(f"leaked: {leaked}" if leaked else 0)
    """)
    assert restart.check_new_image() == (True, "")


def test_check_new_image_reports_the_last_error_line(monkeypatch):
    command(monkeypatch, """
        import sys
        sys.stderr.write("port: '70000' from command line: must be 0..65535\\n")
        sys.stderr.write("Try 'netserver --help' for more information.\\n\\n")
        sys.exit(2)
    """)
    assert restart.check_new_image() == (False, "port: '70000' from command line: must be 0..65535")


def test_check_new_image_silent_failure_gives_the_status(monkeypatch):
    command(monkeypatch, "import sys; sys.exit(3)")
    assert restart.check_new_image() == (False, "exit status 3")


def test_check_new_image_timeout(monkeypatch):
    command(monkeypatch, "import time; time.sleep(30)")
    ok, why = restart.check_new_image(timeout=0.3)
    assert not ok and "timed out" in why


def test_check_new_image_cannot_start(monkeypatch, tmp_path):
    monkeypatch.setattr(restart, "_START_DIRECTORY", str(tmp_path / "gone"))
    ok, why = restart.check_new_image()
    assert not ok and "gone" in why


# -- the exec itself ----------------------------------------------------------------------------------

NEW_IMAGE = """
    import json, os, signal, sys
    report = int(sys.argv[1])
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    out = {
        "sockets": os.environ.get("NETSERVER_BOUND_SOCKETS"),
        "children": os.environ.get("NETSERVER_CHILDREN"),
        "state": os.environ.get("NETSERVER_HUP_STATE"),
        "pid_file_fd": os.environ.get("NETSERVER_PID_FILE_FD"),
        "fds_open": [fd for fd in map(int, sys.argv[2:]) if os.path.exists(f"/proc/self/fd/{fd}")],
        "blocked": sorted(int(s) for s in blocked),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
    }
    os.write(report, json.dumps(out).encode())
"""


def _exec_in_a_child(tmp_path):
    """Runs in a forked child: exec a new image the way a HUP does; return what it saw."""
    import socket
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, True)
    listeners = [socket.socket() for _ in range(2)]
    pid_fd = os.open(tmp_path / "pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    fds = [s.fileno() for s in listeners]
    restart._ORIGINAL_ARGV = [sys.executable, "-c", textwrap.dedent(NEW_IMAGE), str(write_fd)] + \
        [str(fd) for fd in fds + [pid_fd]]
    os.chdir(tmp_path)  # the new image starts where the first one did, not here
    pid = os.fork()
    if pid == 0:
        try:
            restart.exec_self([(fds[0], "127.0.0.1|1|tcp|4"), (fds[1], "/x;y|unix")], [11, 12],
                              {"max_servers": 3}, pid_fd)
        finally:
            os._exit(71)  # exec failed
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    status = os.waitpid(pid, 0)[1]
    return pid, fds, pid_fd, data.decode(), status


def test_exec_self_hands_over_sockets_children_state_and_pid_file(tmp_path):
    pid, fds, pid_fd, data, status = run_forked(lambda: _exec_in_a_child(tmp_path))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"new image failed ({status}): {data}"
    seen = json.loads(data)
    assert seen["pid"] == pid, "exec in place: same pid"
    assert decode_sockets(seen["sockets"]) == {"127.0.0.1|1|tcp|4": [fds[0]], "/x;y|unix": [fds[1]]}
    assert seen["children"] == "11,12"
    assert json.loads(seen["state"]) == {"max_servers": 3}
    assert seen["pid_file_fd"] == str(pid_fd)
    assert seen["fds_open"] == fds + [pid_fd], "listeners and the pid file survive the exec"
    assert seen["cwd"] == restart._START_DIRECTORY
    blocked = set(seen["blocked"])
    assert {int(s) for s in restart.CARRIED_SIGNALS} <= blocked, "signals stay pending until handled"


def test_exec_self_failure_raises_and_restores_the_signal_mask(monkeypatch):
    monkeypatch.chdir(os.getcwd())  # exec_self goes back to the start directory first
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(OSError):
        restart.exec_self([], [], {})
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
