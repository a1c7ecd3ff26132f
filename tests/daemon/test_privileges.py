"""Privilege drop, as root: bind first, then chroot, groups, gid, uid — checked in /proc.

Started as root with neither ``--user`` nor ``--group`` the server stays
root and warns once (Net::Server 2.013's code); the other tests name
``--user nobody`` (the fixture adds it).  Single and Thread drop in the process itself once bound; Fork, PreFork and
PreForkSimple keep the parent as root (so HUP can re-exec and rebind) and
drop in each child before it serves.  The ids are read from
``/proc/PID/status`` of the process that greeted a held connection.
"""

from __future__ import annotations

import grp
import http.client
import os
import signal
import socket

import pytest

from harness import ROOT, ServerProcess, run_command
from daemontools import (
    NOBODY, NOGROUP, Held, alive, echo, greeting_pid, parent_pid, port_is_free, served,
    status, wait_until,
)

LOOPBACK = ["--port", "127.0.0.1:0"]
POOL = {
    "Fork": ["Fork"],
    "PreFork": ["PreFork", "--min_servers", "1", "--max_servers", "2"],
    "PreForkSimple": ["PreForkSimple", "--max_servers", "1"],
}
DAEMON_GID = grp.getgrnam("daemon").gr_gid


def assert_identity(pid: int, uid: int, gid: int, groups) -> None:
    ids = status(pid)
    assert ids["Uid"] == [uid] * 4, f"pid {pid}: {ids}"
    assert ids["Gid"] == [gid] * 4, f"pid {pid}: {ids}"
    assert sorted(ids["Groups"]) == sorted(groups), f"pid {pid}: {ids}"
    if uid != 0:  # and no capability survived the change of user
        assert ids["CapPrm"] == ids["CapEff"] == ids["CapAmb"] == [0], f"pid {pid}: {ids}"


def serving_child(server) -> Held:
    """Hold a connection open; the held client's ``pid`` is the process serving it."""
    client = Held(server.port)
    client.wait_greeted()
    return client


# -- the forking personalities: children drop, the parent stays root ---------------------------------


@pytest.mark.parametrize("personality", ["Single", *sorted(POOL)])
def test_without_user_or_group_the_server_stays_root_and_warns_once(servers, personality):
    server = servers.start(([personality] if personality == "Single" else POOL[personality]) + LOOPBACK,
                           default_user=None)
    server.wait_for(r"WARNING User not defined, running as root")
    client = serving_child(server)
    try:
        assert_identity(client.pid, 0, 0, status(client.pid)["Groups"])
        assert status(server.pid)["Uid"] == [0, 0, 0, 0]
    finally:
        assert served(client.finish(), b"bye")
    assert server.log_text().count("User not defined") == 1
    assert "Running as user" not in server.log_text()
    if personality == "PreFork":  # a HUP re-exec does not warn again
        server.signal(signal.SIGHUP)
        server.wait_for(r"Binding to .*inherited fd")
        assert served(echo(server.port))
        assert server.log_text().count("User not defined") == 1


@pytest.mark.parametrize("personality", sorted(POOL))
def test_children_serve_as_nobody_with_user_nobody_and_the_parent_stays_root(servers, personality):
    server = servers.start(POOL[personality] + LOOPBACK)
    client = serving_child(server)
    try:
        assert client.pid != server.pid and parent_pid(client.pid) == server.pid
        assert_identity(client.pid, NOBODY, NOGROUP, [NOGROUP])
        assert status(server.pid)["Uid"] == [0, 0, 0, 0]
        assert status(server.pid)["Gid"] == [0, 0, 0, 0]
    finally:
        assert served(client.finish(), b"bye")


@pytest.mark.parametrize("words,gid,groups", [
    (["--user", "nobody", "--group", "nogroup"], NOGROUP, [NOGROUP]),
    (["--user", "65534", "--group", "65534"], NOGROUP, [NOGROUP]),
    (["--user", "nobody", "--group", "nogroup daemon"], NOGROUP, [NOGROUP, DAEMON_GID]),
    (["--group", f"{DAEMON_GID},{NOGROUP}"], DAEMON_GID, [DAEMON_GID, NOGROUP]),
], ids=["names", "numbers", "two-groups", "two-gids-default-user"])
def test_configured_user_and_groups_are_exactly_what_the_child_has(servers, words, gid, groups):
    server = servers.start(POOL["PreFork"] + LOOPBACK + words)
    client = serving_child(server)
    try:
        # A group alone changes the groups only: the user stays the one that started (root).
        assert_identity(client.pid, NOBODY if "--user" in words else 0, gid, groups)
        assert status(server.pid)["Uid"] == [0, 0, 0, 0]
    finally:
        assert served(client.finish(), b"bye")


def test_ids_are_the_same_after_hup(servers):
    server = servers.start(POOL["PreFork"] + LOOPBACK + ["--user", "nobody", "--group", "nogroup daemon"])
    before = serving_child(server)
    before_pid = before.pid
    assert served(before.finish(), b"bye")
    server.signal(signal.SIGHUP)
    server.wait_for(r"Binding to .*inherited fd")
    wait_until(lambda: not alive(before_pid), what="the old child to retire")
    client = serving_child(server)
    try:
        assert client.pid != before_pid
        assert_identity(client.pid, NOBODY, NOGROUP, [NOGROUP, DAEMON_GID])
        assert status(server.pid)["Uid"] == [0, 0, 0, 0]
    finally:
        assert served(client.finish(), b"bye")


