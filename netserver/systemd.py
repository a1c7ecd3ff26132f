"""systemd integration with the standard library only: socket activation and sd_notify.

Socket activation: when ``LISTEN_PID`` is this process and ``LISTEN_FDS``
says how many, fds 3, 4, … are listening sockets systemd (or
``systemd-socket-activate``) bound for us; ``LISTEN_FDNAMES`` may name them.
The variables are removed once read, so children never mistake them for
their own.

Notify: when ``NOTIFY_SOCKET`` is set, state changes are sent to it as
datagrams — ``READY=1`` when serving, ``RELOADING=1`` before a HUP re-exec,
``STOPPING=1`` on QUIT/TERM, ``MAINPID=``, ``STATUS=`` free text, and
``WATCHDOG=1`` every half ``WATCHDOG_USEC`` when the unit asks for it.
"""

from __future__ import annotations

import os
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

__all__ = ["listen_fds", "sockets_passed", "Notifier", "LISTEN_FDS_START"]

LISTEN_FDS_START = 3


def sockets_passed() -> bool:
    """Whether systemd passed this process sockets (without taking them: see :func:`listen_fds`)."""
    count = os.environ.get("LISTEN_FDS", "")
    return os.environ.get("LISTEN_PID", "") == str(os.getpid()) and count.isdigit() and int(count) > 0


def listen_fds() -> List[Tuple[int, str]]:
    """``(fd, name)`` for each socket passed to this process; ``[]`` when none were."""
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "")
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    labels = names.split(":") if names else []
    fds = []
    for index in range(int(count)):
        fd = LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        fds.append((fd, labels[index] if index < len(labels) else ""))
    return fds


class Notifier:
    """Datagrams to ``NOTIFY_SOCKET`` (a no-op when it is not set)."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET")
        self.address: Optional[str] = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog: Optional[float] = None
        if usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            self.watchdog = int(usec) / 2_000_000
        self.last_watchdog = 0.0
        self.sock: Optional[socket.socket] = None

    @property
    def active(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> None:
        if self.address is None:
            return
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.sock.set_inheritable(False)
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            pass  # the manager went away: nothing to tell

    def ready(self, status: str = "") -> None:
        self.send("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        monotonic_usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def tick(self, now: float) -> None:
        """Pet the watchdog when it is due (call from the loop)."""
        if self.watchdog is not None and now - self.last_watchdog >= self.watchdog:
            self.last_watchdog = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
