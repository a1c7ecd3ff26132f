"""Accept serialization between children: ``flock``, ``semaphore``, ``pipe``, ``none``.

Children hold the lock only while they wait for and accept one connection.
A wait interrupted by a signal is retried, never fatal (Net::Server 0.88,
p5-parallel-prefork#5), unless the child's signal handler raises to end
the wait (a retiring child must not stay queued for the lock).  On Linux
the children wait with ``EPOLLEXCLUSIVE``, which already wakes one child per
connection, so the default is ``none``; a lock is the default only where
several listeners are served without it.

A holder killed with ``kill -9`` must not leave the pool waiting forever
(issue 14): the kernel drops a dead process's ``flock``; the ``pipe`` token
and the ``semaphore`` count die with their holder, so the parent checks
after a child exits (:meth:`AcceptLock.token_visible`) and puts the token
back when nobody holds it.  The lock only spares the pool a thundering herd
(the listeners are non-blocking), so a token put back twice costs a little
contention, never a wrong accept.
"""

from __future__ import annotations

import array
import fcntl
import os
import termios

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["SERIALIZERS", "AcceptLock", "NoLock", "FlockLock", "PipeLock", "SemaphoreLock", "make_lock"]


class AcceptLock:
    """The interface: ``acquire``/``release`` around waiting for a connection."""

    name = "?"
    #: True when a dead holder takes the lock with it, so the parent must restore it.
    lost_with_holder = False

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def after_fork(self) -> None:
        """In a new child, before it first uses the lock."""

    def token_visible(self) -> bool:
        """Whether the lock is free right now (only meaningful when ``lost_with_holder``)."""
        return True

    def restore(self) -> None:
        """Put the token back (the parent, after its holder died with it)."""

    def close(self) -> None:
        pass


class NoLock(AcceptLock):
    """No serialization: every child waits in ``epoll`` (``EPOLLEXCLUSIVE`` wakes one)."""

    name = "none"

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


class FlockLock(AcceptLock):
    """An exclusive ``flock`` on ``lock_file``; released by the kernel if the holder dies."""

    name = "flock"

    def __init__(self, lock_file: Optional[str] = None):
        self.owned = lock_file is None
        if lock_file is None:
            import tempfile  # here, not at the top: most starts never need it

            fd, lock_file = tempfile.mkstemp(prefix="netserver-", suffix=".lock")
            os.close(fd)
        self.path = lock_file
        # Never through a symlink (a planted one would have its target created: issue 14).
        self.fd = os.open(lock_file, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.creator = os.getpid()

    def after_fork(self) -> None:
        # flock locks belong to the open file description: each child needs its own, and
        # reopens the very file the parent opened (/proc), not whatever the path names now.
        fd = self.fd
        try:
            self.fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        os.close(fd)

    def acquire(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # PEP 475: retried after EINTR

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)
        if self.owned and os.getpid() == self.creator:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class PipeLock(AcceptLock):
    """A token byte in a pipe: whoever reads it holds the lock."""

    name = "pipe"
    lost_with_holder = True

    def __init__(self, lock_file: Optional[str] = None):
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.write(self.write_fd, b".")

    def acquire(self) -> None:
        while not os.read(self.read_fd, 1):
            pass

    def release(self) -> None:
        os.write(self.write_fd, b".")

    def token_visible(self) -> bool:
        count = array.array("i", [0])
        fcntl.ioctl(self.read_fd, termios.FIONREAD, count, True)
        return count[0] > 0

    def restore(self) -> None:
        os.write(self.write_fd, b".")

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class SemaphoreLock(AcceptLock):
    """A process-shared POSIX semaphore (``multiprocessing``'s, created before the fork)."""

    name = "semaphore"
    lost_with_holder = True

    def __init__(self, lock_file: Optional[str] = None):
        import multiprocessing

        self.semaphore = multiprocessing.get_context("fork").Semaphore(1)

    def acquire(self) -> None:
        self.semaphore.acquire()

    def release(self) -> None:
        self.semaphore.release()

    def token_visible(self) -> bool:
        return self.semaphore.get_value() > 0

    def restore(self) -> None:
        self.semaphore.release()


SERIALIZERS = {"none": NoLock, "flock": FlockLock, "pipe": PipeLock, "semaphore": SemaphoreLock}


def make_lock(name: str, lock_file: Optional[str] = None) -> AcceptLock:
    cls = SERIALIZERS[name]
    return cls() if cls is NoLock else cls(lock_file)
