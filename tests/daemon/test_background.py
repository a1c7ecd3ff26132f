"""--background and --setsid: the launcher returns once the daemon serves, errors reach the caller.

Each launcher runs to completion (its output in a file: a daemon without a
log file keeps the caller's descriptors, so a pipe would never end); the
daemon is found through its pid file and killed afterwards by the fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from daemontools import (
    alive, cmdline, echo, fd_links, greeting_pid, listening_port, live_group_members, parent_pid, pid_from_file,
    port_is_free, read_pid_file, served, session_id, wait_until,
)
from harness import BINDING

MODES = {
    "background": ["--background"],
    "setsid": ["--setsid"],
    "background+log_file": ["--background", "--log_file", "{log}"],
    "setsid+log_file": ["--setsid", "--log_file", "{log}"],
}


def _args(words, **paths):
    return [word.format(**paths) for word in words]


def _launch_daemon(servers, tmp_path, personality, mode, port=0):
    pid_file = tmp_path / "daemon.pid"
    log = tmp_path / "daemon.log"
    servers.adopt_pid_file(pid_file)
    args = [personality, "--port", f"127.0.0.1:{port}", "--pid_file", str(pid_file)]
    if personality == "PreFork":
        args += ["--min_servers", "1", "--max_servers", "2"]
    done = servers.launch(args + _args(MODES[mode], log=log), tmp_path / "launcher.out")
    return done, pid_file, log


@pytest.mark.parametrize("personality,mode", [
    ("Single", "background"), ("Single", "setsid+log_file"),
    ("PreFork", "background"), ("PreFork", "setsid"), ("PreFork", "background+log_file"),
    ("PreFork", "setsid+log_file"),
])
def test_launcher_returns_once_the_daemon_serves(servers, tmp_path, personality, mode):
    done, pid_file, log = _launch_daemon(servers, tmp_path, personality, mode)
    # Straight after the launcher returns: the pid file names the daemon, which serves (on the
    # port it was given: 0, so read from /proc).
    text = read_pid_file(pid_file)
    assert done.returncode == 0, done.stdout
    assert text and text.endswith("\n"), f"pid file {text!r} when the launcher returned"
    daemon = int(text)
    reply = echo(listening_port(daemon))
    assert served(reply), reply
    assert daemon != done.pid and alive(daemon)
    assert b"netserver" in cmdline(daemon)
    server_pid = greeting_pid(reply)
    if personality == "Single":
        assert server_pid == daemon
    else:
        assert parent_pid(server_pid) == daemon

    # A session of its own with setsid; without, it stays in the launcher's session.
    if "setsid" in mode:
        assert session_id(daemon) == daemon
    else:
        assert session_id(daemon) != daemon
        assert session_id(daemon) == done.pid  # the launcher led the session it was started in

    links = fd_links(daemon)
    if "setsid" in mode or "log_file" in mode:
        assert links[0] == os.devnull and links[1] == os.devnull, links
    else:  # plain --background keeps the caller's descriptors (Net::Server does the same)
        assert links[1] == str(tmp_path / "launcher.out"), links
    if "log_file" in mode:
        assert links[2] == str(log), links
        assert os.path.getsize(log) > 0
    elif "setsid" in mode:
        assert links[2] == os.devnull, links


@pytest.mark.slow
def test_launcher_waits_for_a_slow_start(servers, tmp_path, write_script):
    """A daemon that takes a second to get ready: the launcher does not return before it is."""
    script = write_script("""
        import time
        import netserver

        class Slow(netserver.Single):
            def pre_loop_hook(self):
                time.sleep(1.0)

        Slow.run()
    """)
    pid_file = tmp_path / "slow.pid"
    servers.adopt_pid_file(pid_file)
    started = time.monotonic()
    done = servers.launch(["--port", "127.0.0.1:0", "--pid_file", str(pid_file), "--background",
                           "--user", "root"], tmp_path / "launcher.out", script=script)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout
    assert elapsed >= 1.0, f"the launcher returned after {elapsed:.2f}s, before the daemon was ready"
    assert served(echo(listening_port(pid_from_file(pid_file))))


def test_a_crash_after_the_fork_reaches_the_caller(servers, tmp_path, write_script):
    script = write_script("""
        import netserver

        class Broken(netserver.Single):
            def pre_loop_hook(self):
                raise RuntimeError("pre_loop_hook exploded")

        Broken.run()
    """)
    pid_file = tmp_path / "broken.pid"
    servers.adopt_pid_file(pid_file)
    done = servers.launch(["--port", "127.0.0.1:0", "--pid_file", str(pid_file), "--background",
                           "--user", "root"], tmp_path / "launcher.out", script=script)
    assert done.returncode != 0
    assert "pre_loop_hook exploded" in done.stdout
    bound = BINDING.search(done.stdout)  # plain --background keeps the caller's stderr: the log is here
    assert bound, done.stdout
    port = int(bound.group(2))
    wait_until(lambda: read_pid_file(pid_file) in (None, ""), what="the failed daemon's pid file to go")
    wait_until(lambda: port_is_free(port), what="the failed daemon's port to be released")


@pytest.mark.parametrize("mode", ["background", "setsid", "background+log_file"])
def test_port_in_use_is_reported_once_by_the_launcher(servers, tmp_path, mode):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done, pid_file, log = _launch_daemon(servers, tmp_path, "PreFork", mode, port)
    assert done.returncode == 1, done.stdout
    assert "cannot bind" in done.stdout
    assert done.stdout.count("Address already in use") == 1, done.stdout
    wait_until(lambda: read_pid_file(pid_file) in (None, ""), what="the failed daemon's pid file to go")
    wait_until(lambda: not live_group_members(done.pid), what="nothing left of the failed daemon")


@pytest.mark.parametrize("bad", [["--bogus_option", "1"], ["--port", "127.0.0.1:99999"],
                                 ["--max_servers", "many"]])
def test_bad_option_fails_before_forking(servers, tmp_path, bad):
    pid_file = tmp_path / "daemon.pid"
    args = ["PreFork", "--port", "127.0.0.1:0", "--pid_file", str(pid_file), "--background"]
    done = servers.launch(args + bad, tmp_path / "launcher.out")
    assert done.returncode == 2, done.stdout
    assert "error" in done.stdout
    assert not pid_file.exists(), "the pid file was taken before the options were checked"
    assert not live_group_members(done.pid), "something was forked"
    assert "starting" not in done.stdout


def test_hup_keeps_the_background_daemon_pid(servers, tmp_path):
    done, pid_file, log = _launch_daemon(servers, tmp_path, "PreFork", "background+log_file")
    assert done.returncode == 0, done.stdout
    daemon = pid_from_file(pid_file)
    port = listening_port(daemon)
    servers.adopt(daemon)
    os.kill(daemon, signal.SIGHUP)
    wait_until(lambda: "inherited fd" in log.read_text(), what="the restart")
    assert served(echo(port))
    assert pid_from_file(pid_file) == daemon, log.read_text()
    assert alive(daemon)
