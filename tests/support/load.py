"""Client load for process tests: threads looping connect → hello → quit → read to EOF.

Every exchange is counted: ``completed`` when the whole echo came back,
otherwise one of ``counts`` (refused, reset, short, timeout, other) with the
detail in ``errors`` (``failures`` is the same list: a test that allows no
failure asserts it is empty; the kill -9 tests allow the in-flight request
of a killed child to fail and look at the counts).
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Dict, List

from client import complete_reply
from harness import TIMEOUT, echo_exchange
from waiting import wait_until

__all__ = ["ClientLoad", "classify"]


def classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNRESET:
        return "reset"
    return "other"


class ClientLoad:
    """``threads`` clients against ``address`` while the ``with`` block runs.

    ``cap``: each thread stops after that many exchanges (0: no cap; ``capped``
    says one did).  ``limit``: the clients pause once that many exchanges have
    completed in all (0: no limit).  ``timeout`` bounds each exchange.
    """

    def __init__(self, address, threads: int = 3, cap: int = 0, limit: int = 0, timeout: float = TIMEOUT):
        self.address = address
        self.cap = cap
        self.limit = limit
        self.timeout = timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.completed = 0
        self.capped = False
        self.counts: Dict[str, int] = {"refused": 0, "reset": 0, "short": 0, "timeout": 0, "other": 0}
        self.errors: List[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    @property
    def failures(self) -> List[str]:
        return self.errors

    @property
    def failed(self) -> int:
        return sum(self.counts.values())

    def __enter__(self) -> "ClientLoad":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.timeout + 2)
        assert not any(thread.is_alive() for thread in self.threads), "a client thread hung"

    def _run(self) -> None:
        done = 0
        while not self.stop.is_set():
            if self.cap and done >= self.cap:
                self.capped = True
                return
            if self.limit and self.completed >= self.limit:
                self.stop.wait(0.05)
                continue
            try:
                reply = echo_exchange(self.address, [b"hello"], timeout=self.timeout)
            except OSError as exc:
                with self.lock:
                    self.counts[classify(exc)] += 1
                    self.errors.append(repr(exc))
                continue
            done += 1
            with self.lock:
                if complete_reply(reply):
                    self.completed += 1
                else:
                    self.counts["short"] += 1
                    self.errors.append(f"short reply {reply[-80:]!r}")

    def wait_more(self, count: int) -> None:
        """Wait until ``count`` more exchanges have completed (or one failed): load spans each step."""
        target = self.completed + count
        wait_until(lambda: self.completed >= target or self.errors, what=f"{count} more client exchanges")

    def wait_total(self, total: int, timeout: float = 60) -> None:
        wait_until(lambda: self.completed >= total, timeout, f"{total} client exchanges")
