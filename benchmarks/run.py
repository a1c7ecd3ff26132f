"""Every benchmark in one command: the echo scenarios, then HTTP.

    python benchmarks/run.py [--duration 5] [--reps 3]

Runs benchmarks/run_echo.py (line echo: connection rate, 100 requests per
connection at 50 and 200 clients, memory, start-up) and then
benchmarks/run_http.py (hello-world WSGI, keep-alive and ``Connection:
close``), each comparing every installed peer in the same run.  Options are
passed to both.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    args = sys.argv[1:]
    status = 0
    for script in ("run_echo.py", "run_http.py"):
        status |= subprocess.call([sys.executable, os.path.join(HERE, script), *args])
    return status


if __name__ == "__main__":
    sys.exit(main())
