"""HTTP benchmark: netserver's HTTP personality against the WSGI servers a user would pick instead.

    python benchmarks/run_http.py [--duration 4] [--reps 2] [--workers 4] [--connections 50] [--only REGEX]
    python benchmarks/run_http.py --install     # first: pip install the peers, apt-get install wrk nginx
    python benchmarks/run_http.py --profile     # py-spy: where one HTTP child spends its Python time

Each server serves ``benchmarks/hello_wsgi.py:app`` (nginx: ``return 200``
with the same body) on a loopback port; wrk drives it with keep-alive and
with ``Connection: close``.  Servers:

- ``netserver-http-defaults``: ``netserver HTTP --app hello_wsgi:app --port
  PORT`` and nothing else — what a user runs;
- ``netserver-http-classic``: the same with ``--http_event 0`` (the classic loop: one
  connection per child at a time; event-driven children are the default);
- ``netserver-prefork`` / ``netserver-preforksimple``: the same with a fixed
  pool of ``--workers`` children and ``max_requests 0``;
- Perl's Net::Server::HTTP (PreFork), when ``libnet-server-perl`` is installed;
- gunicorn sync and gthread, granian (Rust), uWSGI (C, ``--http11-socket``:
  it keeps connections open even when the client asks to close), waitress
  (threads, one process): each with ``--workers`` processes (waitress:
  threads), when pip-installed (``--install``), else skipped with a note;
- nginx ``return 200`` (``--workers`` worker processes): the box's limit.

Cells are interleaved (rep 1 of every server, then rep 2, …) so drift on a
shared machine hits all alike.  The table shows the median rate, the spread,
errors (socket errors and non-2xx), wrk's p99 latency, the server's CPU time
per request (all processes of its process group, read from ``/proc`` around
the measured window: the cost of a request, steadier than the rate on a busy
box), and ratios to gunicorn sync and granian from the same run.  Raw numbers
go to ``benchmarks/build/http-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import pyspy_table  # benchmarks/, beside this script
from bytecode import compile_bytecode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, "build")
HZ = os.sysconf("SC_CLK_TCK")
BODY = "Hello, World!\\n"

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
"""


def free_port() -> int:
    # The benchmark may pick a port this way: it owns the machine while it runs.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- peers ------------------------------------------------------------------------

PIP_PEERS = ["gunicorn", "granian", "waitress", "uwsgi"]
# netserver's own HTTP extra (the request parser): without it no netserver row can start.
PIP_OURS = ["httptools>=0.6"]


def install() -> None:
    """pip install the Python peers, apt-get install wrk and nginx; failures are reported, not fatal."""
    pip = [sys.executable, "-m", "pip", "install", "-q", *PIP_OURS, *PIP_PEERS]
    print("installing " + " ".join(PIP_OURS + PIP_PEERS) + " with pip …", file=sys.stderr)
    if subprocess.run(pip).returncode != 0:
        print("note: pip install failed for some peers; they are skipped", file=sys.stderr)
    if not shutil.which("apt-get"):
        print("note: no apt-get: install wrk and nginx by hand", file=sys.stderr)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", "wrk", "nginx", "libnet-server-perl"]
    print("installing wrk, nginx, libnet-server-perl with apt-get …", file=sys.stderr)
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            print("note: apt-get install wrk nginx libnet-server-perl failed", file=sys.stderr)


