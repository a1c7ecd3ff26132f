"""What the process-level tests share: the loopback arguments and end-of-test assertions.

The /proc readers live in tests/support/procfs.py, the echo clients
(``HeldClient`` …) in tests/support/client.py and the bounded waits in
tests/support/waiting.py; they are re-exported here for the tests.
"""

from __future__ import annotations

import signal

from client import (  # noqa: F401 - re-exported
    GREETING, HeldClient, complete_reply, finish_one_then_the_rest, greeted_count, greeting_pid, serving_pids,
)
from procfs import (  # noqa: F401 - re-exported
    accept_queue, children, cmdline, exists, gone, group_members, listening_inode, live_children, ppid,
    signal_caught, signal_ignored, socket_inodes, state, zombie_children,
)
from waiting import holds_for, wait_until  # noqa: F401 - re-exported

# Loopback, an OS-chosen port, and (the tests run as root) no drop to nobody, so a HUP can
# re-exec the interpreter wherever it is installed.
LOOPBACK = ["--host", "127.0.0.1", "--port", "0", "--user", "root"]


def assert_group_gone(server, timeout: float = 5.0) -> None:
    """Nothing of the server's process group is left (no child outlived the parent)."""
    wait_until(lambda: not group_members(server.pid), timeout, "the process group to be empty")


def assert_all_gone(pids, timeout: float = 5.0) -> None:
    wait_until(lambda: gone(pids), timeout, f"pids {sorted(pids)} to be gone")


def ttou_down_to_one(server) -> None:
    """Three TTOUs to a server at max_servers 3: down to 2, to 1, then refused below 1 (each logged)."""
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 2")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, max_servers is now 1")
    server.signal(signal.SIGTTOU)
    server.wait_for(r"Received TTOU, but max_servers is already 1")
