"""host '*' where IPv6 is disabled, or IPv4 is absent: bind what exists, say so, serve.

Each test runs the server and its client inside a fresh network namespace
(``unshare --net``, root only), so the host's own network is untouched.
"""

import shutil
import subprocess
import sys
import textwrap

import pytest

from harness import ROOT, TIMEOUT, python_env

pytestmark = [pytest.mark.process, pytest.mark.root,
              pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"),
                                 reason="needs unshare and ip to make a network namespace")]

# A network namespace, and a PID namespace whose first process is the script: when it exits, or
# unshare is killed on a timeout (--kill-child), the kernel kills the server and its children too,
# so nothing outlives the test inside a namespace no one can see.
NAMESPACES = ["--net", "--pid", "--fork", "--kill-child"]

CLIENT = textwrap.dedent("""
    import os, queue, re, socket, subprocess, sys, threading, time
    sys.path.insert(0, os.path.join(os.getcwd(), "tests", "support"))  # run with cwd at the repository root
    from harness import read_all
    server = subprocess.Popen([sys.executable, "-m", "netserver", "Single", "--port", "0", "--user", "root"],
                              stderr=subprocess.PIPE, text=True)
    stderr = queue.Queue()  # every line the server writes, then "" at its end

    def drain():
        for line in server.stderr:
            stderr.put(line)
        stderr.put("")

    threading.Thread(target=drain, daemon=True).start()
    lines = []
    match = None
    deadline = time.monotonic() + {timeout}
    while match is None:
        try:
            line = stderr.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if not line or time.monotonic() > deadline:
            server.kill()
            sys.exit("no 'Binding to' line within {timeout} s: " + "".join(lines))
        lines.append(line)
        match = re.search(r"Binding to TCP port (\\d+) on host (\\S+) with (IPv\\S+)", line)
    port = int(match.group(1))
    family, address = {target}
    with socket.socket(family) as client:
        client.settimeout({timeout})
        client.connect((address, port))
        client.sendall(b"hi\\nquit\\n")
        data = read_all(client, {timeout})
    server.terminate()
    server.wait({timeout})
    sys.stdout.write("".join(lines))
    sys.stdout.write("REPLY " + repr(data) + "\\n")
""")


def run_in_netns(tmp_path, setup: str, target: str) -> str:
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(timeout=TIMEOUT, target=target))
    command = f"ip link set lo up; {setup} exec {sys.executable} {script}"
    done = subprocess.run(["unshare", *NAMESPACES, "sh", "-c", command], capture_output=True, text=True,
                          timeout=TIMEOUT * 3, cwd=ROOT, env=python_env())
    return done.stdout + done.stderr


def test_ipv6_disabled_host_star_binds_ipv4_and_says_so(tmp_path):
    output = run_in_netns(tmp_path, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1; sysctl -qw net.ipv6.conf.lo.disable_ipv6=1;",
                          "(socket.AF_INET, '127.0.0.1')")
    # Linux still lets a '::' socket bind with the sysctl set (it then carries IPv4 only); where
    # IPv6 cannot bind at all the log says "IPv6 is not usable" and 0.0.0.0 is bound. Either way
    # the server starts and IPv4 clients are served -- the breakage users report is a crash here.
    assert ("on host :: with IPv6" in output) or ("IPv6 is not usable" in output
                                                 and "on host 0.0.0.0 with IPv4" in output), output
    assert "You said" in output, output


def test_without_ipv4_address_host_star_binds_ipv6(tmp_path):
    output = run_in_netns(tmp_path, "ip addr del 127.0.0.1/8 dev lo;", "(socket.AF_INET6, '::1')")
    assert "on host :: with IPv6" in output, output
    assert "You said" in output, output
