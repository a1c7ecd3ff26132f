"""Which objects sit on the pages a forked echo child has made its own (copied on write).

    python benchmarks/child_pages.py [--naive] [--top 30] [-- netserver options]

Starts a PreFork echo server (``run(handler, port=P)``, the defaults, plus
any netserver options after ``--``; or, with ``--naive``, the hand-written
pool of benchmarks/peers/naive_prefork.py), loads it with 50 clients of 100
lines each, and asks one child, in the middle of the load, for its report:
the anonymous and heap pages only it maps (``/proc/self/pagemap``: present
and exclusively mapped), each named after the module whose code, functions,
constants or classes are the most objects on it (by type, "(str)" say, when
no module's are there).  A child's USS is
mostly these pages: every object it touches is written (a reference
count, a code object's warm-up), and a written page is copied from the
parent.  docs/performance.md has the readings.

The attribution is approximate: objects of one size share pages in the
order they were made, so a page is named after the module with the most
objects on it, which may be fewer than half of them; a container's size
includes storage allocated elsewhere; and pages without any object the walk
reaches (freed memory the child reused, interpreter state) are
"unattributed".
"""

from __future__ import annotations

# Only what the server needs: the driver's modules (argparse, subprocess…) would be in the image
# under study, in every child.
import collections
import gc
import os
import socketserver
import struct
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ECHOLOAD = os.path.join(HERE, "build", "echoload")
REPORT = b"PAGES\n"


def private_pages() -> set:
    """Page numbers of this process's anonymous and heap memory that only it maps."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) > 5 and fields[5] != "[heap]":
                continue  # files, the stack, vdso
            low, high = (int(part, 16) for part in fields[0].split("-"))
            ranges.append((low, high))
    pages = set()
    with open("/proc/self/pagemap", "rb") as pagemap:
        for low, high in ranges:
            pagemap.seek(low // 4096 * 8)
            entries = pagemap.read((high - low) // 4096 * 8)
            for index, (entry,) in enumerate(struct.iter_unpack("Q", entries)):
                if entry >> 63 and (entry >> 56) & 1:  # present, exclusively mapped
                    pages.add(low // 4096 + index)
    return pages


def module_of(filename: str) -> str:
    return filename.split("/netserver/")[-1] if "/netserver/" in filename else "/".join(filename.rsplit("/", 2)[-2:])


def code_parts(code: types.CodeType) -> tuple:
    """What a code object holds (gc does not track code, so get_referents does not list it)."""
    return (code.co_consts, code.co_names, code.co_varnames, code.co_linetable,
            getattr(code, "co_exceptiontable", b""), *code.co_consts, *code.co_names, *code.co_varnames)


def report(top: int) -> str:
    gc.disable()  # a collection now would move objects between generations mid-walk
    pages = private_pages()  # first: the walk below writes to what it visits
    frozen = gc.get_freeze_count()
    gc.unfreeze()  # get_objects() leaves frozen objects out: most of a netserver child's heap
    found = {id(obj): obj for obj in gc.get_objects()}
    frontier = list(found.values()) + [f.__code__ for f in found.values() if isinstance(f, types.FunctionType)]
    while frontier:
        obj = frontier.pop()
        refs = code_parts(obj) if isinstance(obj, types.CodeType) else gc.get_referents(obj)
        for ref in refs:
            if id(ref) not in found:
                found[id(ref)] = ref
                frontier.append(ref)
    if frozen:
        gc.freeze()
    gc.enable()
    owner = {}  # id -> module name, for code, functions, their constants and names, classes
    for obj in list(found.values()):
        if isinstance(obj, (types.FunctionType, types.CodeType)):
            code = obj if isinstance(obj, types.CodeType) else obj.__code__
            name = module_of(code.co_filename)
            owner[id(obj)] = name
            if isinstance(obj, types.CodeType):
                for part in code_parts(obj):
                    owner.setdefault(id(part), name)
        elif isinstance(obj, type):
            owner.setdefault(id(obj), "class of " + str(getattr(obj, "__module__", "?")))
    by_page: dict = {}
    for obj in found.values():
        start = id(obj)
        for page in range(start // 4096, (start + max(sys.getsizeof(obj), 16) - 1) // 4096 + 1):
            if page in pages:
                by_page.setdefault(page, collections.Counter())[owner.get(id(obj), "(" + type(obj).__name__ + ")")] += 1
    named = collections.Counter()
    for page in pages:
        counts = by_page.get(page)
        if not counts:
            named["unattributed"] += 1
            continue
        modules = [(n, name) for name, n in counts.items() if not name.startswith("(")]
        named[max(modules)[1] if modules else counts.most_common(1)[0][0]] += 1
    lines = [f"{len(pages)} private pages ({len(pages) * 4} KiB) in child {os.getpid()}"]
    lines += [f"{n:6d}  {name}" for name, n in named.most_common(top)]
    return "\n".join(lines) + "\n"


def serve(port: int, naive: bool, top: int, options: list) -> None:
    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                if line == REPORT:
                    self.wfile.write(report(top).encode() + b"END\n")
                    return
                self.wfile.write(line)

    if naive:
        sys.path.insert(0, os.path.join(HERE, "peers"))
        import naive_prefork

        naive_prefork.Echo.handle = Echo.handle
        sys.argv = ["naive_prefork.py", str(port), "8"]
        naive_prefork.main()
        return
    sys.path.insert(0, ROOT)
    import netserver

    sys.argv = [sys.argv[0]] + options  # netserver's command line: the options after --
    netserver.PreFork.run(Echo, port=f"127.0.0.1:{port}")


def drive() -> None:
    import argparse
    import socket
    import subprocess
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--naive", action="store_true", help="the hand-written pool instead of netserver's")
    parser.add_argument("--top", type=int, default=30, help="modules to list")
    parser.add_argument("options", nargs="*", help="netserver options (after --)")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from run_echo import build  # the load generator, compiled when missing (needs cc)

    build()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, os.path.abspath(__file__), "--serve", str(port), str(args.top),
               "naive" if args.naive else "netserver"] + args.options
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.05)
        load = subprocess.Popen([ECHOLOAD, "-c", "50", "-k", "100", "-d", "3", "127.0.0.1", str(port)],
                                stdout=subprocess.DEVNULL)
        time.sleep(1.5)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(REPORT)
            answer = b""
            while not answer.endswith(b"END\n"):
                data = conn.recv(65536)
                if not data:
                    break
                answer += data
        load.wait(timeout=30)
        if not answer.endswith(b"END\n"):
            sys.exit("the child sent no report (run the server by hand to see why: "
                     f"{' '.join(command)})")
        print(answer.decode()[:-len("END\n")], end="")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # the server: --serve PORT TOP naive|netserver [options]
        serve(int(sys.argv[2]), sys.argv[4] == "naive", int(sys.argv[3]), sys.argv[5:])
    else:
        drive()
