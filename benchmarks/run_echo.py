"""Line-echo benchmark: netserver's personalities against every peer, in one run.

    python benchmarks/run_echo.py [--duration 5] [--reps 3] [--only REGEX] [--install]
    python benchmarks/run_echo.py --strace      # system calls per connection of one PreFork child
    python benchmarks/run_echo.py --profile     # py-spy top functions of one PreFork child

Every server runs the same trivial handler (no greeting; read a line, write
it back; close on EOF) on a fresh loopback port: netserver PreFork,
PreForkSimple, Fork, Thread and Multiplex; the standard library's TCPServer,
ForkingTCPServer and ThreadingTCPServer; an asyncio streams server; a naive
hand-written os.fork pool; Perl's Net::Server PreFork and Fork; and a C
epoll server, the most this box's loopback gives one process.  The scripts
are in ``benchmarks/peers/``.

For each scenario — a new connection per request with 50 clients, then 100
requests per connection with 50 and with 200 clients — each server is
started in its own process group, probed until it answers, warmed up, and
driven by ``echoload`` (``benchmarks/echoload.c``, compiled here with
``cc -O2`` into ``benchmarks/build/``; a connection per request comes from
16 loopback source addresses, ``-a 16``, as from many hosts); then its
process group is killed.
Repetitions are interleaved (rep 1 of every cell, then rep 2, …) so that
drift on a shared machine hits every server alike.  The tables give the
median rate, the spread, the errors, and ratios to Net::Server PreFork and
to the C server measured in the same run, with the CPU each side used: the
server's processes, echoload itself, and everything else on the box (other
jobs: a large "other" marks a disturbed cell).  Then the memory of each
forking server's processes (USS/PSS from ``/proc/PID/smaps_rollup``) under
load, and the time from exec to the first served connection.

Perl's Net::Server comes from Debian's ``libnet-server-perl``: with
``--install`` the harness installs it with apt-get, otherwise its peers are
skipped with a note.  Raw results go to ``benchmarks/build/echo-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import pyspy_table  # benchmarks/, beside this script
from bytecode import compile_bytecode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
BUILD = os.path.join(HERE, "build")
ECHOLOAD = os.path.join(BUILD, "echoload")
EPOLL_ECHO = os.path.join(BUILD, "epoll_echo")
HZ = os.sysconf("SC_CLK_TCK")

SOURCES = 16                # client source addresses (127.0.0.1-16) for a connection per request
BASELINE = "perl-prefork"   # Net::Server PreFork: the ratios' denominator
LIMIT = "c-epoll"           # the physical limit
SCENARIOS = [  # (name, clients, requests per connection)
    ("connection per request, 50 clients", 50, 1),
    ("100 requests per connection, 50 clients", 50, 100),
    ("100 requests per connection, 200 clients", 200, 100),
]
FORKING = ["netserver-prefork", "netserver-prefork-defaults", "netserver-preforksimple", "netserver-fork", "stdlib-forking", "compat-forking",
           "mixin-forking",
           "naive-fork-pool", "perl-prefork", "perl-fork"]
STARTUP = ["netserver-prefork", "netserver-prefork-defaults", "perl-prefork", "naive-fork-pool"]


# -- set-up -------------------------------------------------------------------


def build() -> None:
    """Compile echoload and the C server when missing or older than their source."""
    os.makedirs(BUILD, exist_ok=True)
    cc = shutil.which("cc") or shutil.which("gcc")
    for source, target in ((os.path.join(HERE, "echoload.c"), ECHOLOAD),
                           (os.path.join(PEERS, "epoll_echo.c"), EPOLL_ECHO)):
        if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(source):
            continue
        if cc is None:
            sys.exit("no C compiler: apt-get install -y gcc")
        subprocess.run([cc, "-O2", "-o", target, source], check=True)


def have_net_server() -> bool:
    return shutil.which("perl") is not None and subprocess.run(
        ["perl", "-MNet::Server", "-e1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def ensure_net_server(install: bool) -> Optional[str]:
    """None when Perl's Net::Server is usable, else why its peers are skipped."""
    if have_net_server():
        return None
    if not install:
        return "Perl Net::Server is not installed: run with --install (apt-get install -y libnet-server-perl)"
    if not shutil.which("apt-get"):
        return "Perl Net::Server is not installed and there is no apt-get"
    print("installing libnet-server-perl with apt-get …", file=sys.stderr)
    command = ["apt-get", "install", "-y", "-q", "libnet-server-perl"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    return None if have_net_server() else "apt-get install libnet-server-perl failed"


def servers() -> Dict[str, List[str]]:
    """name → command ({port} is replaced); in the order of the tables."""
    py = sys.executable
    table: Dict[str, List[str]] = {}
    for personality in ("PreFork", "PreForkSimple", "Fork", "Thread", "Multiplex"):
        table[f"netserver-{personality.lower()}"] = [py, os.path.join(PEERS, "netserver_echo.py"),
                                                     personality, "{port}"]
    # What a user runs: run(handler, port=PORT) and nothing else (max_requests 1000, PreFork 5..50).
    for personality in ("PreFork", "PreForkSimple", "Fork", "Thread", "Multiplex"):
        table[f"netserver-{personality.lower()}-defaults"] = [py, os.path.join(PEERS, "netserver_echo.py"),
                                                              personality, "{port}", "--defaults"]
    # The defaults pool without recycling: issue 15's "the same pool with max_requests 0".
    table["netserver-prefork-defaults-mr0"] = table["netserver-prefork-defaults"] + ["--max_requests", "0"]
    # The same pool with a SO_REUSEPORT socket per child (issue 9): the kernel spreads connections.
    table["netserver-prefork-reuseport"] = table["netserver-prefork"] + ["--reuse_port"]
    for mode in ("tcp", "forking", "threading"):
        table[f"stdlib-{mode}" if mode != "tcp" else "stdlib-tcpserver"] = [
            py, os.path.join(PEERS, "stdlib_echo.py"), mode, "{port}"]
    # The drop-in promise (issue 12): the same program upgraded by one import, or by a netserver mixin.
    for mode in ("tcp", "forking", "threading"):
        table[f"compat-{mode}" if mode != "tcp" else "compat-tcpserver"] = [
            py, os.path.join(PEERS, "stdlib_echo.py"), mode, "{port}", "compat"]
    for mode in ("forking", "threading"):
        table[f"mixin-{mode}"] = [py, os.path.join(PEERS, "stdlib_echo.py"), mode, "{port}", "mixin"]
    # The stdlib class with compat.socketserver imported and unused: what netserver's image alone
    # costs a fork per connection (the parent's memory, copied and torn down with every child).
    table["stdlib-forking-imported"] = [py, os.path.join(PEERS, "stdlib_echo.py"), "forking", "{port}", "imported"]
    table["asyncio-streams"] = [py, os.path.join(PEERS, "asyncio_echo.py"), "{port}"]
    table["naive-fork-pool"] = [py, os.path.join(PEERS, "naive_prefork.py"), "{port}", "8"]
    # The same pool replacing each child after Net::Server's default max_requests: what recycling
    # costs with no engine at all, beside netserver-prefork-defaults.
    table["naive-fork-pool-recycling"] = table["naive-fork-pool"] + ["1000"]
    for personality in ("PreFork", "Fork"):
        table[f"perl-{personality.lower()}"] = ["perl", os.path.join(PEERS, "netserver_echo.pl"),
                                                personality, "{port}"]
    table[LIMIT] = [EPOLL_ECHO, "{port}"]
    table[LIMIT + "-2proc"] = [EPOLL_ECHO, "{port}", "2"]  # both cores: the box's limit for the pools
    return table


# -- processes ------------------------------------------------------------------


def free_port() -> int:
    # The benchmark may pick a port this way: it owns the loopback while it runs.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats() -> List[List[str]]:
    """Each process's /proc/PID/stat fields from field 3 (state) on, with the pid first."""
    rows = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            rows.append([entry] + text[text.rindex(")") + 2:].split())
    return rows


def group_pids(pgid: int) -> List[int]:
    """Live (non-zombie) processes of a process group."""
    return [int(r[0]) for r in proc_stats() if r[3] == str(pgid) and r[1] != "Z"]


def group_ticks(pgid: int) -> int:
    """CPU ticks of a process group: own and reaped children's (utime stime cutime cstime)."""
    return sum(int(r[12]) + int(r[13]) + int(r[14]) + int(r[15]) for r in proc_stats() if r[3] == str(pgid))


def children_of(pid: int) -> List[int]:
    """Every descendant of ``pid`` (found by ppid), zombies excepted."""
    rows = proc_stats()
    found, frontier = [], {str(pid)}
    while frontier:
        nxt = {r[0] for r in rows if r[2] in frontier and r[1] != "Z"}
        found += sorted(int(p) for p in nxt)
        frontier = nxt
    return found


def cpu_jiffies() -> Tuple[int, int, int]:
    """(busy, interrupts, total) jiffies of all CPUs from /proc/stat.

    Interrupt time (irq + softirq: on loopback, much of TCP's receive path)
    is not charged to any process here, so it is shown on its own.
    """
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, irq + softirq, total


class Server:
    """One running server: its own session and process group, stopped by killing the group."""

    def __init__(self, name: str, command: List[str]):
        self.name = name
        self.port = free_port()
        self.log_path = os.path.join(BUILD, "logs", f"{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        argv = [part.replace("{port}", str(self.port)) for part in command]
        self.log = open(self.log_path, "ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.slow_stop = False

    def ready(self, timeout: float = 15.0) -> bool:
        result = subprocess.run([ECHOLOAD, "--probe", "-d", str(timeout), "127.0.0.1", str(self.port)],
                                stdout=subprocess.DEVNULL, timeout=timeout + 5)
        return result.returncode == 0

    def stop(self, grace: float = 3.0) -> None:
        """TERM the process group; whatever is left after ``grace`` seconds gets SIGKILL."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()
            if not group_pids(pgid):
                break
            time.sleep(0.02)
        else:
            self.slow_stop = True
        for _ in range(20):  # a child forked while the group was being killed is found next pass
            if not group_pids(pgid):
                break
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.proc.wait()
        self.log.close()

    def tail(self, lines: int = 5) -> str:
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")


def echoload(port: int, clients: int, lines: int, duration: float, timeout: float,
             extra: Tuple[str, ...] = ()) -> Dict[str, str]:
    # A connection per request from 16 source addresses: from one, past ~14,000 connections a second
    # the client's connect() spends its time finding a free port among its TIME_WAIT sockets.
    sources = ("-a", str(SOURCES)) if lines == 1 else ()
    out = subprocess.run([ECHOLOAD, "-c", str(clients), "-k", str(lines), "-d", str(duration),
                          "-t", str(timeout), *sources, *extra, "127.0.0.1", str(port)],
                         capture_output=True, text=True, timeout=duration + 10).stdout
    match = re.search(r"^RESULT (.*)$", out, re.M)
    if not match:
        return {"rate": "0", "errors": "-1", "first_error": "no-result"}
    return dict(item.split("=", 1) for item in match.group(1).split())


# -- throughput -------------------------------------------------------------------


def cell(name: str, command: List[str], clients: int, lines: int, args: argparse.Namespace) -> dict:
    server = Server(name, command)
    try:
        if not server.ready():
            print(f"  {name}: did not answer; log: {server.tail()}", file=sys.stderr)
            return {"rate": 0.0, "errors": -1, "note": "not ready"}
        echoload(server.port, clients, lines, args.warmup, args.timeout)
        ticks0, (busy0, irq0, total0) = group_ticks(server.proc.pid), cpu_jiffies()
        result = echoload(server.port, clients, lines, args.duration, args.timeout)
        ticks1, (busy1, irq1, total1) = group_ticks(server.proc.pid), cpu_jiffies()
    finally:
        server.stop()
    ncpu = os.cpu_count() or 1
    window = float(result.get("seconds", args.duration))
    server_pct = (ticks1 - ticks0) / HZ / window * 100
    client_pct = (float(result.get("cpu_user", 0)) + float(result.get("cpu_sys", 0))) / window * 100
    busy_pct = (busy1 - busy0) / max(total1 - total0, 1) * 100 * ncpu
    irq_pct = (irq1 - irq0) / max(total1 - total0, 1) * 100 * ncpu
    row = {"rate": float(result["rate"]), "errors": int(result["errors"]),
           "server_cpu": server_pct, "client_cpu": client_pct, "irq_cpu": irq_pct,
           "other_cpu": max(busy_pct - server_pct - client_pct - irq_pct, 0.0), "result": result}
    if server.slow_stop:
        row["note"] = "slow stop"
    print(f"  {name:24} {row['rate']:9.0f}/s  errors {row['errors']}  server {server_pct:3.0f}%  "
          f"client {client_pct:3.0f}%  softirq {irq_pct:3.0f}%  other {row['other_cpu']:3.0f}%"
          + (f"  first error {result.get('first_error')}" if row["errors"] else "")
          + ("  (slow to stop)" if server.slow_stop else ""), file=sys.stderr)
    return row


def throughput(table: Dict[str, List[str]], args: argparse.Namespace) -> Dict[str, Dict[str, List[dict]]]:
    results: Dict[str, Dict[str, List[dict]]] = {s[0]: {n: [] for n in table} for s in SCENARIOS}
    for rep in range(1, args.reps + 1):
        for scenario, clients, lines in SCENARIOS:
            print(f"rep {rep}/{args.reps}: {scenario}", file=sys.stderr)
            for name, command in table.items():
                results[scenario][name].append(cell(name, command, clients, lines, args))
    return results


def ratio(value: float, base: Optional[float]) -> str:
    return f"{value / base:.2f}×" if base else "–"


def per_request(rows: List[dict]) -> str:
    """Median server CPU time per answered request (process time only, softirq excluded)."""
    costs = [r["server_cpu"] / 100 * 1e6 / r["rate"] for r in rows if r.get("rate")]
    return f"{statistics.median(costs):.0f}" if costs else "–"


def throughput_tables(results: Dict[str, Dict[str, List[dict]]], args: argparse.Namespace) -> str:
    out = []
    for scenario, _clients, _lines in SCENARIOS:
        cells = results[scenario]
        medians = {name: statistics.median(r["rate"] for r in rows) for name, rows in cells.items()}
        base, limit = medians.get(BASELINE), medians.get(LIMIT)
        out.append(f"\n### Echo, {scenario} ({args.reps} × {args.duration:g} s; median)\n")
        out.append("| server | requests/s | spread | errors | p99 ms | max ms | vs Net::Server PreFork | vs C epoll "
                   "| server CPU | server µs/request | echoload CPU | softirq | other jobs |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, rows in cells.items():
            rates = [r["rate"] for r in rows]
            errors = sum(r["errors"] for r in rows if r["errors"] > 0)
            failed = sum(1 for r in rows if r["errors"] < 0)
            cpu = {k: statistics.median(r.get(k, 0.0) for r in rows)
                   for k in ("server_cpu", "client_cpu", "irq_cpu", "other_cpu")}
            notes = sorted({r["note"] for r in rows if "note" in r})
            label = name + (f" ({', '.join(notes)})" if notes else "")
            p99 = statistics.median(float(r.get("result", {}).get("p99_us", 0)) for r in rows) / 1000
            worst = max(float(r.get("result", {}).get("max_us", 0)) for r in rows) / 1000
            out.append(f"| {label} | {medians[name]:.0f} | {min(rates):.0f}–{max(rates):.0f} | "
                       f"{errors}{f' +{failed} failed' if failed else ''} | {p99:.1f} | {worst:.0f} | "
                       f"{ratio(medians[name], base)} | "
                       f"{ratio(medians[name], limit)} | {cpu['server_cpu']:.0f}% | {per_request(rows)} | "
                       f"{cpu['client_cpu']:.0f}% | {cpu['irq_cpu']:.0f}% | {cpu['other_cpu']:.0f}% |")
    return "\n".join(out)


# -- memory -------------------------------------------------------------------------


def smaps(pid: int) -> Optional[Tuple[int, int, int]]:
    """(RSS, PSS, USS) in KiB from /proc/PID/smaps_rollup."""
    values = {"Rss": 0, "Pss": 0, "Private_Clean": 0, "Private_Dirty": 0, "Private_Hugetlb": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        return None
    uss = values["Private_Clean"] + values["Private_Dirty"] + values["Private_Hugetlb"]
    return values["Rss"], values["Pss"], uss


def memory(table: Dict[str, List[str]], args: argparse.Namespace) -> Dict[str, dict]:
    """Each forking server's processes, sampled halfway through a 100-per-connection load."""
    found = {}
    for name in [n for n in FORKING if n in table]:
        server = Server(name, table[name])
        try:
            if not server.ready():
                continue
            echoload(server.port, 50, 100, args.warmup, args.timeout)
            load = subprocess.Popen([ECHOLOAD, "-c", "50", "-k", "100", "-d", "2", "127.0.0.1", str(server.port)],
                                    stdout=subprocess.DEVNULL)
            time.sleep(1.0)
            parent = smaps(server.proc.pid)
            # a child that exits while it is read shows as zeros: it is no longer part of the pool
            kids = [m for m in (smaps(pid) for pid in children_of(server.proc.pid)) if m and m[0]]
            load.wait()
        finally:
            server.stop()
        if parent is None:
            continue
        found[name] = {"parent": parent, "children": kids}
        print(f"  memory {name}: parent USS {parent[2]} KiB, {len(kids)} children", file=sys.stderr)
    return found


def memory_table(found: Dict[str, dict]) -> str:
    out = ["\n### Memory under load (KiB; children sampled halfway through 100-per-connection, 50 clients)\n",
           "| server | parent USS | parent PSS | children | child USS median (min–max) | child PSS median "
           "| total PSS |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in found.items():
        parent, kids = m["parent"], m["children"]
        uss = [k[2] for k in kids]
        pss = [k[1] for k in kids]
        total = parent[1] + sum(pss)
        child_uss = f"{statistics.median(uss):.0f} ({min(uss)}–{max(uss)})" if uss else "–"
        child_pss = f"{statistics.median(pss):.0f}" if pss else "–"
        out.append(f"| {name} | {parent[2]} | {parent[1]} | {len(kids)} | {child_uss} | {child_pss} | {total} |")
    return "\n".join(out)


# -- start-up -----------------------------------------------------------------------


def first_served(name: str, command: List[str], limit: float = 15.0) -> Optional[Tuple[float, float]]:
    """Seconds from exec to (the port accepting, the first line echoed back)."""
    server = Server(name, command)
    t0, accepting = server.started, None
    try:
        while time.perf_counter() - t0 < limit:
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=limit) as s:
                    if accepting is None:
                        accepting = time.perf_counter() - t0
                    s.sendall(b"first line\n")
                    reply = b""
                    while not reply.endswith(b"\n"):
                        chunk = s.recv(64)
                        if not chunk:
                            break
                        reply += chunk
                if reply == b"first line\n":
                    return accepting, time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.001)
        return None
    finally:
        server.stop()


def startup(table: Dict[str, List[str]], starts: int) -> Dict[str, List[Tuple[float, float]]]:
    names = [n for n in STARTUP if n in table]
    found: Dict[str, List[Tuple[float, float]]] = {n: [] for n in names}
    for _ in range(starts):  # interleaved, like the throughput cells
        for name in names:
            measured = first_served(name, table[name])
            if measured:
                found[name].append(measured)
    return found


def startup_table(found: Dict[str, List[Tuple[float, float]]], starts: int) -> str:
    out = [f"\n### Start-up: exec → first served connection (ms, {starts} starts)\n",
           "| server | port accepting (median) | first line echoed (median) | min–max |",
           "| --- | ---: | ---: | ---: |"]
    for name, runs in found.items():
        if not runs:
            out.append(f"| {name} | – | failed | – |")
            continue
        served = [r[1] * 1000 for r in runs]
        out.append(f"| {name} | {statistics.median(r[0] * 1000 for r in runs):.0f} | "
                   f"{statistics.median(served):.0f} | {min(served):.0f}–{max(served):.0f} |")
    return "\n".join(out)


# -- one child under the microscope ---------------------------------------------------


def single_child_server() -> Tuple[Server, int]:
    """netserver PreFork with one child, and that child's pid."""
    command = servers()["netserver-prefork"] + ["--min_servers", "1", "--max_servers", "1",
                                                "--min_spare_servers", "0", "--max_spare_servers", "1"]
    server = Server("netserver-prefork-1", command)
    if not server.ready():
        server.stop()
        sys.exit(f"netserver PreFork did not start: {server.tail()}")
    kids = children_of(server.proc.pid)
    if len(kids) != 1:
        server.stop()
        sys.exit(f"expected one child, found {kids}")
    return server, kids[0]


def strace_child(connections: int, clients: int) -> str:
    """``strace -c`` on one PreFork child while it serves ``connections`` connections."""
    if not shutil.which("strace"):
        sys.exit("strace is not installed: apt-get install -y strace")
    server, child = single_child_server()
    out_path = os.path.join(BUILD, "strace-child.txt")
    try:
        echoload(server.port, clients, 1, 1.0, 3.0)  # warm-up
        tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out_path, "-p", str(child)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached
        result = echoload(server.port, clients, 1, 60.0, 10.0, ("-n", str(connections)))
        time.sleep(0.2)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    finally:
        server.stop()
    with open(out_path) as f:
        text = f.read()
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] not in ("total",):
            calls = int(parts[3])
            errors = int(parts[4]) if len(parts) == 6 else 0
            rows.append((parts[-1], calls, errors))
    accepted = sum(c - e for name, c, e in rows if name in ("accept4", "accept"))
    out = [f"\n### System calls of one netserver PreFork child, {accepted} connections "
           f"({clients} clients, one request each; client says {result.get('requests')} answered)\n",
           "| system call | calls | errors | per connection |", "| --- | ---: | ---: | ---: |"]
    for name, calls, errors in sorted(rows, key=lambda r: -r[1]):
        out.append(f"| {name} | {calls} | {errors} | {calls / max(accepted, 1):.2f} |")
    total = sum(c for _, c, _ in rows)
    out.append(f"| **total** | {total} | {sum(e for _, _, e in rows)} | {total / max(accepted, 1):.2f} |")
    return "\n".join(out)


def profile_child(seconds: float, clients: int, lines: int) -> str:
    """py-spy samples of one PreFork child under load: top functions by own time.

    Only samples holding the GIL count (``--gil``): a system call releases
    it, so this is the interpreter's own work, and the share of the samples
    out of ``seconds`` × 500 is the share of time the child runs Python.
    """
    pyspy = shutil.which("py-spy")
    if not pyspy:
        sys.exit("py-spy is not installed: pip install py-spy")
    server, child = single_child_server()
    raw = os.path.join(BUILD, f"py-spy-child-k{lines}.txt")
    try:
        echoload(server.port, clients, lines, 1.0, 3.0)
        load = subprocess.Popen([ECHOLOAD, "-c", str(clients), "-k", str(lines), "-d", str(seconds + 2),
                                 "127.0.0.1", str(server.port)], stdout=subprocess.DEVNULL)
        subprocess.run([pyspy, "record", "--pid", str(child), "--duration", str(int(seconds)), "--rate", "500",
                        "--format", "raw", "--function", "--gil", "--output", raw, "--nonblocking"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load.wait()
    finally:
        server.stop()
    rows, total = pyspy_table.table(raw, 10, shorten)
    return "\n".join([f"\n### py-spy: one netserver PreFork child, {clients} clients × {lines} per connection, "
                      f"{total} samples holding the GIL in {seconds:g} s at 500/s (top 10 by own time)\n", *rows])


def shorten(frame: str) -> str:
    return frame.replace(ROOT + "/", "").replace(sys.prefix + "/lib/", "")


# -- main -------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    perl = subprocess.run(["perl", "-MNet::Server", "-e", "print $Net::Server::VERSION"],
                          capture_output=True, text=True).stdout if have_net_server() else "not installed"
    git = ["git", "-C", ROOT]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "netserver"], capture_output=True, text=True).stdout
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"Net::Server {perl or '?'}, netserver {commit or '?'}{' (modified)' if dirty.strip() else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured cell")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every cell (interleaved)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring "
                        "(at most half the duration)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds a request may take before it "
                        "counts as a timeout error")
    parser.add_argument("--starts", type=int, default=5, help="starts per server for the start-up cell")
    parser.add_argument("--only", default="", help="regex: run only the servers whose name matches")
    parser.add_argument("--install", action="store_true", help="apt-get install Perl's Net::Server if missing")
    parser.add_argument("--strace", action="store_true", help="only: system calls per connection of one "
                        "PreFork child (strace -c)")
    parser.add_argument("--profile", action="store_true", help="only: py-spy profile of one PreFork child")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.duration / 2)
    build()
    compile_bytecode()
    if args.strace:
        print(strace_child(1000, 50))  # the queue never empties: accept, serve, accept…
        print(strace_child(1000, 1))   # one client: the child waits in epoll between connections
        return
    if args.profile:
        print(profile_child(5, 50, 1))
        print(profile_child(5, 50, 100))
        return

    missing = ensure_net_server(args.install)
    table = servers()
    if missing:
        print(f"note: {missing}; skipping perl-prefork and perl-fork", file=sys.stderr)
        table = {k: v for k, v in table.items() if not k.startswith("perl-")}
    table = {k: v for k, v in table.items() if re.search(args.only, k)}
    if not table:
        sys.exit(f"no server matches {args.only!r}")
    began = time.monotonic()
    results = throughput(table, args)
    found_memory = memory(table, args)
    found_startup = startup(table, args.starts)
    report = [f"Echo benchmark, {machine()}; {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{time.monotonic() - began:.0f} s",
              throughput_tables(results, args), memory_table(found_memory),
              startup_table(found_startup, args.starts)]
    if missing:
        report.append(f"\nnote: {missing}.")
    print("\n".join(report))
    with open(os.path.join(BUILD, "echo-results.json"), "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "throughput": results,
                   "memory": found_memory, "startup": found_startup}, f, indent=1)


if __name__ == "__main__":
    main()
