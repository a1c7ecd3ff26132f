"""Signals on real processes: HUP re-exec under load, a refused HUP, QUIT, TERM, crash loops,
sig_passthrough and other_child_died_hook.

Each HUP is awaited through its log line ("... (inherited fd N)") before the
next is sent; pools are observed through /proc.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from harness import TIMEOUT, echo_exchange
from load import ClientLoad
from proctools import (
    LOOPBACK, assert_all_gone, assert_group_gone, children, cmdline, complete_reply, exists,
    greeting_pid, holds_for, listening_inode, live_children, signal_caught, signal_ignored, socket_inodes, wait_until,
    zombie_children,
)

FAST = ["--check_for_spawn", "0.1", "--check_for_waiting", "0.5", "--min_child_ttl", "0.2"]

HUP_PERSONALITIES = {
    "PreFork": ["PreFork", *FAST, "--min_servers", "2", "--max_servers", "4", "--min_spare_servers", "1",
                "--max_spare_servers", "2"],
    "Single": ["Single"],
    "Fork": ["Fork", "--max_servers", "8"],
    "Thread": ["Thread", "--max_servers", "8"],
}
POOL_AT_REST = {"PreFork": 2, "Single": 0, "Fork": 0, "Thread": 0}
HUPS = {"PreFork": 5, "Single": 5, "Fork": 3, "Thread": 3}
STEP = {"PreFork": 40, "Single": 40, "Fork": 60, "Thread": 60}  # exchanges before the first and after each HUP
INHERITED = r"Binding to TCP port \d+ .*\(inherited fd \d+\)"


@pytest.mark.parametrize("personality", list(HUP_PERSONALITIES))
@pytest.mark.slow
def test_hup_under_load_loses_nothing(servers, personality):
    server = servers.start([*HUP_PERSONALITIES[personality], *LOOPBACK])
    address = ("127.0.0.1", server.port)
    inode = listening_inode(server.port)
    assert inode in socket_inodes(server.pid)
    argv = cmdline(server.pid)
    generations = []  # children before each HUP

    with ClientLoad(address, cap=25000) as load:
        load.wait_more(STEP[personality])
        for hup in range(1, HUPS[personality] + 1):
            generations.append(set(children(server.pid)))
            server.signal(signal.SIGHUP)
            server.wait_for(INHERITED, count=hup)
            load.wait_more(STEP[personality])
        assert not load.capped, "the clients stopped before the last HUP"
    assert load.failures == [], f"{len(load.failures)} failed of {load.completed}: {load.failures[:5]}"
    assert load.completed >= 200

    # Same process, same command line, same listening socket.
    assert server.proc.poll() is None
    starts = re.findall(r"starting! pid\((\d+)\)", server.log_text())
    assert len(starts) == HUPS[personality] + 1 and set(starts) == {str(server.pid)}
    assert cmdline(server.pid) == argv
    assert listening_inode(server.port) == inode
    assert inode in socket_inodes(server.pid)
    assert "HUP refused" not in server.log_text()

    # Old children have gone, the pool is back at its size, no zombies.
    old = set().union(*generations)
    assert_all_gone(old, timeout=TIMEOUT)
    wanted = POOL_AT_REST[personality]
    wait_until(lambda: len(live_children(server.pid)) == wanted and not zombie_children(server.pid),
               what=f"{wanted} children and no zombies")
    assert complete_reply(echo_exchange(address))


def test_hup_with_a_broken_conf_file_is_refused_then_a_fixed_one_is_live(servers, tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# a valid configuration\nhost 127.0.0.1\nport 0\nlog_level 2\n")
    server = servers.start(["PreFork", "--conf_file", str(conf), "--user", "root", "--min_servers", "1",
                            "--max_servers", "2", "--check_for_spawn", "0.1"])
    address = ("127.0.0.1", server.port)
    inode = listening_inode(server.port)
    assert complete_reply(echo_exchange(address))

    conf.write_text("host 127.0.0.1\nport 0\nlog_level 9\n")
    server.signal(signal.SIGHUP)
    server.wait_for(r"HUP refused")
    assert server.proc.poll() is None
    assert complete_reply(echo_exchange(address))
    assert "inherited fd" not in server.log_text()
    assert "CONNECT" not in server.log_text()  # still log_level 2

    # A second port 0: the new image adopts the listener it had and binds one more (STYLE rule 11).
    conf.write_text("host 127.0.0.1\nport 0\nport 0\nlog_level 3\n")
    server.signal(signal.SIGHUP)
    server.wait_for(INHERITED)
    fresh = server.wait_for(r"Binding to TCP port (\d+) on host 127.0.0.1 with IPv4$", count=2)[1]
    extra = int(fresh.group(1))
    assert extra != server.port
    assert server.proc.poll() is None
    assert re.findall(r"starting! pid\((\d+)\)", server.log_text()) == [str(server.pid)] * 2
    assert listening_inode(server.port) == inode
    assert complete_reply(echo_exchange(address))
    assert complete_reply(echo_exchange(("127.0.0.1", extra)))
    server.wait_for(r"INFO CONNECT", count=2)  # log_level 3 is live


def test_refused_hup_says_why(servers, tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("host 127.0.0.1\nport 0\n")
    server = servers.start(["PreFork", "--conf_file", str(conf), "--user", "root", "--min_servers", "1",
                            "--max_servers", "1"])
    conf.write_text("host 127.0.0.1\nport 0\nlog_level 9\n")
    server.signal(signal.SIGHUP)
    line = server.wait_for(r"HUP refused.*")[0].group(0)
    assert "log_level" in line, line


def test_hup_to_a_port_in_use_is_refused_and_the_server_keeps_serving(servers, tmp_path):
    """The check binds the new image's new listeners first: a port in use no longer kills the server."""
    conf = tmp_path / "server.conf"
    conf.write_text("host 127.0.0.1\nport 0\n")
    server = servers.start(["PreFork", "--conf_file", str(conf), "--user", "root", "--min_servers", "1",
                            "--max_servers", "1"])
    address = ("127.0.0.1", server.port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        conf.write_text(f"host 127.0.0.1\nport 0\nport {taken.getsockname()[1]}\n")
        server.signal(signal.SIGHUP)
        line = server.wait_for(r"HUP refused.*")[0].group(0)
        assert "in use" in line, line
    assert server.proc.poll() is None
    assert complete_reply(echo_exchange(address))
    assert "inherited fd" not in server.log_text()


def _uid(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Uid:"))


@pytest.mark.root  # only root can become nobody
def test_hup_with_user_nobody_children_drop_the_parent_keeps_root(servers, clients):
    """Started as root with --user nobody: children serve as nobody, the parent stays root so HUP can re-exec."""
    import pwd

    nobody = pwd.getpwnam("nobody").pw_uid
    server = servers.start(["PreFork", "--host", "127.0.0.1", "--port", "0", "--min_servers", "1",
                            "--max_servers", "2", "--user", "nobody", *FAST])
    held = clients(("127.0.0.1", server.port))
    old = held.wait_greeted()
    assert _uid(old) == nobody and _uid(server.pid) == 0
    server.signal(signal.SIGHUP)
    server.wait_for(INHERITED)
    new = greeting_pid(echo_exchange(("127.0.0.1", server.port)))
    assert new != old and _uid(new) == nobody
    held.finish_checked()
    wait_until(lambda: not exists(old), what="the old child to exit")


@pytest.mark.parametrize("personality", ["PreFork", "PreForkSimple", "Fork", "Single", "Thread"])
@pytest.mark.slow
def test_connection_in_progress_across_hup_completes(servers, clients, personality):
    extra = {"PreFork": ["--min_servers", "1", "--max_servers", "2", *FAST],
             "PreForkSimple": ["--max_servers", "1"]}.get(personality, [])
    server = servers.start([personality, *LOOPBACK, *extra])
    held = clients(("127.0.0.1", server.port))
    pid = held.wait_greeted()
    server.signal(signal.SIGHUP)
    if personality not in ("Single", "Thread"):  # these restart once their connections are over
        server.wait_for(INHERITED)
        assert complete_reply(echo_exchange(("127.0.0.1", server.port))), "the new image serves"
    reply = held.finish_checked(lines=[b"after", b"the", b"hup"])
    assert greeting_pid(reply) == pid
    server.wait_for(INHERITED)
    if pid != server.pid:
        wait_until(lambda: not exists(pid), what="the old child to exit once its connection is done")
    assert server.proc.poll() is None
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))