def tool(name: str) -> Optional[str]:
    """A console script of this interpreter's environment, else one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else shutil.which(name)


def servers(workers: int) -> Dict[str, List[str]]:
    """name → command ({port} and {dir} are replaced), in the order of the table."""
    py = sys.executable
    w = str(workers)
    netserver = [py, "-m", "netserver", "HTTP", "--app", "hello_wsgi:app"]
    tuned = ["--host", "127.0.0.1", "--port", "{port}", "--log_level", "1", "--user", "root", "--max_requests", "0"]
    table = {
        "netserver-http-defaults": netserver + ["--port", "{port}"],
        "netserver-http-classic": netserver + ["--port", "{port}", "--http_event", "0"],
        "netserver-prefork": netserver + tuned + ["--server_type", "PreFork", "--min_servers", w,
                                                  "--max_servers", w, "--min_spare_servers", "0",
                                                  "--max_spare_servers", w],
        "netserver-preforksimple": netserver + tuned + ["--server_type", "PreForkSimple", "--max_servers", w],
    }
    notes = []
    if subprocess.run(["perl", "-MNet::Server::HTTP", "-e1"], capture_output=True).returncode == 0:
        table["perl-netserver-http"] = ["perl", os.path.join(HERE, "peers", "netserver_http.pl"), "{port}"]
    else:
        notes.append("Perl's Net::Server is not installed (apt-get install libnet-server-perl)")
    gunicorn = tool("gunicorn")
    if gunicorn:
        for worker in ("sync", "gthread"):
            table[f"gunicorn-{worker}"] = [gunicorn, "-w", w, "-k", worker, "-b", "127.0.0.1:{port}",
                                           "--log-level", "error", "hello_wsgi:app"]
    else:
        notes.append("gunicorn is not installed (pip install gunicorn)")
    granian = tool("granian")
    if granian:
        table["granian"] = [granian, "--interface", "wsgi", "--workers", w, "--host", "127.0.0.1",
                            "--port", "{port}", "--no-access-log", "--log-level", "error", "hello_wsgi:app"]
    else:
        notes.append("granian is not installed (pip install granian)")
    uwsgi = tool("uwsgi")
    if uwsgi:
        table["uwsgi"] = [uwsgi, "--http11-socket", "127.0.0.1:{port}", "--wsgi-file", "hello_wsgi.py",
                          "--callable", "app", "--processes", w, "--master", "--disable-logging",
                          "--die-on-term", "--need-app"]
    else:
        notes.append("uWSGI is not installed (pip install uwsgi)")
    waitress = tool("waitress-serve")
    if waitress:
        table["waitress"] = [waitress, "--listen", "127.0.0.1:{port}", "--threads", w, "hello_wsgi:app"]
    else:
        notes.append("waitress is not installed (pip install waitress)")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx:
        table["nginx-return-200"] = [nginx, "-c", "{dir}/nginx.conf", "-p", "{dir}"]
    else:
        notes.append("nginx is not installed (apt-get install nginx): no limit row")
    for note in notes:
        print(f"note: {note}: skipped", file=sys.stderr)
    return table


# -- measuring --------------------------------------------------------------------


def group_cpu(pgid: int) -> float:
    """CPU seconds of every process in the group, with the reaped children of each."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is the 5th field of stat
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / HZ


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout}s")


