"""SignalQueue (netserver.signals): record, wake, drain, scoped installation — with real signals."""

from __future__ import annotations

import os
import select
import signal
import threading

import pytest

from netserver.signals import SignalQueue, signal_name
from waiting import wait_until


@pytest.fixture
def queue():
    q = SignalQueue()
    yield q
    q.close()


def readable(q: SignalQueue, timeout: float = 0.0) -> bool:
    return bool(select.select([q], [], [], timeout)[0])


@pytest.mark.parametrize("signum, name", [
    (signal.SIGHUP, "HUP"), (signal.SIGTERM, "TERM"), (signal.SIGCHLD, "CHLD"), (signal.SIGTTIN, "TTIN"),
    (999, "999"),
])
def test_signal_name(signum, name):
    assert signal_name(signum) == name


def test_record_wakes_and_drain_returns_in_order(queue):
    assert not readable(queue) and queue.drain() == []
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGHUP):
        queue.record(signum)
    assert readable(queue)
    assert queue.drain() == [signal.SIGHUP, signal.SIGTERM, signal.SIGHUP]
    assert not readable(queue), "drain empties the pipe"
    assert queue.drain() == []


def test_wake_alone_records_nothing(queue):
    queue.wake()  # shutdown() uses the same pipe
    assert readable(queue)
    assert queue.drain() == []
    assert not readable(queue)


def test_a_full_pipe_keeps_the_signals(queue):
    """Bytes can be dropped when the pipe is full (the loop is awake anyway); signals cannot."""
    for _ in range(70_000):  # more than a pipe holds by default (64 KiB)
        queue.wake()
    queue.record(signal.SIGUSR1)
    assert queue.drain() == [signal.SIGUSR1]
    assert not readable(queue)


def test_installed_handles_then_restores(queue):
    before = signal.getsignal(signal.SIGUSR1)
    with queue.installed([signal.SIGUSR1, signal.SIGUSR2]):
        assert signal.getsignal(signal.SIGUSR1) == queue.record
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        assert readable(queue, 5.0)
        assert wait_until(lambda: len(queue._pending) == 2, what="both signals recorded")
        assert queue.drain() == [signal.SIGUSR1, signal.SIGUSR2]
    assert signal.getsignal(signal.SIGUSR1) == before
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_installed_with_a_handler_of_its_own(queue):
    seen = []
    with queue.installed([signal.SIGUSR1], handler=lambda signum, frame: seen.append(signum)):
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_until(lambda: seen, what="the custom handler to run")
    assert seen == [signal.SIGUSR1] and queue.drain() == []


def test_installed_restores_even_when_the_block_raises(queue):
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(RuntimeError), queue.installed([signal.SIGUSR1]):
        raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGUSR1) == before


def test_installed_lets_in_signals_blocked_across_exec(queue):
    """A HUP re-exec carries these blocked: once handled, the pending one is delivered."""
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        # To this thread, which blocks it: os.kill() could pick another thread of the test
        # process that does not, and the default action would end the run.
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
        assert signal.SIGUSR2 in signal.sigpending()
        with queue.installed([signal.SIGUSR2]):
            wait_until(lambda: queue._pending, what="the pending signal to be recorded")
            assert queue.drain() == [signal.SIGUSR2]
            assert signal.SIGUSR2 not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def test_installed_off_the_main_thread_installs_nothing(queue):
    before = signal.getsignal(signal.SIGUSR1)
    seen = []

    def body():
        with queue.installed([signal.SIGUSR1]):
            seen.append(signal.getsignal(signal.SIGUSR1))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(5.0)
    assert seen == [before]


def test_close_is_idempotent_and_wake_after_close_is_harmless():
    q = SignalQueue()
    fds = (q.fileno(), q._write_fd)
    q.close()
    q.close()
    q.wake()  # a late signal during shutdown must not raise
    assert q.fileno() == -1
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