QUIT_PERSONALITIES = {
    "PreFork": ["PreFork", "--min_servers", "3", "--max_servers", "3", *FAST],
    "Fork": ["Fork", "--max_servers", "4"],
    "Single": ["Single"],
    "Thread": ["Thread", "--max_servers", "4"],
}


@pytest.mark.parametrize("personality", list(QUIT_PERSONALITIES))
@pytest.mark.slow
def test_quit_lets_connections_in_progress_finish(servers, clients, personality):
    server = servers.start([*QUIT_PERSONALITIES[personality], *LOOPBACK])
    address = ("127.0.0.1", server.port)
    count = 1 if personality == "Single" else 2
    held = [clients(address) for _ in range(count)]
    for client in held:
        client.wait_greeted()
    serving = {client.pid for client in held} - {server.pid}
    if personality == "PreFork":  # the whole pool is up, each child with its QUIT handler installed
        wait_until(lambda: len(live_children(server.pid)) == 3
                   and all(signal_caught(pid, signal.SIGQUIT) for pid in live_children(server.pid)),
                   what="3 children ready")
    server.signal(signal.SIGQUIT)
    if personality != "Single":  # Single acts on the signal once its connection is over
        server.wait_for(r"Received QUIT")
    if personality == "PreFork":  # the idle child goes; the busy ones stay until their client is done
        wait_until(lambda: set(live_children(server.pid)) == serving, what="only the busy children to remain")
    assert holds_for(lambda: server.proc.poll() is None, 0.3), "the server exited with connections in progress"
    for client in held:
        client.finish_checked(lines=[b"still", b"here"])
    assert server.wait_exit() == 0
    assert_group_gone(server)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=TIMEOUT).close()


