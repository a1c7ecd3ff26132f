"""Multiplex calls run_dequeue() every check_for_dequeue seconds, in its one process (Net::Server's Multiplex)."""

from __future__ import annotations

import os

import pytest

from harness import ServerProcess
from waiting import wait_until

SCRIPT = """
import os, sys
import netserver
OUT = sys.argv.pop(1)


class Queue(netserver.Multiplex):
    def run_dequeue(self):
        with open(OUT, "a") as out:
            out.write(f"{os.getpid()}\\n")


Queue.run()
"""


@pytest.mark.slow
def test_run_dequeue_every_check_for_dequeue_seconds(write_script, tmp_path):
    out = tmp_path / "dequeue.txt"
    with ServerProcess([str(out), "--port", "127.0.0.1:0", "--check_for_dequeue", "0.1"],
                       script=write_script(SCRIPT)) as server:
        calls = wait_until(lambda: out.exists() and out.read_text().split() if out.exists() and
                           len(out.read_text().split()) >= 3 else None, what="3 run_dequeue calls")
        assert set(calls) == {str(server.pid)}  # in the serving process: nothing is forked


@pytest.mark.slow
def test_no_run_dequeue_without_check_for_dequeue(write_script, tmp_path):
    out = tmp_path / "dequeue.txt"
    with ServerProcess([str(out), "--port", "127.0.0.1:0"], script=write_script(SCRIPT)):
        from waiting import holds_for
        assert holds_for(lambda: not os.path.exists(out), 0.5)
