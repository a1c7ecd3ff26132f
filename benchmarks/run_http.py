"""HTTP benchmark: netserver's HTTP personality against gunicorn, in one run.

    python benchmarks/run_http.py [--duration 5] [--reps 3] [--workers 4] [--connections 50]

Each server serves benchmarks/hello_wsgi.py:app on a loopback port with the
same number of worker processes; wrk drives it with keep-alive and with
``Connection: close``.  Cells are interleaved (rep 1 of every server, then
rep 2, …) so drift on a shared machine hits all alike; the table shows the
median, the spread, and the ratio to gunicorn sync measured in the same run.
A server that is not installed (gunicorn) is skipped with a note.  Needs
``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port() -> int:
    # The benchmark may pick a port this way: it owns the machine while it runs.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers(workers: int) -> Dict[str, List[str]]:
    py = sys.executable
    table = {
        "netserver-prefork": [py, "-m", "netserver", "HTTP", "--app", "hello_wsgi:app", "--server_type", "PreFork",
                              "--host", "127.0.0.1", "--port", "{port}", "--log_level", "1", "--user", "root",
                              "--min_servers", str(workers), "--max_servers", str(workers),
                              "--min_spare_servers", "0", "--max_spare_servers", str(workers),
                              "--max_requests", "0"],
        "netserver-preforksimple": [py, "-m", "netserver", "HTTP", "--app", "hello_wsgi:app",
                                    "--server_type", "PreForkSimple", "--host", "127.0.0.1", "--port", "{port}",
                                    "--log_level", "1", "--user", "root", "--max_servers", str(workers),
                                    "--max_requests", "0"],
    }
    if subprocess.run(["perl", "-MNet::Server::HTTP", "-e1"], capture_output=True).returncode == 0:
        table["perl-netserver-http"] = ["perl", os.path.join(HERE, "peers", "netserver_http.pl"), "{port}"]
    else:
        print("note: Perl's Net::Server is not installed (apt-get install libnet-server-perl): skipped",
              file=sys.stderr)
    if shutil.which("nginx"):
        print("note: nginx is installed but not driven by this harness yet", file=sys.stderr)
    gunicorn = shutil.which("gunicorn") or (os.path.join(os.path.dirname(py), "gunicorn"))
    if os.path.exists(gunicorn):
        for worker in ("sync", "gthread"):
            table[f"gunicorn-{worker}"] = [gunicorn, "-w", str(workers), "-k", worker, "-b", "127.0.0.1:{port}",
                                           "--log-level", "error", "hello_wsgi:app"]
    else:
        print("note: gunicorn not installed (pip install gunicorn): skipped", file=sys.stderr)
    return table


def wait_ready(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout}s")


def run_wrk(port: int, duration: float, connections: int, close: bool) -> Tuple[float, int]:
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, round(duration))}s", f"http://127.0.0.1:{port}/"]
    if close:
        command[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors += sum(int(x) for x in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match:
        errors += int(match.group(1))
    return rate, errors


def measure(name: str, command: List[str], args: argparse.Namespace, close: bool) -> Tuple[float, int]:
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_ready(port)
        run_wrk(port, 1, args.connections, close)  # warm-up
        return run_wrk(port, args.duration, args.connections, close)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", default="", help="regex: run only matching servers")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    table = {k: v for k, v in servers(args.workers).items() if re.search(args.only, k)}
    results: Dict[Tuple[str, str], List[Tuple[float, int]]] = {}
    for _rep in range(args.reps):
        for mode in ("keep-alive", "close"):
            for name, command in table.items():
                results.setdefault((name, mode), []).append(measure(name, command, args, mode == "close"))
    print(f"\nHTTP hello world, {args.workers} workers, {args.connections} connections, "
          f"{args.duration:g}s x {args.reps} (median, spread, ratio to gunicorn-sync in this run)\n")
    print("| server | mode | requests/s | spread | errors | vs gunicorn-sync |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode in ("keep-alive", "close"):
        base = results.get(("gunicorn-sync", mode))
        base_rate = statistics.median(r for r, _ in base) if base else None
        for name in table:
            cells = results[(name, mode)]
            rates = [r for r, _ in cells]
            median = statistics.median(rates)
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            ratio = f"{median / base_rate:.2f}x" if base_rate else "-"
            print(f"| {name} | {mode} | {median:.0f} | {spread} | {sum(e for _, e in cells)} | {ratio} |")


if __name__ == "__main__":
    main()