SLOW_CHILD_START = """
    import os, time
    import netserver

    # A slow start in the child between fork() and the server's own child set-up (as a library's
    # at-fork hook can be): a signal sent to the child then must not be lost.
    os.register_at_fork(after_in_child=lambda: time.sleep(0.5))
    netserver.PreFork.run()
"""


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGHUP], ids=["QUIT", "HUP"])
@pytest.mark.slow
def test_signal_to_a_child_still_starting_is_not_lost(servers, write_script, signum):
    server = servers.start([*LOOPBACK, "--min_servers", "2", "--max_servers", "2", *FAST],
                           script=write_script(SLOW_CHILD_START))
    starting = wait_until(lambda: len(children(server.pid)) == 2 and children(server.pid), interval=0.005,
                          what="2 children forked")
    server.signal(signum)
    if signum == signal.SIGQUIT:
        try:
            assert server.wait_exit(timeout=TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"QUIT hangs: children {live_children(server.pid)} never retired") from None
        assert_group_gone(server)
    else:
        server.wait_for(INHERITED)
        assert_all_gone(starting, timeout=TIMEOUT)  # the old image's children retire once started


TERM_IGNORING = """
    import signal
    import netserver

    class Stubborn(netserver.{personality}):
        def child_init_hook(self, kind=""):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    Stubborn.run()
"""


@pytest.mark.parametrize("personality", ["PreFork", "Fork"])
@pytest.mark.slow
def test_term_kills_children_that_ignore_it_after_stop_timeout(servers, clients, write_script, personality):
    script = write_script(TERM_IGNORING.format(personality=personality))
    options = ["--min_servers", "2", "--max_servers", "2", *FAST] if personality == "PreFork" else []
    server = servers.start([*LOOPBACK, *options, "--stop_timeout", "1"], script=script)
    held = [clients(("127.0.0.1", server.port)) for _ in range(2)]
    for client in held:
        client.wait_greeted()
    pool = set(live_children(server.pid))
    assert pool and all(signal_ignored(pid, signal.SIGTERM) for pid in pool), "child_init_hook ignores TERM"
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=5) is not None
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed <= 4.0, f"exited after {elapsed:.2f}s with stop_timeout 1"
    server.wait_for(r"Killing 2 children that did not exit within 1(\.0)?s")
    assert_all_gone(pool, timeout=2)  # killed, not reparented to init
    assert_group_gone(server, timeout=2)


CRASHING = """
    import time
    import netserver

    class Crashing(netserver.PreFork):
        def pre_fork_hook(self):
            self.log(2, "forking")

        def child_init_hook(self, kind=""):
            raise RuntimeError("child_init_hook fails on purpose")

        def write_to_log_hook(self, level, message):  # a precise clock on every line
            super().write_to_log_hook(level, "[%.3f] %s" % (time.monotonic(), message))

    Crashing.run()
"""
STAMPED = re.compile(r"\[(\d+\.\d+)\] "
                     r"(forking|Children are exiting as soon as they start; pausing spawning for (\d+)s)")


def crash_loop_events(server):
    """``(monotonic time, "fork" or "pause", pause seconds)`` for each stamped line so far."""
    events = []
    for match in map(STAMPED.search, list(server.lines)):
        if match:
            delay = match.group(3)
            events.append((float(match.group(1)), "pause" if delay else "fork", int(delay or 0)))
    return events


def forks_after(server, moment):
    return [t for t, kind, _ in crash_loop_events(server) if kind == "fork" and t > moment]


def start_crash_loop(servers, write_script):
    return servers.start([*LOOPBACK, "--min_servers", "2", "--max_servers", "4", "--check_for_spawn", "0.1"],
                         script=write_script(CRASHING))


