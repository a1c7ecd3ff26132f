"""Run a function in a forked child and get its result back: isolation for tests that reap.

``waitpid(-1)`` in the test process could take children that belong to
other tests (a ``Popen`` not yet waited for); tests of reaping code run
their scenario in a child of their own instead, which is the parent of
everything it forks.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import traceback
from typing import Any, Callable

from harness import TIMEOUT

__all__ = ["run_forked"]


def run_forked(function: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Call ``function()`` in a forked child; return its (picklable) result or re-raise its failure."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        save_coverage = _measure_this_child()
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps(("ok", function()))
            except BaseException as exc:  # report everything, assertion failures included
                payload = pickle.dumps(("error", f"{exc!r}\n{traceback.format_exc()}"))
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 70
        finally:
            save_coverage()
            os._exit(code)
    os.close(write_fd)
    chunks = []
    finished = False
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while True:
                ready, _, _ = select.select([pipe], [], [], timeout)
                if not ready:
                    raise AssertionError(f"forked test body did not finish within {timeout}s")
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finished = True
    finally:
        _reap(pid, timeout if finished else 0.0)
    if not chunks:
        raise AssertionError("forked test body died without a result")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise AssertionError("in the forked child: " + value)
    return value


def _measure_this_child() -> Callable[[], None]:
    """Under --cov, restart coverage in this child (as coverage's patch=fork would) and return
    what saves its data before ``os._exit``; a no-op otherwise."""
    try:
        from coverage import Coverage
        from coverage.control import _after_fork_in_child
    except ImportError:
        return lambda: None
    if Coverage.current() is None:
        return lambda: None
    _after_fork_in_child()
    cov = Coverage.current()

    def save() -> None:
        if cov is not None:
            cov.stop()
            cov.save()

    return save


def _reap(pid: int, timeout: float) -> None:
    """Wait for the child to end by itself (it may be saving coverage data); kill it at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