def run_wrk(port: int, duration: float, connections: int, close: bool) -> Dict[str, float]:
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--latency",
               f"http://127.0.0.1:{port}/"]
    if close:
        command[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors += sum(int(x) for x in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match:
        errors += int(match.group(1))
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    return {"rate": rate, "requests": requests, "errors": errors, "p99_ms": p99}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def measure(command: List[str], args: argparse.Namespace, close: bool) -> Dict[str, float]:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="http-bench-", dir=BUILD)
    with open(os.path.join(workdir, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(workers=args.workers, dir=workdir, port=port, body=BODY))
    argv = [part.replace("{port}", str(port)).replace("{dir}", workdir) for part in command]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    log = open(os.path.join(BUILD, "logs", f"{os.path.basename(command[0])}-{port}.log"), "wb")
    proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_ready(port)
        run_wrk(port, min(args.warmup, 1.0), args.connections, close)
        before = group_cpu(proc.pid)
        cell = run_wrk(port, args.duration, args.connections, close)
        cell["cpu_us"] = (group_cpu(proc.pid) - before) * 1e6 / max(cell["requests"], 1)
        return cell
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


# -- profiling ------------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """py-spy on the only child of an HTTP PreForkSimple server under keep-alive load: top functions."""
    py_spy = tool("py-spy")
    if not py_spy:
        sys.exit("py-spy is not installed: pip install py-spy")
    port = free_port()
    command = [sys.executable, "-m", "netserver", "HTTP", "--app", "hello_wsgi:app", "--server_type",
               "PreForkSimple", "--max_servers", "1", "--max_requests", "0", "--host", "127.0.0.1",
               "--port", str(port), "--user", "root", "--log_level", "1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
    raw = os.path.join(BUILD, "http-profile.txt")
    try:
        wait_ready(port)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            child = int(f.read().split()[0])
        load = subprocess.Popen(["wrk", "-t", "1", "-c", "8", "-d", f"{round(args.duration) + 2}s",
                                 f"http://127.0.0.1:{port}/"], stdout=subprocess.DEVNULL)
        time.sleep(1)
        subprocess.run([py_spy, "record", "--pid", str(child), "--duration", str(round(args.duration)),
                        "--rate", "500", "--gil", "--function", "--format", "raw", "-o", raw],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load.wait()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    rows, total = pyspy_table.table(raw, 20)
    print(f"\n{total} samples holding the GIL\n")
    print("\n".join(rows))


# -- the run ----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measured cell")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=4, help="processes of the tuned pools and the peers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", default="", help="regex: run only matching servers")
    parser.add_argument("--install", action="store_true", help="pip/apt-get install the peers first")
    parser.add_argument("--profile", action="store_true", help="py-spy of one HTTP child, then exit")
    parser.add_argument("--starts", type=int, default=0, help=argparse.SUPPRESS)  # run.py passes echo options
    parser.add_argument("--timeout", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--strace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(os.path.join(BUILD, "logs"), exist_ok=True)
    compile_bytecode()
    if args.install:
        install()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run with --install (apt-get install wrk)")
    try:
        import httptools  # noqa: F401 - netserver's HTTP extra
    except ImportError:
        sys.exit("httptools is not installed, so netserver's HTTP personality cannot start: "
                 "pip install -e '.[http]' (or run with --install)")
    if args.profile:
        profile(args)
        return
    if args.strace:
        return
    table = {k: v for k, v in servers(args.workers).items() if re.search(args.only, k)}
    results: Dict[Tuple[str, str], List[Dict[str, float]]] = {}
    for rep in range(args.reps):
        for mode in ("keep-alive", "close"):
            for name, command in table.items():
                print(f"rep {rep + 1}/{args.reps} {mode} {name} …", file=sys.stderr)
                try:
                    cell = measure(command, args, mode == "close")
                except (RuntimeError, AttributeError, subprocess.TimeoutExpired) as exc:
                    print(f"  {name} failed: {exc}", file=sys.stderr)
                    continue
                results.setdefault((name, mode), []).append(cell)
    with open(os.path.join(BUILD, "http-results.json"), "w") as f:
        json.dump({f"{name} {mode}": cells for (name, mode), cells in results.items()}, f, indent=1)
    print(f"\nHTTP hello world, {args.connections} connections, {args.workers} workers where configurable, "
          f"{args.duration:g} s x {args.reps} (median; spread min-max)\n")
    print("| server | mode | requests/s | spread | errors | p99 ms | server µs/request | vs gunicorn-sync "
          "| vs granian |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("keep-alive", "close"):
        bases = {}
        for base in ("gunicorn-sync", "granian"):
            cells = results.get((base, mode))
            bases[base] = statistics.median(c["rate"] for c in cells) if cells else None
        for name in table:
            cells = results.get((name, mode))
            if not cells:
                print(f"| {name} | {mode} | failed | | | | | | |")
                continue
            rates = [c["rate"] for c in cells]
            median = statistics.median(rates)
            ratios = [f"{median / bases[b]:.2f}×" if bases[b] else "-" for b in ("gunicorn-sync", "granian")]
            errors = str(sum(int(c["errors"]) for c in cells))
            if any(c["requests"] == 0 for c in cells):  # wrk counts no error for connections never answered
                errors += " (no request answered in a cell)"
            print(f"| {name} | {mode} | {median:.0f} | {min(rates):.0f}–{max(rates):.0f} | "
                  f"{errors} | {statistics.median(c['p99_ms'] for c in cells):.1f} | "
                  f"{statistics.median(c['cpu_us'] for c in cells):.0f} | {ratios[0]} | {ratios[1]} |")


if __name__ == "__main__":
    main()
