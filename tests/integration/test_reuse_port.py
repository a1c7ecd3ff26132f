"""reuse_port: each PreFork child has its own SO_REUSEPORT socket; HUP, TTOU and QUIT lose nothing.

Runs in its own network namespace (root only) so that net.ipv4.tcp_migrate_req
can be set to 1 there without touching the host: with it, connections queued
on a retiring child's socket move to a sibling instead of being reset.
"""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from harness import ROOT, TIMEOUT, python_env

pytestmark = [pytest.mark.root, pytest.mark.skipif(not shutil.which("unshare"),
                                                   reason="needs unshare for a network namespace")]

# A network namespace, and a PID namespace whose first process is the script: when it exits, or
# unshare is killed on a timeout (--kill-child), the kernel kills the server and its children too,
# so nothing outlives the test inside a namespace no one can see.
NAMESPACES = ["--net", "--pid", "--fork", "--kill-child"]

SCRIPT = textwrap.dedent("""
    import json, os, re, signal, socket, subprocess, sys, threading, time
    sys.path.insert(0, os.path.join(os.getcwd(), "tests", "support"))  # run with cwd at the repository root
    from harness import read_all
    server = subprocess.Popen([sys.executable, "-m", "netserver", "PreFork", "--port", "127.0.0.1:0",
                               "--user", "root", "--reuse_port", "--min_servers", "3", "--max_servers", "6",
                               "--check_for_spawn", "0.1"], stderr=subprocess.PIPE, text=True)
    port = None
    log = []
    arrived = threading.Condition()

    def drain():  # every line the server writes, for as long as it runs
        for line in server.stderr:
            with arrived:
                log.append(line)
                arrived.notify_all()
        with arrived:
            log.append("")  # its end
            arrived.notify_all()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 20
    seen = 0
    while port is None:
        with arrived:
            arrived.wait_for(lambda: len(log) > seen, timeout=max(0.01, deadline - time.monotonic()))
            new = log[seen:]
        seen += len(new)
        if not new or "" in new or time.monotonic() > deadline:
            server.kill()
            sys.exit("no 'Binding to' line from the server: " + "".join(log))
        for line in new:
            match = re.search(r"Binding to TCP port (\\d+)", line)
            port = port or (int(match.group(1)) if match else None)
    done, failures, stop = [0], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"hi\\nquit\\n")
                    data = read_all(s, 10)
                if data.count(b"You said") != 2:
                    failures.append(repr(data[:80]))
                done[0] += 1
            except OSError as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]  # a failing exit does not wait for them
    for t in threads:
        t.start()
    def settle(count):
        target = done[0] + count
        deadline = time.monotonic() + 20
        while done[0] < target:
            if time.monotonic() > deadline:
                sys.exit(f"only {done[0]} of {target} connections within 20 s; failures: {failures[:3]}")
            time.sleep(0.01)
    def restarted(count):
        deadline = time.monotonic() + 20
        while sum("inherited fd" in l for l in log) < count:
            if time.monotonic() > deadline:
                sys.exit(f"HUP {count} did not re-exec within 20 s: " + "".join(log[-20:]))
            time.sleep(0.01)

    def listening():
        with open("/proc/net/tcp") as f:
            return sum(1 for line in f.readlines()[1:]
                       if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port)

    settle(100)
    own = 0
    for hup in range(1, 4):
        server.send_signal(signal.SIGHUP)
        restarted(hup)
        settle(150)
        own = max(own, listening())
        server.send_signal(signal.SIGTTOU)
        settle(100)
    stop.set()
    for t in threads:
        t.join(20)
    server.send_signal(signal.SIGQUIT)
    server.wait(20)
    print(json.dumps({"done": done[0], "failures": failures, "listening": own, "code": server.returncode,
                      "inherited": sum("inherited fd" in l for l in log)}))
""")


@pytest.mark.slow
def test_hup_and_ttou_under_load_lose_nothing_with_per_child_sockets(tmp_path):
    script = tmp_path / "load.py"
    script.write_text(SCRIPT)
    command = ("ip link set lo up; sysctl -qw net.ipv4.tcp_migrate_req=1; "
               f"exec {sys.executable} {script}")
    done = subprocess.run(["unshare", *NAMESPACES, "sh", "-c", command], capture_output=True, text=True,
                          timeout=TIMEOUT * 9, cwd=ROOT, env=python_env())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    result = json.loads(lines[-1])
    print(result["done"], "connections,", len(result["failures"]), "failures")
    assert result["failures"] == [], result["failures"][:5]
    assert result["done"] >= 900
    assert result["inherited"] == 3  # every HUP re-exec'd with the shared socket kept
    assert result["listening"] >= 3  # the shared socket plus the children's own
    assert result["code"] == 0
