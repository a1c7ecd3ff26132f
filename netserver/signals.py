"""Signals handled safely: the handler only records, the loop acts.

A :class:`SignalQueue` owns a non-blocking self-pipe.  Its handler appends the
signal number to a deque and writes one byte to the pipe; the pipe's read end
sits in the server's selector next to the listeners, so a signal wakes the
loop at once (since PEP 475, ``select`` alone would just resume).  The same
pipe wakes the loop for ``shutdown()``.  Installation is scoped: the previous
handlers come back when the ``installed()`` block ends, and nothing is
installed off the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional

__all__ = ["SignalQueue", "signal_name"]


def signal_name(signum: int) -> str:
    """``signal.SIGHUP`` → ``"HUP"``."""
    try:
        return signal.Signals(signum).name[3:]
    except ValueError:
        return str(signum)


class SignalQueue:
    """Recorded signals plus a wake-up pipe for the server loop."""

    def __init__(self) -> None:
        self._pending: Deque[int] = collections.deque()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self._read_fd

    def record(self, signum: int, frame: object = None) -> None:
        """The signal handler: remember and wake; nothing else."""
        self._pending.append(signum)
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full (already awake) or closed (shutting down)

    def drain(self) -> List[int]:
        """Empty the pipe and return the signals recorded since the last drain."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        signals = []
        while self._pending:
            signals.append(self._pending.popleft())
        return signals

    @contextlib.contextmanager
    def installed(self, signums: Iterable[int], handler: Optional[Callable] = None,
                  only_defaults: bool = False) -> Iterator[None]:
        """Handle ``signums`` (by ``record``, or ``handler``) in the block, then restore the old handlers.

        With ``only_defaults``, a signal whose disposition is not ``SIG_DFL`` — a
        handler the program installed, ``SIG_IGN``, Python's own
        ``KeyboardInterrupt`` for SIGINT — is left as it is, and so is SIGINT at
        ``SIG_DFL``: a Python program has that only by asking to die of Ctrl-C.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: Dict[int, Any] = {}  # what signal.signal returned: a handler, SIG_DFL/SIG_IGN or None
        try:
            for signum in signums:
                if only_defaults and (signum == signal.SIGINT or signal.getsignal(signum) is not signal.SIG_DFL):
                    continue
                previous[signum] = signal.signal(signum, handler or self.record)
            # A HUP re-exec crosses exec with these blocked (so none kills the new image before
            # its handlers exist): now that they are handled, let the pending ones in.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, list(previous))
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old if old is not None else signal.SIG_DFL)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._read_fd = self._write_fd = -1
