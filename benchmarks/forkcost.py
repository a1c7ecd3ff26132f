"""What one fork costs in a process that has imported netserver, against one that has not.

    python benchmarks/forkcost.py plain|netserver [N]

Forks N children (300 by default) that ``_exit`` at once, waiting for each:
the per-connection floor of a fork-per-connection server, which grows with
the parent's memory map.  Prints µs per fork + exit + wait, the RSS and the
number of modules loaded (docs/performance.md, "Drop-in servers").
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if len(sys.argv) < 2 or sys.argv[1] not in ("plain", "netserver"):
    sys.exit(__doc__)
if sys.argv[1] == "netserver":
    import compat.socketserver  # noqa: F401
import socketserver  # noqa: F401,E402

count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
began = time.perf_counter()
for _ in range(count):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
per_fork = (time.perf_counter() - began) / count * 1e6
with open("/proc/self/status") as status:
    rss = status.read().split("VmRSS:")[1].split()[0]
print(f"{sys.argv[1]}: {per_fork:.0f} us per fork+exit+wait, RSS {rss} kB, {len(sys.modules)} modules")
