"""The pid file: written with the server's pid, locked for the server's life, removed on exit.

Real servers against real pid files.  The life cycle (written while it runs,
removed on TERM and QUIT, kept across HUP, never removed by a child), a second
instance refused before it binds anything, stale files (empty, a dead pid, a
live unrelated pid, garbage) taken over, the file never seen empty or
partial, and two servers started together against one file: exactly one runs.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from harness import TIMEOUT, run_command
from daemontools import (
    alive, dead_pid, echo, pid_from_file, read_pid_file, served, wait_until, Held,
)

# Single stays root (explicitly) so it can remove its pid file from a root-owned directory;
# PreFork's parent keeps root anyway and its children serve as nobody.
PERSONALITIES = {
    "Single": ["Single", "--user", "root"],
    "PreFork": ["PreFork", "--min_servers", "1", "--max_servers", "2"],
}
LOOPBACK = ["--port", "127.0.0.1:0"]


# -- life cycle ------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["TERM", "QUIT"])
@pytest.mark.parametrize("personality", sorted(PERSONALITIES))
def test_pid_file_holds_the_server_pid_and_is_removed_on_exit(servers, tmp_path, personality, stop):
    pid_file = tmp_path / "server.pid"
    server = servers.start(PERSONALITIES[personality] + LOOPBACK + ["--pid_file", str(pid_file)])
    assert read_pid_file(pid_file) == f"{server.pid}\n"
    assert served(echo(server.port))
    assert read_pid_file(pid_file) == f"{server.pid}\n"

    server.signal(getattr(signal, "SIG" + stop))
    assert server.wait_exit() == 0
    assert not pid_file.exists(), f"pid file left after {stop}: {read_pid_file(pid_file)!r}"


def test_single_serving_as_nobody_leaves_no_pid_behind(servers, tmp_path):
    """Dropped to nobody, the server can neither unlink its root-owned pid file nor write it
    (issue 14: the service user must not be able to rewrite the pid operators signal); the
    file it leaves is unlocked, so the next start takes it over."""
    pid_file = tmp_path / "server.pid"
    server = servers.start(["Single"] + LOOPBACK + ["--pid_file", str(pid_file)])
    server.wait_for(r"Running as user nobody")
    assert read_pid_file(pid_file) == f"{server.pid}\n"
    assert os.stat(pid_file).st_uid == 0, "the pid file must stay root's"

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert read_pid_file(pid_file) in (None, "", f"{server.pid}\n")
    # ... and a leftover file is no obstacle to the next start.
    again = servers.start(["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)])
    assert read_pid_file(pid_file) == f"{again.pid}\n"


def test_pid_file_is_kept_across_hup_with_the_same_content(servers, tmp_path):
    pid_file = tmp_path / "server.pid"
    server = servers.start(PERSONALITIES["PreFork"] + LOOPBACK + ["--pid_file", str(pid_file)])
    before = read_pid_file(pid_file)
    assert before == f"{server.pid}\n"

    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    seen = set()
    while not re.search(r"Binding to .*inherited fd", server.log_text()):  # the new image is up
        assert time.monotonic() < deadline, f"no restart:\n{server.log_text()}"
        seen.add(read_pid_file(pid_file))
        time.sleep(0.005)
    assert seen <= {before}, f"the pid file changed or vanished during the restart: {seen}"
    assert read_pid_file(pid_file) == before
    assert served(echo(server.port))

    # The restarted image holds the file again: a second instance is still refused.
    second = run_command(["Single", "--user", "root", "--port", "127.0.0.1:0", "--pid_file", str(pid_file)])
    assert second.returncode == 1, second.stderr
    assert f"already running as pid {server.pid}" in second.stderr
    assert read_pid_file(pid_file) == before


def test_hup_keeps_the_pid_file_locked(servers, tmp_path):
    """The restarted image must not find its own pid file unlocked (another instance could take it)."""
    pid_file = tmp_path / "server.pid"
    server = servers.start(PERSONALITIES["PreFork"] + LOOPBACK + ["--pid_file", str(pid_file)])
    server.signal(signal.SIGHUP)
    server.wait_for(r"Binding to .*inherited fd")
    assert "Replacing stale pid file" not in server.log_text()


def test_a_child_never_removes_the_pid_file(servers, tmp_path):
    """A PreFork child that exits (max_requests reached) leaves the parent's pid file alone."""
    pid_file = tmp_path / "server.pid"
    server = servers.start(["PreFork", "--min_servers", "1", "--max_servers", "1", "--max_requests", "1"]
                           + LOOPBACK + ["--pid_file", str(pid_file)])
    expected = f"{server.pid}\n"
    for _ in range(2):
        client = Held(server.port)
        child = client.wait_greeted()
        assert child != server.pid
        assert served(client.finish(), b"bye")
        wait_until(lambda child=child: not alive(child), what=f"child {child} to exit after max_requests")
        assert read_pid_file(pid_file) == expected
    assert served(echo(server.port))
    assert read_pid_file(pid_file) == expected


