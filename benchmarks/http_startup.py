"""HTTP at its defaults: exec → first response, and the memory of the child that served.

    python benchmarks/http_startup.py [--starts 5] [--requests 2000] [TREE ...]

Starts ``netserver HTTP --app hello_wsgi:app --port 127.0.0.1:P`` from each
source TREE (a checkout; default: this one) ``--starts`` times, times exec
until the first response, sends ``--requests`` keep-alive requests on that
connection, then reads the USS (``Private_Clean + Private_Dirty`` of
``/proc/PID/smaps_rollup``) of the child that served them: the largest of
the children. Trees are interleaved, so two commits compare in one run
(``git worktree add /tmp/old REV``). Prints one line per tree: medians and
every value.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uss_kib(pid: str) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith(("Private_Clean", "Private_Dirty")):
                total += int(line.split()[1])
    return total


def one_start(tree: str, requests: int) -> tuple:
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "netserver", "HTTP", "--app", "hello_wsgi:app",
                               "--port", f"127.0.0.1:{port}"], cwd=HERE, env=dict(os.environ, PYTHONPATH=tree),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                break
            except OSError:
                connection.close()
                if time.perf_counter() - started > 10:
                    raise SystemExit(f"{tree}: no response within 10 s") from None
                time.sleep(0.002)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for _ in range(requests):
            connection.request("GET", "/")
            connection.getresponse().read()
        connection.close()
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        return elapsed_ms, max(uss_kib(child) for child in children)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", default=[os.path.dirname(HERE)])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    args.trees = [os.path.abspath(tree) for tree in args.trees]  # the servers run with cwd benchmarks/
    subprocess.run([sys.executable, "-m", "compileall", "-q", *[os.path.join(t, "netserver") for t in args.trees]],
                   check=True)  # bytecode first: a tree run from source is a larger image
    found = {tree: [] for tree in args.trees}
    for _ in range(args.starts):
        for tree in args.trees:
            found[tree].append(one_start(tree, args.requests))
    for tree, runs in found.items():
        starts = [round(ms) for ms, _ in runs]
        uss = [kib for _, kib in runs]
        print(f"{tree}: exec → first response {statistics.median(starts)} ms {starts}; "
              f"served child USS {statistics.median(uss)} KiB {uss}")


if __name__ == "__main__":
    main()
