"""Run each atheris harness in fuzz/ for a bounded time (10 s); skipped without atheris."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("atheris")

pytestmark = pytest.mark.slow  # each harness fuzzes for NETSERVER_FUZZ_SECONDS (10 s)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECONDS = int(os.environ.get("NETSERVER_FUZZ_SECONDS", "10"))


@pytest.mark.parametrize("harness", ["fuzz_http.py", "fuzz_proxy.py", "fuzz_portspec.py"])
@pytest.mark.timeout(SECONDS + 90)  # NETSERVER_FUZZ_SECONDS may be longer than pyproject's 60 s per test
def test_atheris_harness_finds_nothing(harness, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "fuzz", harness), f"-max_total_time={SECONDS}",
         f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=1024"],
        capture_output=True, text=True, timeout=SECONDS + 60, cwd=str(tmp_path))
    runs = re.search(r"Done (\d+) runs in (\d+) second", result.stderr)
    print(f"\n[atheris {harness}] exit={result.returncode} runs={runs.group(1) if runs else '?'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert runs, result.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*"))
