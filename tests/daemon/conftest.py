"""Fixtures for the daemon tests: servers, stray daemons, world-readable dirs, a throw-away CA.

These tests run as root (so does CI) and serve as nobody/nogroup: ``start``
and ``launch`` add ``--user nobody`` unless the test names a user or group
(or passes ``default_user=None``: started as root with neither, a server
stays root, as Net::Server does).  The interpreter lives under a directory
nobody cannot read, which is the point: the server must have imported
everything before it drops privileges.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ServerProcess
from daemontools import group_members, kill_quietly, launch, pid_from_file
from procfs import descendants


@pytest.fixture(autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        pytest.skip("the daemon tests run as root (privilege drop, chroot, ports below 1024)")


def _with_user(args, user):
    named = any(word.lstrip("-").split("=")[0] in ("user", "group") for word in args)
    return list(args) if named or user is None else [*args, "--user", user]


@pytest.fixture
def servers():
    """Start and track server processes; everything is killed after the test.

    ``servers.start(args, ...)``: a ServerProcess (the harness's child).
    ``servers.launch(args, out_path)``: run a launcher to completion
    (``--background``); its process group is killed afterwards.
    ``servers.adopt(pid)`` / ``servers.adopt_pid_file(path)``: a daemon that
    is not our child, by pid or through its pid file (read at the end).
    """
    started = []
    strays = []
    groups = []
    pid_files = []

    class Starter:
        def start(self, args, bindings=1, wait=True, default_user="nobody", **kwargs) -> ServerProcess:
            server = ServerProcess(_with_user(args, default_user), wait=False, **kwargs)
            started.append(server)
            if wait:
                server.wait_ready(bindings)
            return server

        def launch(self, args, out_path, default_user="nobody", **kwargs):
            done = launch(_with_user(args, default_user), out_path, **kwargs)
            groups.append(done.pid)
            return done

        def adopt(self, pid):
            if pid:
                strays.append(pid)

        def adopt_pid_file(self, path):
            pid_files.append(path)

    try:
        yield Starter()
    finally:
        for path in pid_files:  # a backgrounded daemon: its pid is in its pid file
            pid = pid_from_file(path)
            if pid:
                strays.append(pid)
        for pid in strays:
            if pid > 1 and pid != os.getpid():
                tree = descendants(pid)
                kill_quietly(pid)
                for member in tree:
                    kill_quietly(member)
        for pgid in groups:
            if pgid != os.getpgrp():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
        for server in started:
            members = group_members(server.pid)
            server.stop()
            print(f"--- log of {' '.join(server.command[1:])} (pid {server.pid}) ---\n{server.log_text()}")
            for pid in members:
                kill_quietly(pid)


@pytest.fixture
def world_dir():
    """A fresh directory under /tmp that nobody can traverse (tmp_path is root-only, mode 700)."""
    path = Path(tempfile.mkdtemp(prefix="netserver-daemon-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class TLSFiles:
    ca: Path             # the CA certificate (PEM) clients trust
    cert: Path           # server certificate chain for localhost / 127.0.0.1
    key: Path            # its private key
    other_key: Path      # a key that does not match ``cert``
    client_cert: Path    # a client certificate issued by the CA
    client_key: Path
    other_ca: Path       # a second, unrelated CA
    other_cert: Path     # a server certificate issued by the second CA
    other_cert_key: Path
    encrypted_key: Path  # ``key`` encrypted with PASSWORD
    password: str = "s3cret-pass"


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> TLSFiles:
    trustme = pytest.importorskip("trustme")
    from cryptography.hazmat.primitives import serialization

    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client.example", common_name="test-client")
    other_ca = trustme.CA()
    other = other_ca.issue_cert("localhost", "127.0.0.1")

    def write(name, blob) -> Path:
        path = base / name
        blob.write_to_path(str(path))
        return path

    files = TLSFiles(
        ca=write("ca.pem", ca.cert_pem),
        cert=base / "server.pem",
        key=write("server.key", server.private_key_pem),
        other_key=write("client-as-server.key", client.private_key_pem),
        client_cert=base / "client.pem",
        client_key=write("client.key", client.private_key_pem),
        other_ca=write("other-ca.pem", other_ca.cert_pem),
        other_cert=base / "other.pem",
        other_cert_key=write("other.key", other.private_key_pem),
        encrypted_key=base / "server-encrypted.key",
    )
    files.cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    files.other_cert.write_bytes(b"".join(blob.bytes() for blob in other.cert_chain_pems))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    files.encrypted_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(files.password.encode())))
    return files
