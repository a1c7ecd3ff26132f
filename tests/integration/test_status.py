"""netserver status: the live pool read from the scoreboard file by another process."""

import os
import re
import socket
import subprocess
import sys

from harness import ROOT, TIMEOUT, ServerProcess, echo_exchange, python_env


def status(*args):
    return subprocess.run([sys.executable, "-m", "netserver", "status", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=ROOT, env=python_env())


def test_status_shows_children_states_requests_and_clients(tmp_path):
    pid_file = str(tmp_path / "server.pid")
    with ServerProcess(["PreFork", "--port", "127.0.0.1:0", "--user", "root", "--min_servers", "3",
                        "--pid_file", pid_file]) as server:
        for _ in range(5):
            echo_exchange(("127.0.0.1", server.port))
        held = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        try:
            greeting = held.recv(100)
            serving_pid = int(re.search(rb"\((\d+)\)", greeting).group(1))
            local = "%s:%d" % held.getsockname()
            done = status("--pid_file", pid_file)
            assert done.returncode == 0, done.stderr
            text = done.stdout
            assert f"parent {server.pid} (running)" in text
            assert "5 requests served" in text
            row = next(line for line in text.splitlines() if line.split()[:1] == [str(serving_pid)])
            assert row.split()[1] == "busy" and row.endswith(local)
            assert len([line for line in text.splitlines()[2:] if line.strip()]) >= 3  # one row per child
        finally:
            held.close()
        assert status("--scoreboard_file", pid_file + ".scoreboard").returncode == 0
    assert not os.path.exists(pid_file + ".scoreboard")  # removed with the server


def test_status_errors():
    assert status().returncode == 2
    missing = status("--pid_file", "/nonexistent/x.pid")
    assert missing.returncode == 3 and missing.stdout.startswith("netserver: not running"), missing
