"""Bounded waits for tests: poll a condition with a deadline, never sleep blindly."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from harness import TIMEOUT

T = TypeVar("T")

POLL = 0.02


def wait_until(condition: Callable[[], T], timeout: float = TIMEOUT, what: str = "condition",
               interval: float = POLL) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        time.sleep(interval)


def holds_for(condition: Callable[[], bool], duration: float, interval: float = POLL) -> bool:
    """True if ``condition`` stays true for ``duration`` seconds (a bounded negative check)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(interval)
    return condition()
