"""The parent's hooks, observed in real servers: each hook writes a line to a file.

PreFork: ``run_n_children_hook``, ``idle_loop_hook`` on each pass of the
parent's loop, ``child_communication`` (a socketpair per child, the parent's
``child_is_talking_hook(sock)`` reads), ``parent_read_hook`` with Net::Server's
``"<pid> waiting|processing"`` lines, ``cleanup_dead_child_hook``;
``pre_server_close_hook`` before the children are stopped and
``post_child_cleanup_hook`` after.  Fork and Thread: ``pre_accept_hook``.
"""

from __future__ import annotations

import signal

import pytest

from harness import TIMEOUT, echo_exchange, python_env
from proctools import LOOPBACK, live_children, wait_until

RECORDER = """
import os, subprocess, sys
import netserver
from netserver.process.children import Child

OUT = sys.argv.pop(1)


def note(*words):
    with open(OUT, "a") as fh:
        fh.write(" ".join(str(w) for w in words) + "\\n")


class Recorder(netserver.{personality}):
    def run_n_children_hook(self, n):
        note("run_n_children", n)

    def idle_loop_hook(self, readable=()):
        note("idle", len(readable))

    def pre_accept_hook(self):
        note("pre_accept", os.getpid())

    def pre_thread_hook(self):
        note("pre_thread", os.getpid())

    def delete_child_hook(self, pid):
        note("delete_child", pid)

    def child_init_hook(self, kind=""):
        if self.config.get("child_communication"):
            self.parent_sock.sendall(f"hello from {{os.getpid()}}\\n".encode())

    def child_is_talking_hook(self, sock):
        data = sock.recv(100)
        note("talk", data.decode().strip() if data else "EOF")

    def parent_read_hook(self, line):
        note("status", line.strip())
        return False

    def cleanup_dead_child_hook(self, child):
        note("dead", child.pid)

    def pre_loop_hook(self):
        if os.environ.get("FAKE_DEAD_CHILD"):  # a child this parent counts but cannot reap
            gone = subprocess.Popen(["true"])
            gone.wait()
            self.children.add(Child(gone.pid, "fork"))
            note("fake", gone.pid)

    def pre_server_close_hook(self):
        note("pre_server_close", len(getattr(self, "children", ())))

    def post_child_cleanup_hook(self):
        note("post_child_cleanup", len(getattr(self, "children", ())))


Recorder.run()
"""


def notes(path):
    try:
        with open(path) as fh:
            return [line.split() for line in fh.read().splitlines()]
    except FileNotFoundError:
        return []


def start(servers, write_script, tmp_path, personality, *options, env=None):
    script = write_script(RECORDER.format(personality=personality))
    out = str(tmp_path / "notes.txt")
    server = servers.start([out, *LOOPBACK, *options], script=script, env=dict(python_env(), **(env or {})))
    return server, out


@pytest.mark.slow
def test_prefork_parent_hooks_in_net_server_order(servers, write_script, tmp_path, clients):
    server, out = start(servers, write_script, tmp_path, "PreFork", "--min_servers", "2", "--max_servers", "3",
                        "--min_spare_servers", "0", "--check_for_spawn", "0.1", "--child_communication")
    wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
    pids = set(live_children(server.pid))
    # Each child wrote on its socketpair; the parent's hook read it, once per child.
    wait_until(lambda: {f"{w[3]}" for w in notes(out) if w[0] == "talk"} == {str(p) for p in pids},
               what="both children to talk")
    got = notes(out)
    assert got[0] == ["run_n_children", "2"]
    # idle_loop_hook runs on every pass; on the pass a child talked it was given that socket.
    wait_until(lambda: sum(w[0] == "idle" for w in notes(out)) >= 5, what="idle_loop_hook calls")
    assert any(w == ["idle", "1"] for w in notes(out)) or any(w == ["idle", "2"] for w in notes(out))
    # parent_read_hook: Net::Server's status lines.
    wait_until(lambda: {(w[1], w[2]) for w in notes(out) if w[0] == "status"} >= {(str(p), "waiting") for p in pids},
               what="waiting status lines")
    client = clients(("127.0.0.1", server.port))
    assert client.greeted(TIMEOUT)
    wait_until(lambda: ["status", str(client.pid), "processing"] in notes(out), what="a processing line")
    client.finish_checked()
    wait_until(lambda: notes(out).count(["status", str(client.pid), "waiting"]) == 2, what="back to waiting")

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    # Each child the parent started is forgotten through delete_child_hook.
    assert {w[1] for w in notes(out) if w[0] == "delete_child"} >= {str(p) for p in pids}
    closing = [w for w in notes(out) if w[0] in ("pre_server_close", "post_child_cleanup")]
    # Before: the children still run; after: every child is gone (Net::Server's order).
    assert closing[0][0] == "pre_server_close" and int(closing[0][1]) >= 2
    assert closing[1:] == [["post_child_cleanup", "0"]]


