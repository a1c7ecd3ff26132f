"""The strictest judge: CPython's own tests of socketserver, http.server and their stdlib users, against compat.

Each suite runs in a child interpreter (run_cpython_tests.py) where
``socketserver`` and ``http.server`` are the compat modules, so
``xmlrpc.server``, ``wsgiref.simple_server`` and ``logging.config`` build
their servers on them too; that script checks the substitution took before
running anything.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


# suite -> the fewest tests that must really run (so an empty collection cannot pass)
SUITES = {"socketserver": 25, "httpservers": 55, "xmlrpc": 90, "wsgiref": 35, "logging": 16}


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.slow
def test_cpython_suite_passes_against_compat(suite):
    done = subprocess.run([sys.executable, os.path.join(HERE, "run_cpython_tests.py"), suite],
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if done.stdout.startswith("SKIP:"):
        pytest.skip(done.stdout.strip())
    assert "substituted: socketserver -> compat.socketserver, http.server -> compat.http_server" in output
    summary = [line for line in output.splitlines() if line.endswith("skipped") and "passed" in line]
    print(summary[-1] if summary else output[-2000:])
    assert done.returncode == 0, output[-4000:]
    passed = int(summary[-1].split()[0])
    assert passed >= SUITES[suite], summary


def test_compat_socketserver_script_opts_into_the_command_line(tmp_path):
    """With ``command_line = True`` a script changed by one import line takes --port from its command line."""
    script = tmp_path / "echo.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(HERE))!r})\n"
        "import compat.socketserver as socketserver\n"
        "socketserver.TCPServer.command_line = True\n"
        "class Echo(socketserver.StreamRequestHandler):\n"
        "    def handle(self):\n"
        "        self.wfile.write(self.rfile.readline())\n"
        "with socketserver.TCPServer(('127.0.0.1', 1), Echo) as server:\n"
        "    print('LISTENING', server.server_address[1], flush=True)\n"
        "    server.serve_forever()\n")
    import socket
    import signal
    proc = subprocess.Popen([sys.executable, str(script), "--port", "127.0.0.1:0", "--log_level", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split()[1])
        assert port != 1  # --port moved the server away from the script's address
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"hello\n")
            assert client.makefile("rb").readline() == b"hello\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
