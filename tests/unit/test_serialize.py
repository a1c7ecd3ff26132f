"""Accept locks (netserver.process.serialize): mutual exclusion between real processes.

Each lock is held by the test process while a forked child, after
``after_fork()``, tries to take it: the child must wait until the holder
releases.  These test the lock objects themselves; whether the children of a
pool take them around ``accept`` is the personalities' business (tests/process).
"""

from __future__ import annotations

import os
import select
import signal
import threading

import pytest

from harness import TIMEOUT
from netserver.process.serialize import SERIALIZERS, FlockLock, NoLock, PipeLock, SemaphoreLock, make_lock
from waiting import holds_for, wait_until

LOCKING = ["flock", "pipe", "semaphore"]


@pytest.fixture
def lock_factory(tmp_path):
    made = []

    def make(name, lock_file=None):
        lock = make_lock(name, lock_file)
        made.append(lock)
        return lock

    yield make
    for lock in made:
        try:
            lock.close()
        except OSError:
            pass


class Contender:
    """A forked child that takes the lock, says so on a pipe, holds it until told, releases, exits."""

    def __init__(self, lock):
        self.report_r, report_w = os.pipe()
        go_r, self.go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(self.report_r)
                os.close(self.go_w)
                lock.after_fork()
                lock.acquire()
                os.write(report_w, b"A")
                os.read(go_r, 1)
                lock.release()
                os.write(report_w, b"R")
                code = 0
            finally:
                os._exit(code)
        os.close(report_w)
        os.close(go_r)
        self.said = b""

    def poll(self) -> bytes:
        while select.select([self.report_r], [], [], 0)[0]:
            chunk = os.read(self.report_r, 16)
            if not chunk:
                break
            self.said += chunk
        return self.said

    def has_lock(self) -> bool:
        return b"A" in self.poll()

    def finish(self) -> None:
        os.write(self.go_w, b"g")
        wait_until(lambda: b"R" in self.poll(), what="the child to release the lock")
        wait_until(lambda: os.waitpid(self.pid, os.WNOHANG)[0] == self.pid, what="the child to exit")
        self.pid = 0

    def kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0
        for fd in (self.report_r, self.go_w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def contenders():
    started = []

    def start(lock):
        contender = Contender(lock)
        started.append(contender)
        return contender

    yield start
    for contender in started:
        contender.kill()


def test_table_and_names():
    assert set(SERIALIZERS) == {"none", "flock", "pipe", "semaphore"}
    for name, cls in SERIALIZERS.items():
        assert cls.name == name
    assert isinstance(make_lock("none"), NoLock)
    with pytest.raises(KeyError):
        make_lock("fcntl")


@pytest.mark.parametrize("name", LOCKING)
@pytest.mark.slow
def test_a_held_lock_keeps_a_child_waiting(name, lock_factory, contenders):
    lock = lock_factory(name)
    lock.acquire()
    child = contenders(lock)
    assert holds_for(lambda: not child.has_lock(), 0.3), f"{name}: the child took a lock the parent holds"
    lock.release()
    wait_until(child.has_lock, what=f"{name}: the child to take the released lock")
    child.finish()


@pytest.mark.parametrize("name", LOCKING)
@pytest.mark.slow
def test_one_child_at_a_time(name, lock_factory, contenders):
    """Two children contend; the second gets the lock only after the first releases it."""
    lock = lock_factory(name)
    first = contenders(lock)
    wait_until(first.has_lock, what="the first child to take the free lock")
    second = contenders(lock)
    assert holds_for(lambda: not second.has_lock(), 0.3), f"{name}: two children hold the lock at once"
    first.finish()
    wait_until(second.has_lock, what="the second child to take the lock")
    second.finish()
    lock.acquire()  # and it is free again for the parent
    lock.release()


@pytest.mark.parametrize("name", ["flock", "semaphore"])
def test_a_holder_that_dies_releases_the_lock(name, lock_factory, contenders):
    """The kernel releases a dead holder's flock; a semaphore stays taken (why flock is the safe choice)."""
    lock = lock_factory(name)
    holder = contenders(lock)
    wait_until(holder.has_lock, what="the child to take the lock")
    holder.kill()
    waiter = contenders(lock)
    if name == "flock":
        wait_until(waiter.has_lock, what="the lock to be freed by the holder's death")
        waiter.finish()
    else:
        assert holds_for(lambda: not waiter.has_lock(), 0.3)


def test_none_excludes_nothing(lock_factory, contenders):
    lock = lock_factory("none")
    lock.acquire()
    child = contenders(lock)
    wait_until(child.has_lock, what="the child to pass a lock that does not exist")
    lock.release()
    child.finish()


def test_flock_temporary_file_is_removed_by_its_creator_only(lock_factory, tmp_path):
    lock = FlockLock()
    path = lock.path
    assert os.path.exists(path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            lock.close()  # a child closing its copy must not remove the parent's file
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.path.exists(path)
    lock.close()
    assert not os.path.exists(path)


def test_flock_named_file_is_kept(tmp_path):
    path = tmp_path / "accept.lock"
    lock = FlockLock(str(path))
    lock.acquire()
    lock.release()
    lock.close()
    assert path.exists()


def test_pipe_lock_waits_through_a_signal(lock_factory):
    """A wait interrupted by a signal is retried (PEP 475), never fatal."""
    lock = lock_factory("pipe")
    assert isinstance(lock, PipeLock)
    lock.acquire()
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *a: (seen.append(1), lock.release()))
    # To this thread (blocked in read), not SIGALRM (pytest-timeout's).
    timer = threading.Timer(0.1, signal.pthread_kill, (threading.get_ident(), signal.SIGUSR1))
    try:
        timer.start()
        lock.acquire()  # blocks until the handler releases it
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [1]
    lock.release()


def test_semaphore_is_created_before_the_fork():
    lock = SemaphoreLock()
    lock.acquire()
    assert not lock.semaphore.acquire(timeout=0.05)
    lock.release()
    assert lock.semaphore.acquire(timeout=TIMEOUT)
    lock.semaphore.release()


@pytest.mark.parametrize("name", ["pipe", "semaphore"])
def test_a_token_lost_with_its_holder_can_be_restored(name, lock_factory, contenders):
    """pipe and semaphore die with a kill -9'd holder; the parent sees it and puts the token back."""
    lock = lock_factory(name)
    assert lock.lost_with_holder and lock.token_visible()
    holder = contenders(lock)
    wait_until(holder.has_lock, what="the child to take the lock")
    assert not lock.token_visible()
    holder.kill()
    assert not lock.token_visible(), "the token died with the holder"
    lock.restore()
    assert lock.token_visible()
    waiter = contenders(lock)
    wait_until(waiter.has_lock, what="a new child to take the restored token")
    waiter.finish()


@pytest.mark.parametrize("name", ["none", "flock"])
def test_locks_the_kernel_frees_need_no_restore(name, lock_factory):
    lock = lock_factory(name)
    assert not lock.lost_with_holder and lock.token_visible()
    lock.restore()  # a no-op


def test_the_interface_has_no_lock_of_its_own():
    from netserver.process.serialize import AcceptLock

    with pytest.raises(NotImplementedError):
        AcceptLock().acquire()
    with pytest.raises(NotImplementedError):
        AcceptLock().release()


def test_flock_never_follows_a_planted_symlink(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    link = tmp_path / "accept.lock"
    os.symlink(target, link)
    with pytest.raises(OSError):
        FlockLock(str(link))
    assert target.read_text() == "keep me"
