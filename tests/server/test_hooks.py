"""Hooks are called in Net::Server's order, in a real server stopped by a signal."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import socketserver
import textwrap

import pytest

from harness import TIMEOUT, echo_exchange, read_all, serving

import netserver

pytestmark = pytest.mark.process  # some tests here start the server as a process

BASE_HOOKS = [
    "configure_hook", "post_configure_hook", "post_bind_hook", "pre_loop_hook", "can_read_hook",
    "post_accept_hook", "allow_deny_hook", "request_denied_hook", "post_process_request_hook",
    "post_client_connection_hook", "other_child_died_hook", "pre_server_close_hook", "fatal_hook",
    "post_child_cleanup_hook", "restart_open_hook", "restart_close_hook", "child_init_hook",
    "pre_fork_hook", "child_finish_hook", "idle_loop_hook", "child_is_talking_hook",
    "run_dequeue", "dequeue", "pre_accept_hook", "run_n_children_hook", "parent_read_hook",
    "cleanup_dead_child_hook", "delete_child_hook", "pre_thread_hook",
]


# In-process servers name the test process's own user, so that no test depends on
# what a server does with no ``user`` (it keeps the identity and, as root, warns).
SELF = {"user": pwd.getpwuid(os.geteuid()).pw_name}

HOOK_SCRIPT = """
import json, sys
import netserver

HOOKS = {hooks!r}
OUT = open(sys.argv.pop(1), "w")   # opened now: the server may change user after binding
calls = []


BASE = getattr(netserver, sys.argv.pop(1))


def recorder(name):
    base = getattr(BASE, name)

    def hook(self, *args, **kwargs):
        calls.append(name)
        if name == "allow_deny_hook":
            return calls.count("allow_deny_hook") == 1   # refuse the second connection
        return base(self, *args, **kwargs)

    hook.__name__ = name
    return hook


Recorder = type("Recorder", (BASE,), {{name: recorder(name) for name in HOOKS}})
try:
    Recorder.run()
finally:
    with OUT:
        json.dump(calls, OUT)
"""


def test_every_base_hook_exists_as_a_method():
    for name in BASE_HOOKS + ["write_to_log_hook"]:
        assert callable(getattr(netserver.Server, name)), name


def test_hook_order_over_a_served_and_a_denied_connection(tmp_path):
    script = tmp_path / "hooks.py"
    script.write_text(textwrap.dedent(HOOK_SCRIPT.format(hooks=BASE_HOOKS)))
    out = tmp_path / "calls.json"
    with serving([str(out), "Server", "--port", "127.0.0.1:0"], script=str(script)) as server:
        address = ("127.0.0.1", server.port)
        reply = echo_exchange(address, [b"allowed"])
        assert reply.startswith(f'Welcome to "Recorder" ({server.pid})'.encode())
        with socket.create_connection(address, timeout=TIMEOUT) as denied:
            assert read_all(denied) == b""
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    calls = json.loads(out.read_text())
    assert calls == [
        "configure_hook",
        "post_configure_hook",
        "post_bind_hook",
        "pre_loop_hook",
        # the allowed connection
        "post_accept_hook",
        "allow_deny_hook",
        "post_process_request_hook",
        "post_client_connection_hook",
        # the denied connection: Net::Server's flow ends it with the same two hooks
        "post_accept_hook",
        "allow_deny_hook",
        "request_denied_hook",
        "post_process_request_hook",
        "post_client_connection_hook",
        # SIGTERM
        "pre_server_close_hook",
        "post_child_cleanup_hook",  # Single too, after pre_server_close_hook, as in Net::Server
    ]


def test_prefork_parent_calls_its_hooks(tmp_path):
    """The parent's own hooks, recorded in the parent: each observed, in Net::Server's order."""
    script = tmp_path / "hooks.py"
    script.write_text(textwrap.dedent(HOOK_SCRIPT.format(hooks=BASE_HOOKS)))
    out = tmp_path / "calls.json"
    args = [str(out), "PreFork", "--port", "127.0.0.1:0", "--min_servers", "2", "--check_for_spawn", "0.1",
            "--child_communication"]
    with serving(args, script=str(script)) as server:
        assert echo_exchange(("127.0.0.1", server.port), [b"hi"]).startswith(b"Welcome")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    calls = json.loads(out.read_text())
    assert calls[:6] == ["configure_hook", "post_configure_hook", "post_bind_hook", "pre_loop_hook",
                         "run_n_children_hook", "pre_fork_hook"]
    assert calls.count("pre_fork_hook") >= 2 and calls.count("idle_loop_hook") >= 1
    assert calls.count("delete_child_hook") >= 2  # each child, forgotten once it exits
    # The connection was served by a child: its hooks ran there, not here.
    assert "post_accept_hook" not in calls and "child_init_hook" not in calls
    # Net::Server's close: pre_server_close_hook, the children stopped (delete_child_hook each),
    # post_child_cleanup_hook.
    closing = calls[calls.index("pre_server_close_hook"):]
    assert closing[-1] == "post_child_cleanup_hook"
    assert set(closing[1:-1]) <= {"delete_child_hook", "idle_loop_hook"} and "delete_child_hook" in closing


class Quiet(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"ok\n")


def test_write_to_log_hook_gets_level_and_message_after_level_filtering(monkeypatch):
    monkeypatch.setattr("sys.argv", ["test"])
    written = []

    class Recording(netserver.Server):
        def write_to_log_hook(self, level, message):
            written.append((level, message))

    with Recording(("127.0.0.1", 0), Quiet, log_level=1, **SELF) as server:
        # The level-2 start-up notice was filtered out before reaching the hook.
        assert not any("starting" in message for _, message in written)
        server.log(0, "an error")
        server.log(1, "a warning")
        server.log(2, "a notice")
        server.log(4, "a debug line")
    assert written == [(0, "an error"), (1, "a warning")]


def test_write_to_log_hook_sees_the_servers_own_lines(monkeypatch):
    monkeypatch.setattr("sys.argv", ["test"])
    written = []

    class Recording(netserver.Server):
        def write_to_log_hook(self, level, message):
            written.append((level, message))

    with Recording(("127.0.0.1", 0), Quiet, log_level=4, **SELF) as server:
        port = server.server_address[1]
        assert any(level == 2 and "starting" in message for level, message in written)
        server.log(4, "debug now shown")
    assert (4, "debug now shown") in written
    assert all(isinstance(level, int) and 0 <= level <= 4 for level, _ in written)
    assert port


def test_write_to_log_hook_replaces_the_log_target(tmp_path, capfd, monkeypatch):
    """Overriding the hook takes the lines away from the configured log_file."""
    monkeypatch.setattr("sys.argv", ["test"])
    log = tmp_path / "server.log"
    written = []

    class Recording(netserver.Server):
        def write_to_log_hook(self, level, message):
            written.append(message)

    with Recording(("127.0.0.1", 0), Quiet, log_file=str(log), **SELF) as server:
        server.log(1, "to the hook only")
    assert "to the hook only" in written
    assert "to the hook only" not in (log.read_text() if log.exists() else "")
    assert "to the hook only" not in capfd.readouterr().err