# -- a second instance -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_second_instance_is_refused_before_binding(servers, tmp_path, mode):
    pid_file = tmp_path / "server.pid"
    first = servers.start(PERSONALITIES["PreFork"] + LOOPBACK + ["--pid_file", str(pid_file)])
    # A UNIX socket: had the refused instance bound anything, its file would be there.
    sock = tmp_path / "second.sock"
    args = ["Single", "--user", "root", "--port", f"{sock}|unix", "--pid_file", str(pid_file)]
    if mode == "background":
        args.append("--background")
    second = servers.launch(args, tmp_path / "second.out")

    assert second.returncode == 1, second.stdout
    assert f"already running as pid {first.pid}" in second.stdout
    assert "Binding to" not in second.stdout
    assert not sock.exists(), "the refused instance bound its socket"
    assert read_pid_file(pid_file) == f"{first.pid}\n"
    assert served(echo(first.port))


def test_pid_file_in_a_missing_directory_is_refused(tmp_path):
    done = run_command(["Single", "--user", "root", "--port", "127.0.0.1:0",
                        "--pid_file", str(tmp_path / "missing" / "server.pid")])
    assert done.returncode in (1, 2), done.stderr
    assert "pid_file" in done.stderr and "does not exist" in done.stderr
    assert "Binding to" not in done.stderr


# -- stale files ------------------------------------------------------------------------------


def _stale_content(kind: str) -> str:
    if kind == "empty":
        return ""
    if kind == "dead pid":
        return f"{dead_pid()}\n"
    if kind == "live unrelated pid":
        return "1\n"
    return "not a pid\x00\n"


@pytest.mark.parametrize("kind", ["empty", "dead pid", "live unrelated pid", "garbage"])
def test_stale_pid_file_is_taken_over(servers, tmp_path, kind):
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(_stale_content(kind))
    old = time.time() - 60
    os.utime(pid_file, (old, old))  # left behind by a crash a while ago

    server = servers.start(["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)])
    assert read_pid_file(pid_file) == f"{server.pid}\n"
    assert re.search(r"Replacing stale pid file", server.log_text()), server.log_text()
    assert served(echo(server.port))
    assert alive(1)


# -- atomic writes -----------------------------------------------------------------------------


class PidFileWatcher:
    """Reads the pid file in a tight loop from another thread; records every distinct content."""

    def __init__(self, path):
        self.path = str(path)
        self.seen = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                text = os.read(fd, 64).decode("ascii", "replace")
            finally:
                os.close(fd)
            self.seen[text] = self.seen.get(text, 0) + 1

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join(TIMEOUT)
        return self.seen


def _watch_start(servers, tmp_path, name, background):
    """Start a PreFork server with a pid file while a watcher reads it; returns (pid, contents seen)."""
    pid_file = tmp_path / f"{name}.pid"
    args = PERSONALITIES["PreFork"] + LOOPBACK + ["--pid_file", str(pid_file)]
    watcher = PidFileWatcher(pid_file)
    try:
        if background:
            servers.adopt_pid_file(pid_file)
            done = servers.launch(args + ["--background", "--log_file", str(tmp_path / f"{name}.log")],
                                  tmp_path / f"{name}.out")
            assert done.returncode == 0, done.stdout
        else:
            servers.start(args)
        wait_until(lambda: watcher.seen, what="the watcher to read the file")
    finally:
        seen = watcher.finish()
    return pid_from_file(pid_file), seen


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_pid_file_is_never_seen_partial(servers, tmp_path, mode):
    """Written to a temporary file and renamed into place: a reader never sees a part of a pid."""
    pid, seen = _watch_start(servers, tmp_path, "server", mode == "background")
    assert pid is not None and f"{pid}\n" in seen
    partial = [text for text in seen if text and not re.fullmatch(r"[1-9][0-9]*\n", text)]
    assert not partial, f"contents seen while starting: {seen}"


def test_pid_file_is_never_seen_empty(servers, tmp_path):
    """Once the file exists it names the server (an empty pid file is what breaks init scripts)."""
    empty = {}
    for attempt, background in enumerate([True, False, True, False, True]):
        _pid, seen = _watch_start(servers, tmp_path, f"server{attempt}", background)
        if "" in seen:
            empty[("background" if background else "foreground", attempt)] = seen[""]
            break
    assert not empty, f"the pid file was read empty (mode, attempt): count {empty}"


# -- two at once ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_servers_started_together_exactly_one_runs(servers, tmp_path):
    pid_file = tmp_path / "server.pid"
    args = ["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)]
    for round_ in range(10):
        pair = [servers.start(args, wait=False) for _ in range(2)]

        def settled(pair=pair):
            return all(p.proc.poll() is not None or "Binding to" in p.log_text() for p in pair)

        wait_until(settled, what=f"round {round_}: both servers to bind or exit")
        running = [p for p in pair if p.proc.poll() is None]
        refused = [p for p in pair if p.proc.poll() is not None]
        assert len(running) == 1 and len(refused) == 1, \
            f"round {round_}: " + " | ".join(p.log_text() for p in pair)
        loser, winner = refused[0], running[0]
        assert loser.wait_exit() == 1
        assert "already running as pid" in loser.log_text()
        assert "Binding to" not in loser.log_text()
        assert pid_from_file(pid_file) == winner.pid
        winner.wait_ready(1)
        assert served(echo(winner.port))
        winner.signal(signal.SIGTERM)
        assert winner.wait_exit() == 0
        assert not pid_file.exists()
