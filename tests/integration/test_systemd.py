"""systemd: socket activation through the real systemd-socket-activate, and the notify protocol."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from harness import ROOT, TIMEOUT, ServerProcess, python_env, read_all


@pytest.fixture
def sockdir():
    path = tempfile.mkdtemp(prefix="ns-systemd-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
@pytest.mark.parametrize("personality", ["PreFork", "Single"])
def test_socket_activation_uses_the_passed_socket(sockdir, personality):
    path = os.path.join(sockdir, "activated.sock")
    command = ["systemd-socket-activate", "-l", path, sys.executable, "-m", "netserver", personality,
               "--user", "root", "--min_servers", "2"] if personality == "PreFork" else \
              ["systemd-socket-activate", "-l", path, sys.executable, "-m", "netserver", personality, "--user", "root"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=python_env(),
                            cwd=ROOT, start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(path):
            assert time.monotonic() < deadline, "systemd-socket-activate did not bind"
            time.sleep(0.02)
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(TIMEOUT)
        client.connect(path)  # the launcher execs netserver on the first connection
        client.sendall(b"hi\nquit\n")
        reply = read_all(client)
        client.close()
        assert b'You said "hi"' in reply
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=TIMEOUT)[0]
        assert "passed by systemd" in output, output
        assert "20203" not in output, "the default port, which the passed socket replaces, is not mentioned"
        assert "Binding to UNIX socket" in output
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def receive(sock: socket.socket, wanted: str, timeout: float = TIMEOUT) -> list:
    """Datagrams until one contains ``wanted``; returns them all."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            message = sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no {wanted!r} among {seen}") from None
        seen.append(message)
        if wanted in message:
            return seen


@pytest.mark.slow
def test_notify_ready_reloading_stopping_and_watchdog(sockdir):
    notify_path = os.path.join(sockdir, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    env = dict(python_env(), NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000")
    try:
        with ServerProcess(["PreFork", "--port", "127.0.0.1:0", "--user", "root", "--min_servers", "2"],
                           env=env) as server:
            messages = receive(listener, "READY=1")
            assert f"MAINPID={server.pid}" in messages[-1]
            receive(listener, "WATCHDOG=1")
            receive(listener, "STATUS=")
            server.signal(signal.SIGHUP)
            receive(listener, "RELOADING=1")
            receive(listener, "READY=1")  # the new image, same pid
            server.signal(signal.SIGTERM)
            receive(listener, "STOPPING=1")
            assert server.wait_exit() == 0
    finally:
        listener.close()