def test_ttin_raises_min_servers_and_starts_a_child_at_once(servers, write_script, tmp_path):
    server, out = start(servers, write_script, tmp_path, "PreFork", "--min_servers", "2", "--max_servers", "4",
                        "--min_spare_servers", "0", "--max_spare_servers", "4", "--check_for_spawn", "0.1",
                        "--log_level", "3")
    wait_until(lambda: len(live_children(server.pid)) == 2, what="2 children")
    server.signal(signal.SIGTTIN)
    server.wait_for(r"Received TTIN, max_servers is now 5, min_servers 3")
    wait_until(lambda: len(live_children(server.pid)) == 3, timeout=2.0, what="a third child at once")
    assert ["run_n_children", "1"] in notes(out)
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 4, min_servers 2")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 3, min_servers 1")


@pytest.mark.slow
def test_cleanup_dead_child_hook_for_a_child_reaped_elsewhere(servers, write_script, tmp_path):
    server, out = start(servers, write_script, tmp_path, "PreFork", "--min_servers", "1",
                        "--check_for_dead", "0.1", env={"FAKE_DEAD_CHILD": "1"})
    fake = wait_until(lambda: [w[1] for w in notes(out) if w[0] == "fake"], what="the fake child")[0]
    wait_until(lambda: ["dead", fake] in notes(out), what="cleanup_dead_child_hook")
    server.wait_for(rf"Child {fake} vanished without being reaped here")


def test_fork_and_thread_call_pre_accept_hook_before_each_accept(servers, write_script, tmp_path):
    for personality in ("Fork", "Thread"):
        sub = tmp_path / personality
        sub.mkdir()
        server, out = start(servers, write_script, sub, personality)
        for _ in range(2):
            echo_exchange(("127.0.0.1", server.port), [b"hi"])
        wait_until(lambda out=out: [w[0] for w in notes(out)].count("pre_accept") == 2, what="2 pre_accept_hook calls")
        # In the accepting process: Fork's parent, Thread's one process.
        assert {w[1] for w in notes(out) if w[0] == "pre_accept"} == {str(server.pid)}
        if personality == "Thread":  # and before each connection goes to a worker thread
            assert [w[0] for w in notes(out)].count("pre_thread") == 2
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0


STOPPER = """
import netserver


class Stopper(netserver.PreFork):
    def parent_read_hook(self, line):
        return line.split()[1] == "processing"  # true: the parent's loop ends, as in Net::Server


Stopper.run()
"""


def test_parent_read_hook_returning_true_stops_the_server(servers, write_script, clients):
    server = servers.start([*LOOPBACK, "--min_servers", "1", "--check_for_spawn", "0.05"],
                           script=write_script(STOPPER))
    client = clients(("127.0.0.1", server.port))
    assert client.greeted(TIMEOUT)
    server.wait_for(r"parent_read_hook returned true: stopping the server")
    assert server.wait_exit() == 0