@pytest.mark.slow
def test_crash_loop_backs_off_and_the_parent_stays(servers, write_script):
    server = start_crash_loop(servers, write_script)
    # The back-off doubles: a 1s pause, then (children still dying at once) a 2s one.
    pauses = server.wait_for(r"pausing spawning for (\d+)s", count=2)
    assert [m.group(1) for m in pauses[:2]] == ["1", "2"], [m.group(0) for m in pauses]
    second = [t for t, kind, _ in crash_loop_events(server) if kind == "pause"][1]
    wait_until(lambda: forks_after(server, second), timeout=3.0, what="spawning to resume after the 2s pause")
    forks = [t for t, kind, _ in crash_loop_events(server) if kind == "fork"]
    # The spawn rate alone never leaves a gap much over 1s while children are wanted: the 2s pause does.
    longest = max(b - a for a, b in zip(forks, forks[1:], strict=False))
    assert longest >= 1.8, f"no pause in spawning: longest gap between forks {longest:.2f}s"
    # Each pause is logged as it starts: no fork for its length after the line.
    for announced, kind, delay in crash_loop_events(server):
        if kind == "pause":
            early = [t for t in forks if announced < t < announced + delay - 0.1]
            assert not early, f"'pausing spawning for {delay}s' logged, then a fork {early[0] - announced:.2f}s later"
    assert len(forks) <= 20, f"{len(forks)} children forked in a crash loop"
    log = server.log_text()
    reaped = re.findall(r"Child (\d+) \(prefork\) exited abnormally", log)
    assert len(reaped) >= 5 and len(set(reaped)) == len(reaped)
    for pid in reaped:  # each reaped child said why it died, once
        assert len(re.findall(rf"Child {pid} died: Traceback", log)) == 1, pid
    assert server.proc.poll() is None, "the parent died in a crash loop"
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert_group_gone(server)


PASSTHROUGH = """
    import os, signal, sys
    import netserver

    MARKS = sys.argv.pop(1)

    class Marking(netserver.{personality}):
        def child_init_hook(self, kind=""):
            def usr1(signum, frame):
                with open(os.path.join(MARKS, "usr1-%d" % os.getpid()), "w") as fh:
                    fh.write("USR1")
            signal.signal(signal.SIGUSR1, usr1)
            open(os.path.join(MARKS, "ready-%d" % os.getpid()), "w").close()

    Marking.run()
"""


@pytest.mark.parametrize("personality", ["PreFork", "Fork"])
def test_sig_passthrough_forwards_usr1_to_every_child(servers, clients, write_script, tmp_path, personality):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = write_script(PASSTHROUGH.format(personality=personality))
    options = ["--min_servers", "3", "--max_servers", "3", *FAST] if personality == "PreFork" else []
    server = servers.start([str(marks), *LOOPBACK, *options, "--sig_passthrough", "USR1"], script=script)
    if personality == "Fork":
        for client in [clients(("127.0.0.1", server.port)) for _ in range(3)]:
            client.wait_greeted()
    wait_until(lambda: len(live_children(server.pid)) == 3, what="3 children")
    pool = set(live_children(server.pid))
    ready = {f"ready-{pid}" for pid in pool}  # written once the hook's handler is installed
    wait_until(lambda: ready <= set(os.listdir(marks)), what="every child to have its USR1 handler")
    server.signal(signal.SIGUSR1)
    wanted = {f"usr1-{pid}" for pid in pool}
    wait_until(lambda: wanted <= set(os.listdir(marks)), what=f"markers {sorted(wanted)}")
    assert server.proc.poll() is None
    assert set(live_children(server.pid)) == pool


OTHER_CHILD = """
    import os, signal, time
    import netserver

    class Parent(netserver.{personality}):
        def pre_loop_hook(self):
            pid = os.fork()
            if pid == 0:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                time.sleep(0.3)
                os._exit(7)
            self.log(2, "started other child %d" % pid)

        def other_child_died_hook(self, pid):
            self.log(2, "other child %d died" % pid)

    Parent.run()
"""


@pytest.mark.parametrize("personality", ["PreFork", "Fork"])
@pytest.mark.slow
def test_other_child_died_hook_sees_children_the_server_did_not_start(servers, write_script, personality):
    script = write_script(OTHER_CHILD.format(personality=personality))
    options = ["--min_servers", "2", "--max_servers", "2", *FAST] if personality == "PreFork" else []
    server = servers.start([*LOOPBACK, *options], script=script)
    pid = int(server.wait_for(r"started other child (\d+)")[0].group(1))
    server.wait_for(rf"other child {pid} died")
    assert not exists(pid), "the other child was reaped"
    assert f"Child {pid}" not in server.log_text(), "it is not one of the server's own children"
    if personality == "PreFork":  # the pool is unaffected by the stranger's exit
        wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
        assert holds_for(lambda: len(live_children(server.pid)) == 2, 0.3)
    assert complete_reply(echo_exchange(("127.0.0.1", server.port)))