# -- one process: the server itself drops after binding ------------------------------------------


@pytest.mark.parametrize("personality", ["Single", "Thread"])
def test_single_process_server_drops_itself_after_binding(servers, personality):
    server = servers.start([personality] + LOOPBACK)
    server.wait_for(r"Running as user nobody \(65534\), group nogroup \(65534\)")
    assert_identity(server.pid, NOBODY, NOGROUP, [NOGROUP])
    reply = echo(server.port)
    assert served(reply) and greeting_pid(reply) == server.pid


@pytest.mark.parametrize("personality", ["Single", "PreFork"])
def test_user_root_keeps_root(servers, personality):
    server = servers.start(([personality] if personality == "Single" else POOL[personality])
                           + LOOPBACK + ["--user", "root"])
    client = serving_child(server)
    try:
        assert status(client.pid)["Uid"] == [0, 0, 0, 0]
    finally:
        assert served(client.finish(), b"bye")


def test_privileged_port_bound_as_root_served_as_nobody(servers):
    port = 981
    if not port_is_free(port):
        pytest.skip(f"127.0.0.1:{port} is busy")
    server = servers.start(["Single", "--port", f"127.0.0.1:{port}"])
    assert server.port == port
    server.wait_for(r"Running as user nobody")
    reply = echo(port)
    assert served(reply)
    assert_identity(greeting_pid(reply), NOBODY, NOGROUP, [NOGROUP])


# -- chroot -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("personality", ["Single", "PreFork"])
def test_chroot_then_serve(servers, world_dir, personality):
    jail = world_dir / "jail"
    jail.mkdir()
    args = ([personality] if personality == "Single" else POOL[personality]) + LOOPBACK + ["--chroot", str(jail)]
    server = servers.start(args)
    client = serving_child(server)
    try:
        assert os.readlink(f"/proc/{client.pid}/root") == str(jail)
        assert_identity(client.pid, NOBODY, NOGROUP, [NOGROUP])
        if personality == "PreFork":
            assert os.readlink(f"/proc/{server.pid}/root") == "/"
    finally:
        # Everything the handler needs was imported before the chroot.
        assert served(client.finish(), b"bye")
    assert served(echo(server.port))
    assert not os.listdir(jail), "the server wrote into the chroot"


def test_a_chrooted_http_child_has_what_it_imports_on_first_use(servers, world_dir):
    """The HTTP personality imports ``html`` (for its pages) and its CGI runner when first used, so a
    server without them carries neither; under ``chroot`` they are imported before it."""
    jail = world_dir / "jail"
    jail.mkdir()
    server = servers.start(["HTTP", "--server_type", "PreForkSimple", "--max_servers", "1"] + LOOPBACK
                           + ["--chroot", str(jail)])
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", "/?q=<b>")  # the default app's page escapes the query string
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 200, body
    assert b"q=&lt;b&gt;" in body
    assert "Traceback" not in server.log_text()


def test_chroot_to_a_missing_directory_is_an_option_error(tmp_path):
    done = run_command(["PreFork", "--port", "127.0.0.1:0", "--chroot", str(tmp_path / "missing")])
    assert done.returncode == 2, done.stderr
    assert "chroot" in done.stderr and "no such directory" in done.stderr
    assert "Binding to" not in done.stderr


@pytest.mark.parametrize("words,message", [
    (["--user", "no_such_user_xyz"], "no such user"),
    (["--group", "no_such_group_xyz"], "no such group"),
    (["--group", "nogroup no_such_group_xyz"], "no such group"),
])
def test_unknown_user_or_group_is_an_option_error(words, message):
    done = run_command(["PreFork", "--port", "127.0.0.1:0"] + words)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Binding to" not in done.stderr


def test_a_chrooted_child_writes_its_first_log_line(world_dir, tmp_path):
    """netserver imports its log handlers on the first line written (issue 12); under ``chroot``
    that line may come from a child that can no longer read the interpreter's files, so they are
    imported before the chroot.  Here the first line is a refused client's, at the default
    ``log_level`` 1, from a ForkMixIn child already in its jail."""
    jail = world_dir / "jail"
    jail.mkdir()
    script = tmp_path / "server.py"
    script.write_text(
        "import socketserver, sys\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "import netserver\n"
        "class S(netserver.ForkMixIn, socketserver.TCPServer):\n"
        f"    chroot = {str(jail)!r}\n"
        "    user = 'nobody'\n"
        "    cidr_deny = ['127.0.0.0/8']\n"
        "server = S(('127.0.0.1', 0), socketserver.StreamRequestHandler)\n"
        "print('port', server.server_address[1], flush=True)\n"
        "server.serve_forever()\n")
    with ServerProcess([], script=str(script), wait=False) as server:
        port = int(server.wait_for(r"^port (\d+)$")[0].group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.recv(1) == b""  # refused: closed without a byte
        server.wait_for("Denying connection")
        assert "Traceback" not in server.log_text()
