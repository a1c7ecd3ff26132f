"""Becoming a daemon: the pid file and detaching from the terminal.

``PidFile`` holds an exclusive ``flock`` on the pid file for the server's
whole life, so a second instance is refused however the first one was
started, and a file left by a crash (empty, a dead pid, a reused pid) is
recognised as stale because nobody holds its lock.  The pid is written to a
temporary file, locked, and renamed into place, so a reader never sees a
half-written file.

``Detacher`` forks into the background (``background``; ``setsid`` also
starts a new session) but keeps the launcher waiting on a pipe until the
daemon is serving, so an error after the fork — a port in use, a bad
certificate — still reaches the caller's terminal and exit status, and the
pid file holds the daemon's pid by the time the launcher returns.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional

__all__ = ["PidFile", "PidFileError", "Detacher", "redirect_stdio"]


class PidFileError(Exception):
    """Another instance holds the pid file, or it cannot be written."""


def _read_pid(fd: int) -> str:
    """The pid in the file, or '' when it holds anything but a pid (never echoed: issue 14)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return text if text.isdigit() else ""


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidFile:
    """A locked pid file.  ``acquire()`` early (errors reach the caller), ``write()`` once detached."""

    def __init__(self, path: str, log: Callable[[int, str], None]):
        self.path = path
        self.log = log
        self.fd: Optional[int] = None
        self.owner: Optional[int] = None

    def acquire(self, inherited: Optional[int] = None) -> None:
        """Lock the file at ``path``; refuse if another process holds it.

        ``inherited`` is the descriptor a HUP re-exec kept locked: adopted as
        it is.  A missing file is created whole (pid written, then linked
        into place), so a reader never finds it empty.
        """
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise PidFileError(f"pid_file {self.path}: directory {directory} does not exist")
        if inherited is not None and self._same_file(inherited) and _read_pid(inherited) == str(os.getpid()):
            self.fd = inherited
            self.owner = os.getpid()
            return
        while True:
            try:
                # Read-only and never through a symlink: the lock needs no write access (issue 14).
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError:
                if self._create_locked():
                    return
                continue  # someone else created it meanwhile: lock theirs
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PidFileError(f"pid_file {self.path} is a symbolic link; name the file itself") from None
                raise PidFileError(f"pid_file {self.path}: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise PidFileError(f"pid_file {self.path} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise PidFileError(f"pid_file {self.path}: cannot lock: {exc.strerror}") from None
                if self._same_file(fd):
                    running = _read_pid(fd) or "unknown"
                    os.close(fd)
                    raise PidFileError(f"pid_file {self.path}: already running as pid {running}") from None
                os.close(fd)  # replaced while we looked: try the new file
                continue
            if self._same_file(fd):
                break
            os.close(fd)
        previous = _read_pid(fd)
        if previous:
            why = "is not running" if not _pid_alive(previous) else "is alive but does not hold the lock"
            self.log(2, f"Replacing stale pid file {self.path}: pid {previous} {why}")
        else:
            self.log(2, f"Replacing stale pid file {self.path}: it held no pid")
        self.fd = fd
        self.write()

    def _create_locked(self) -> bool:
        """Create the file with our pid already in it; False if another process won the race."""
        handle, temp = self._temporary()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(handle, f"{os.getpid()}\n".encode())
            os.fchmod(handle, 0o644)
            handle = _read_only(handle)
            try:
                os.link(temp, self.path)
            except FileExistsError:
                os.close(handle)
                return False
        finally:
            os.unlink(temp)
        os.set_inheritable(handle, False)
        self.fd = handle
        self.owner = os.getpid()
        return True

    def _temporary(self):
        """A temporary file beside the pid file; PidFileError (one line) when the directory refuses."""
        directory = os.path.dirname(self.path) or "."
        try:
            import tempfile  # here, not at the top: most starts never need it

            return tempfile.mkstemp(prefix=".pid-", dir=directory)
        except OSError as exc:
            raise PidFileError(f"pid_file {self.path}: cannot write in {directory}: {exc.strerror}") from None

    def _same_file(self, fd: int) -> bool:
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def write(self, uid: Optional[int] = None, gid: Optional[int] = None) -> None:
        """Write this process's pid: temp file, lock it, rename over the path.

        The file stays owned by the user that started the server (root), and
        the descriptor kept locked is read-only, so the service user — or a
        handler running as it — cannot rewrite the pid that operators signal
        (issue 14).  ``uid``/``gid`` are accepted and ignored.
        """
        handle, temp = self._temporary()
        try:
            os.set_inheritable(handle, False)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(handle, f"{os.getpid()}\n".encode())
            os.fchmod(handle, 0o644)
            handle = _read_only(handle)
            os.rename(temp, self.path)
        except BaseException:
            os.close(handle)
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        if self.fd is not None:
            os.close(self.fd)
        self.fd = handle
        self.owner = os.getpid()

    def forget(self) -> None:
        """In a child: close the inherited descriptor; the lock and the file stay the parent's."""
        if self.fd is not None and self.owner != os.getpid():
            os.close(self.fd)
        self.fd = None

    def remove(self) -> None:
        """Remove the file (only the process that wrote it); empty it if removal is not allowed."""
        if self.fd is None or self.owner != os.getpid():
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.log(2, f"Could not remove pid file {self.path} ({exc.strerror}); nobody holds its lock "
                        f"now, so the next start replaces it")
        os.close(self.fd)
        self.fd = None


def _read_only(fd: int) -> int:
    """Swap a locked read-write descriptor for a read-only one on the same file, still locked.

    The new descriptor is a new open file description (``/proc/self/fd``), so
    the lock moves over: the old one is closed, then the new one locked.  Only
    used on a private temporary file nobody else can reach yet.  Without
    /proc the read-write descriptor is kept.
    """
    try:
        ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return fd
    os.close(fd)  # releases the lock of the old description
    fcntl.flock(ro, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return ro


def redirect_stdio(stderr_fd: Optional[int]) -> None:
    """stdin and stdout to /dev/null; stderr to ``stderr_fd`` (the log file) or /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(stderr_fd if stderr_fd is not None else null, 2)
    os.close(null)


class Detacher:
    """Fork into the background; the launcher waits until the daemon reports."""

    def __init__(self) -> None:
        self.write_fd: Optional[int] = None

    def detach(self, new_session: bool) -> None:
        """Returns in the daemon; the launcher process exits inside this call."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid:
            os.close(write_fd)
            self._launcher(read_fd, pid)
        os.close(read_fd)
        if new_session:
            os.setsid()
        self.write_fd = write_fd

    @staticmethod
    def _launcher(read_fd: int, pid: int) -> None:
        chunks = []
        while True:
            chunk = os.read(read_fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        message = b"".join(chunks).decode("utf-8", "replace")
        if message.startswith("READY"):
            os._exit(0)
        reason = message[len("ERROR "):] if message.startswith("ERROR ") else \
            f"the server (pid {pid}) exited before it was ready; see its log"
        sys.stderr.write(f"netserver: {reason.strip()}\n")
        sys.stderr.flush()
        os._exit(1)

    def ready(self) -> None:
        self._tell("READY")

    def failed(self, reason: str) -> None:
        self._tell("ERROR " + reason)

    def _tell(self, message: str) -> None:
        if self.write_fd is None:
            return
        try:
            os.write(self.write_fd, message.encode())
        except OSError:
            pass
        os.close(self.write_fd)
        self.write_fd = None

    @property
    def waiting(self) -> bool:
        return self.write_fd is not None
