"""A hostile local user: the service user (nobody) tries to make root write, chown or truncate
files it should not (issue 14, findings 1-3).

The attacker is simulated by the test (root) doing what nobody could do in a directory nobody
owns: replace the log file, the socket file, the scoreboard or the pid file with a symlink to
a root-owned victim.  Before the fix root followed each of those links.  Root only (the daemon
suite's conftest skips with a message otherwise).
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
    NOBODY, Held, alive, echo, fd_links, lines_matching, live_children, pid_from_file,
    served, status, wait_until,
)

LOOPBACK = ["--port", "127.0.0.1:0"]
PREFORK = ["PreFork", "--min_servers", "2", "--max_servers", "2"]


@pytest.fixture
def victim(tmp_path):
    """A root-owned file the attacker wants: the test checks it is left exactly as it was."""
    path = tmp_path / "victim"
    path.write_text("SECRET-root-only\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def nobody_dir(world_dir):
    """A directory owned by nobody (the service user can create, rename and unlink in it)."""
    path = world_dir / "owned-by-nobody"
    path.mkdir()
    os.chown(path, NOBODY, NOBODY)
    return path


def untouched(victim) -> bool:
    st = os.lstat(victim)
    return st.st_uid == 0 and victim.read_text() == "SECRET-root-only\n"


def _start_logging(servers, log, args=PREFORK):
    server = servers.start(args + LOOPBACK + ["--log_file", str(log), "--log_level", "3"], wait=False)
    wait_until(lambda: lines_matching(log, r"Binding to"), what="the server to bind")
    server.port = int(re.search(r"port (\d+)", lines_matching(log, r"Binding to")[0]).group(1))
    return server


# -- finding 1: log file, access log, UNIX socket ------------------------------------------------


def test_usr1_does_not_follow_a_log_symlink_planted_by_the_service_user(servers, nobody_dir, victim):
    log = nobody_dir / "server.log"
    server = _start_logging(servers, log)
    wait_until(lambda: os.stat(log).st_uid == NOBODY, what="the log to be handed over (by descriptor)")
    os.rename(log, nobody_dir / "server.log.1")  # what logrotate does ...
    os.symlink(victim, log)  # ... and what nobody does before the USR1
    server.signal(signal.SIGUSR1)
    wait_until(lambda: lines_matching(nobody_dir / "server.log.1", r"Could not reopen log file"),
               what="the refusal in the old log")
    assert untouched(victim)
    assert served(echo(server.port))  # and the server goes on


def test_usr1_does_not_follow_an_access_log_symlink(servers, nobody_dir, victim):
    access = nobody_dir / "access.log"
    log = nobody_dir / "server.log"
    server = _start_logging(servers, log, ["HTTP", "--server_type", "PreFork", "--min_servers", "1",
                                           "--max_servers", "1", "--access_log_file", str(access)])
    wait_until(lambda: os.stat(access).st_uid == NOBODY, what="the access log to be handed over")
    os.rename(access, nobody_dir / "access.log.1")
    os.symlink(victim, access)
    server.signal(signal.SIGUSR1)
    wait_until(lambda: lines_matching(log, r"Could not reopen the access log"), what="the refusal")
    assert untouched(victim)


def test_a_log_file_that_is_a_symlink_is_refused_at_start(victim, nobody_dir):
    log = nobody_dir / "server.log"
    os.symlink(victim, log)
    result = run_command(["Single"] + LOOPBACK + ["--user", "nobody", "--log_file", str(log)])
    assert result.returncode != 0
    assert "is a symbolic link" in result.stderr, result.stderr
    assert untouched(victim)


def test_a_log_below_a_directory_the_service_user_can_replace_is_refused(nobody_dir):
    inner = nobody_dir / "logs"  # root-owned, but nobody can rename it and put a symlink there
    inner.mkdir()
    log = inner / "server.log"
    result = run_command(["Single"] + LOOPBACK + ["--user", "nobody", "--log_file", str(log)])
    assert result.returncode != 0
    assert lines_matching(log, r"ERROR Refusing to start: .*directory .* is writable by nobody"), log.read_text()


def test_socket_hand_over_does_not_follow_a_symlink(tmp_path, world_dir, victim):
    """The hand-over step itself, in process: the socket file replaced by a link to a root file."""
    import netserver
    from netserver import privileges

    sockdir = world_dir / "sock"
    sockdir.mkdir()
    os.chmod(sockdir, 0o1777)
    path = sockdir / "s.sock"
    quiet = type("Quiet", (netserver.Server,), {"command_line": False})
    server = quiet(str(path))
    try:
        os.unlink(path)
        os.symlink(victim, path)
        with pytest.raises(netserver.ServerError, match="symbolic link"):
            server._hand_over_files(privileges.plan_identity("nobody", None))
        assert untouched(victim)
    finally:
        server.server_close()


def test_hup_with_a_symlink_at_the_socket_path_keeps_serving(servers, world_dir, victim):
    sockdir = world_dir / "sock"
    sockdir.mkdir()
    os.chmod(sockdir, 0o1777)  # nobody may create and remove its socket; so may an attacker
    path = sockdir / "s.sock"
    server = servers.start(["PreFork", "--min_servers", "1", "--max_servers", "1", "--port", f"{path}|unix"])
    wait_until(lambda: os.lstat(path).st_uid == NOBODY, what="the socket file to be handed over")
    os.unlink(path)  # nobody owns the socket file: it may remove it ...
    os.symlink(victim, path)  # ... and plant a link before the HUP
    server.signal(signal.SIGHUP)
    server.wait_for(r"Binding to .*inherited fd")
    assert untouched(victim)
    wait_until(lambda: live_children(server.pid), what="a child of the new image")
    assert alive(server.pid) and "Refusing" not in server.log_text()


# -- finding 2: scoreboard, pid file contents, lock_file -----------------------------------------


def test_scoreboard_symlink_is_not_truncated(servers, tmp_path, victim):
    pid_file = tmp_path / "server.pid"
    os.symlink(victim, str(pid_file) + ".scoreboard")
    server = servers.start(PREFORK + LOOPBACK + ["--pid_file", str(pid_file)])
    assert served(echo(server.port))
    assert untouched(victim)
    assert not os.path.islink(str(pid_file) + ".scoreboard")


def test_pid_file_symlink_target_is_never_read_into_the_log(tmp_path, victim):
    pid_file = tmp_path / "server.pid"
    os.symlink(victim, pid_file)
    result = run_command(["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)])
    assert "SECRET" not in result.stderr + result.stdout
    assert result.returncode != 0 and "symbolic link" in result.stderr, result.stderr
    assert untouched(victim)


def test_pid_file_garbage_is_not_echoed(servers, tmp_path):
    pid_file = tmp_path / "server.pid"
    pid_file.write_text("SECRET 123\n")
    server = servers.start(["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)])
    server.wait_for(r"Replacing stale pid file")
    assert "SECRET" not in server.log_text()


def test_lock_file_symlink_target_is_not_created(servers, tmp_path):
    missing = tmp_path / "created-by-root"
    lock = tmp_path / "accept.lock"
    os.symlink(missing, lock)
    result = run_command(PREFORK + LOOPBACK + ["--serialize", "flock", "--lock_file", str(lock)])
    assert not os.path.lexists(missing), "root created the symlink's target"
    assert result.returncode != 0 and "symbolic link" in result.stderr, result.stderr


# -- finding 3: the pid file stays root's; orphans stop at once ------------------------------------


def test_pid_file_is_root_owned_and_children_do_not_hold_it(servers, tmp_path):
    pid_file = tmp_path / "server.pid"
    server = servers.start(PREFORK + LOOPBACK + ["--pid_file", str(pid_file)])
    wait_until(lambda: len(live_children(server.pid)) == 2, what="two children")
    assert os.stat(pid_file).st_uid == 0
    for child in live_children(server.pid):
        assert str(pid_file) not in fd_links(child).values(), f"child {child} holds the pid file"


@pytest.mark.slow
@pytest.mark.parametrize("identity", [["--user", "root"], []], ids=["same-user", "dropped-to-nobody"])
def test_kill_9_of_the_parent_stops_the_children_at_once_and_frees_the_pid_file(servers, tmp_path, identity):
    """With a drop in the child too: changing ids clears PR_SET_PDEATHSIG, which the child sets again."""
    pid_file = tmp_path / "server.pid"
    server = servers.start(PREFORK + LOOPBACK + ["--pid_file", str(pid_file), "--max_requests", "0"] + identity)
    wait_until(lambda: len(live_children(server.pid)) == 2, what="two children")
    kids = live_children(server.pid)
    # the fixture adds --user nobody when the test names no user: the variant really drops (each child
    # drops right after its fork, so a child just listed may not have yet)
    wait_until(lambda: {status(kid)["Uid"][0] for kid in kids} == {0 if identity else NOBODY},
               what="the children under the expected user")
    held = Held(server.port)  # one child busy with a connection
    busy = held.wait_greeted()
    stop = threading.Event()

    def load():  # steady load: the idle child never has 2 s to itself
        while not stop.is_set():
            try:
                echo(server.port, timeout=1)
            except OSError:
                time.sleep(0.01)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        os.kill(server.pid, signal.SIGKILL)
        idle = [kid for kid in kids if kid != busy]
        wait_until(lambda: not any(alive(kid) for kid in idle), timeout=1.0,
                   what="the idle orphan to stop within 1 s")
        # The busy child is finishing its connection; the pid file is free meanwhile.
        again = servers.start(["Single", "--user", "root"] + LOOPBACK + ["--pid_file", str(pid_file)])
        assert pid_from_file(pid_file) == again.pid
    finally:
        stop.set()
        loader.join(TIMEOUT)
        held.close()


def test_log_file_dev_stderr_still_works_and_is_not_handed_over(servers):
    """/dev/stderr is a symlink, but the kernel's: followed, and a pipe is never chowned."""
    server = servers.start(PREFORK + LOOPBACK + ["--log_file", "/dev/stderr", "--log_level", "3"])
    assert served(echo(server.port))
    server.wait_for(r"CONNECT")
    assert "Refusing" not in server.log_text()
