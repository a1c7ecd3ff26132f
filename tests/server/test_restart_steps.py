"""The server's side of HUP (netserver.restart.RestartMixIn), in process: check, refuse, hand over.

The exec is replaced by a recorder here; tests/unit/test_restart.py runs a real
one and tests/process/test_signals.py the whole HUP of a running server.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

import netserver
from netserver import restart


class Recording(netserver.Server):
    def __init__(self, *args, **kwargs):
        self.lines = []
        super().__init__(*args, **kwargs)

    def log(self, level, message):
        self.lines.append(message)

    def restart_close_hook(self):
        self.lines.append("restart_close_hook")


@pytest.fixture
def server():
    s = Recording(("127.0.0.1", 0), netserver.EchoHandler)
    s._signal_queue()  # in a serving loop a HUP arrives through it; so does the TERM below
    s.lines.clear()
    yield s
    s._close_signals()
    s.server_close()


def checks(monkeypatch, *answers):
    """Make check_new_image answer in turn; return the list of calls."""
    calls = []

    def check(held=(), timeout=restart.CHECK_TIMEOUT):
        calls.append(list(held))
        answer = answers[len(calls) - 1]
        return answer() if callable(answer) else answer

    monkeypatch.setattr(restart, "check_new_image", check)
    return calls


def test_restartable_only_in_the_net_server_flow(server):
    assert not server.restartable()  # the socketserver constructor path: HUP cannot re-run it
    server._in_run = True
    assert server.restartable()


def test_a_new_image_that_does_not_load_is_refused(server, monkeypatch):
    calls = checks(monkeypatch, (False, "port: bad"))
    server._sig_hup()
    assert calls and not server._restart_requested and not server._shutdown_request
    assert any("HUP refused" in line and "port: bad" in line for line in server.lines)
    assert not server._checking_restart


def test_a_new_image_that_loads_leaves_the_loop_to_restart(server, monkeypatch):
    checks(monkeypatch, (True, ""))
    server._sig_hup()
    assert server._restart_requested and server._shutdown_request


def test_a_second_hup_while_one_is_pending_is_folded_in(server, monkeypatch):
    calls = checks(monkeypatch, (True, ""))
    server._sig_hup()
    server._sig_hup()
    assert len(calls) == 1


def test_a_term_during_the_check_wins(server, monkeypatch):
    def term_arrives():
        server._signal_queue().record(signal.SIGTERM)
        return True, ""

    checks(monkeypatch, term_arrives)
    server._sig_hup()
    assert server._shutdown_request and not server._restart_requested


def test_restart_hands_the_listeners_over(server, monkeypatch, tmp_path):
    handed = {}

    def exec_self(sockets, children, state, pid_file_fd=None):
        handed.update(sockets=list(sockets), children=children, state=state, pid_file_fd=pid_file_fd)
        for fd, _ in handed["sockets"]:
            os.set_inheritable(fd, True)  # as the real one does before exec
        raise OSError("exec failed")

    monkeypatch.setattr(restart, "exec_self", exec_self)
    fd = os.open(tmp_path / "pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    os.set_inheritable(fd, True)
    server.pid_file = SimpleNamespace(fd=fd)
    try:
        server.restart()
        listener = server.listeners[0]
        assert handed["sockets"] == [(listener.fileno(), listener.hup_string())]
        assert handed["children"] == [] and handed["state"] == {} and handed["pid_file_fd"] == fd
        assert server.lines[0] == "restart_close_hook"
        assert any("Restart failed, still running as before: exec: exec failed" in line for line in server.lines)
        assert not listener.socket.get_inheritable(), "a failed exec leaves nothing inheritable"
        assert not os.get_inheritable(fd)
    finally:
        server.pid_file = None
        os.close(fd)
