"""A smoke run of the benchmark harness (tiny durations): it builds, drives and reports.

The numbers are not checked — tests never assert speed — only that every
cell ran and counted zero errors.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the load generator")
def test_echo_harness_smoke_run():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run_echo.py"), "--duration", "1",
                           "--reps", "1", "--only", "^netserver-prefork$", "--starts", "1"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = re.findall(r"^\| netserver-prefork \| (\d+) \| \d+–\d+ \| (\d+) \|", done.stdout, re.M)
    assert len(rows) == 3, done.stdout  # the three echo scenarios
    assert all(int(rate) > 0 and int(errors) == 0 for rate, errors in rows), rows
    assert "Start-up" in done.stdout and "Memory" in done.stdout
