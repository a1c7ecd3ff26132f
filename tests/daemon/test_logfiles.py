"""The log file survives the privilege drop, the chroot and rotation (``mv`` then USR1).

The file is opened as root before the drop; children serving as nobody keep
writing to it through the descriptor — even when its directory is closed to
nobody (tmp_path is mode 700) or outside their chroot.  On USR1 the parent
reopens the path and tells its children to do the same, so after
``mv F F.1; kill -USR1`` new lines go to a new F and none to F.1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from harness import TIMEOUT
from daemontools import (
    NOBODY, Held, any_deleted, fd_links, line_pid, lines_matching, live_children, served, signal_caught,
    signal_ignored, status, wait_until,
)

LOOPBACK = ["--port", "127.0.0.1:0"]
PREFORK = ["PreFork", "--min_servers", "2", "--max_servers", "2"]
PERSONALITIES = {
    "Single": ["Single"],
    "Fork": ["Fork"],
    "PreFork": PREFORK,
}


def connect_lines(log, pid: int):
    return [line for line in lines_matching(log, r"\bCONNECT\b") if line_pid(line) == pid]


def serve_one(server) -> int:
    """One connection, held until it is served; returns the serving pid."""
    client = Held(server.port)
    pid = client.wait_greeted()
    assert served(client.finish(), b"bye")
    return pid


@pytest.mark.parametrize("personality", sorted(PERSONALITIES))
def test_log_file_opened_before_the_drop_keeps_working(servers, tmp_path, personality):
    log = tmp_path / "server.log"  # in a directory nobody cannot even enter
    server = servers.start(PERSONALITIES[personality] + LOOPBACK + ["--log_file", str(log), "--log_level", "3"],
                           wait=False)
    wait_until(lambda: lines_matching(log, r"Binding to"), what="the server to bind")
    server.port = int(re.search(r"port (\d+)", lines_matching(log, r"Binding to")[0]).group(1))
    client = Held(server.port)
    pid = client.wait_greeted()
    try:
        assert status(pid)["Uid"] == [NOBODY] * 4
        wait_until(lambda: connect_lines(log, pid), what=f"a CONNECT line from pid {pid}")
    finally:
        assert served(client.finish(), b"bye")


def test_log_file_outside_the_chroot_keeps_working(servers, tmp_path, world_dir):
    jail = world_dir / "jail"
    jail.mkdir()
    log = tmp_path / "server.log"
    server = servers.start(PREFORK + LOOPBACK + ["--log_file", str(log), "--log_level", "3", "--chroot", str(jail)],
                           wait=False)
    wait_until(lambda: lines_matching(log, r"Binding to"), what="the server to bind")
    server.port = int(re.search(r"port (\d+)", lines_matching(log, r"Binding to")[0]).group(1))
    pid = serve_one(server)
    assert os.readlink(f"/proc/{pid}/root") == str(jail)
    wait_until(lambda: connect_lines(log, pid), what=f"a CONNECT line from the chrooted child {pid}")


# -- rotation ----------------------------------------------------------------------------------


def _start_for_rotation(servers, log, personality):
    args = (["Single", "--user", "root"] if personality == "Single" else PREFORK)
    server = servers.start(args + LOOPBACK + ["--log_file", str(log), "--log_level", "3"], wait=False)
    wait_until(lambda: lines_matching(log, r"Binding to"), what="the server to bind")
    server.port = int(re.search(r"port (\d+)", lines_matching(log, r"Binding to")[0]).group(1))
    if personality == "PreFork":
        # Ready means each child handles USR1 itself (a USR1 sent while a child starts is the
        # next test's subject).  A new child inherits the parent's USR1 handler, so "caught" alone
        # says nothing: the child's own set-up first ignores TTIN (the parent's), then installs its own.
        def ready(kid):
            return signal_ignored(kid, signal.SIGTTIN) and signal_caught(kid, signal.SIGUSR1)

        wait_until(lambda: len(kids := live_children(server.pid)) == 2 and all(map(ready, kids)),
                   what="two ready children")
    return server


def _rotate(server, log):
    rotated = log.with_name(log.name + ".1")
    os.rename(log, rotated)
    before = rotated.read_text()
    server.signal(signal.SIGUSR1)
    wait_until(lambda: lines_matching(log, r"Received USR1"), what="the parent's line in the new log")
    return rotated, before


@pytest.mark.parametrize("personality", ["Single", "PreFork"])
def test_usr1_reopens_the_parent_log(servers, world_dir, personality):
    log = world_dir / "server.log"
    server = _start_for_rotation(servers, log, personality)
    rotated, before = _rotate(server, log)
    assert all(line_pid(line) == server.pid for line in lines_matching(log, r"Received USR1"))
    if personality == "Single":
        pid = serve_one(server)
        wait_until(lambda: connect_lines(log, pid), what="the CONNECT line in the new log")
    # Nothing more from this process in the rotated file (children are the next test's business).
    added = rotated.read_text()[len(before):].splitlines()
    assert not [line for line in added if line_pid(line) == server.pid], added


def test_usr1_reopens_the_log_in_prefork_children(servers, world_dir):
    log = world_dir / "server.log"
    server = _start_for_rotation(servers, log, "PreFork")
    rotated, before = _rotate(server, log)

    def children_reopened():
        kids = live_children(server.pid)
        return kids and all(str(log) in fd_links(kid).values() for kid in kids)

    wait_until(children_reopened, timeout=3, what="every child to have the new log open")
    pids = {serve_one(server) for _ in range(3)}
    for pid in pids:
        wait_until(lambda pid=pid: connect_lines(log, pid), timeout=3, what=f"child {pid}'s CONNECT line in the new log")
    assert rotated.read_text() == before, "lines went to the rotated file:\n" + rotated.read_text()[len(before):]


@pytest.mark.slow
def test_usr1_during_a_child_start_is_not_lost(servers, world_dir, write_script):
    """Children that take 0.5 s to start (an after-fork hook) get the USR1 sent meanwhile."""
    script = write_script("""
        import os, time
        import netserver
        os.register_at_fork(after_in_child=lambda: time.sleep(0.5))
        netserver.PreFork.run()
    """)
    log = world_dir / "server.log"
    server = servers.start(PREFORK + LOOPBACK + ["--log_file", str(log), "--log_level", "3"], wait=False,
                           script=script)
    wait_until(lambda: len(live_children(server.pid)) == 2, what="two children, still starting")
    rotated = log.with_name(log.name + ".1")
    os.rename(log, rotated)
    server.signal(signal.SIGUSR1)
    wait_until(lambda: lines_matching(log, r"Received USR1"), what="the parent's line in the new log")

    def children_reopened():
        kids = live_children(server.pid)
        return kids and all(str(log) in fd_links(kid).values() for kid in kids)

    wait_until(children_reopened, timeout=3, what="every child to have the new log open")


@pytest.mark.parametrize("personality", ["Single", "PreFork"])
def test_no_deleted_log_is_held_open_after_usr1(servers, world_dir, personality):
    log = world_dir / "server.log"
    server = _start_for_rotation(servers, log, personality)
    rotated, _ = _rotate(server, log)
    os.unlink(rotated)  # logrotate compressed it
    links = fd_links(server.pid)
    assert not any_deleted(links.values()), f"ls -l /proc/{server.pid}/fd: {links}"
    assert str(log) in links.values()


def test_syslog_socket_opened_before_the_chroot_keeps_working(servers, world_dir):
    """``--log_file Sys::Syslog`` with a UNIX datagram socket: chrooted children still reach it."""
    jail = world_dir / "jail"
    jail.mkdir()
    address = str(world_dir / "syslog.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(address)
        syslog.settimeout(TIMEOUT)
        server = servers.start(PREFORK + LOOPBACK + [
            "--log_file", "Sys::Syslog", "--syslog_logsock", address, "--syslog_ident", "daemontest",
            "--log_level", "3", "--chroot", str(jail)], wait=False)
        messages = []

        def receive_until(pattern):
            deadline = time.monotonic() + TIMEOUT
            while not any(re.search(pattern, m) for m in messages):
                syslog.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    messages.append(syslog.recv(65536).decode("utf-8", "replace"))
                except socket.timeout:
                    raise AssertionError(f"no syslog message /{pattern}/ in {messages}") from None
            return [m for m in messages if re.search(pattern, m)]

        server.port = int(re.search(r"port (\d+)", receive_until(r"Binding to")[0]).group(1))
        wait_until(lambda: len(live_children(server.pid)) == 2, what="two children")
        pid = serve_one(server)
        assert os.readlink(f"/proc/{pid}/root") == str(jail)
        assert receive_until(rf"daemontest\[{pid}\]: .*CONNECT")
