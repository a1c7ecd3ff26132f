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


@pytest.mark.skipif(shutil.which("wrk") is None, reason="no wrk (benchmarks/run_http.py --install)")
def test_http_harness_smoke_run_of_the_defaults_row():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run_http.py"), "--duration", "1",
                           "--reps", "1", "--warmup", "0.5", "--only", "^netserver-http-defaults$"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = re.findall(r"^\| netserver-http-defaults \| (keep-alive|close) \| (\d+) \| \d+–\d+ \| (\d+) \|",
                      done.stdout, re.M)
    assert sorted(mode for mode, _, _ in rows) == ["close", "keep-alive"], done.stdout
    assert all(int(rate) > 0 and int(errors) == 0 for _, rate, errors in rows), rows


def test_http_in_process_measure_runs():
    pytest.importorskip("httptools")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "http_inprocess.py"), "--requests",
                           "500", "--rounds", "1"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"[\d.]+ µs per keep-alive request", done.stdout), done.stdout
