"""Thread: a bounded pool of worker threads (Net::Server's Thread personality).

The main thread accepts and queues; at most ``max_servers`` workers serve.
When every worker is busy the main thread stops accepting, so connections
wait in the kernel's queue instead of piling up in memory (the unbounded
growth of ``ThreadingMixIn`` users reported, bpo-37193).  Threads are
started as needed and joined on shutdown.
"""

from __future__ import annotations

import errno
import queue
import socket
import threading
import time

from ..options import Option
from ..options.validators import to_int
from ..server import Server
from .base import PersonalityMixIn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

__all__ = ["ThreadMixIn", "Thread"]

_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ThreadMixIn(PersonalityMixIn):
    """Serve each connection in one of at most ``max_servers`` threads.

    Class variables (as in socketserver's ThreadingMixIn): ``daemon_threads``
    (workers do not keep the process alive), ``block_on_close`` (shutdown
    waits for the workers to finish).
    """

    _personality = "Thread"
    _decides_where_requests_run = True
    daemon_threads = False
    block_on_close = True

    OPTIONS: Tuple[Option, ...] = (
        # max_servers is declared by Fork (256), PreForkSimple/PreFork (50) and Thread (256): Net::Server's
        # own defaults, which differ because a pool is forked ahead of load while Fork and Thread only
        # bound what load creates; a MultiType takes the chosen personality's.
        Option("max_servers", to_int(1), 256, section="Thread", metavar="N",
               doc="Most worker threads; the server stops accepting while all are busy."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._workers: List[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # accept() failing for want of descriptors (EMFILE…): accepting pauses, backing off
        self._accept_paused_until = 0.0
        self._accept_backoff = 0.0
        self._accept_logged = 0.0

    def _waiting_clients_sockets(self) -> List[Any]:
        # The main thread stops accepting while every worker is busy: a listener that stays readable
        # then means a client waits for a worker, and an idle keep-alive connection yields its own
        # (HTTP's handler closes it once a client has waited yield_idle seconds; issue 14).
        return [sock for sock, _ in self._host.listening() if sock.type == socket.SOCK_STREAM]

    def _accepting(self) -> bool:
        if self._accept_paused_until and time.monotonic() < self._accept_paused_until:
            return False
        return self._busy < self._host.config.max_servers

    def _serve_from(self, token: Any) -> None:
        self._host.pre_accept_hook()
        try:
            request, client_address = self._host.accept_from(token)
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(exc)
            return
        self._accept_backoff = 0.0
        self._host.pre_thread_hook()
        with self._busy_lock:
            self._busy += 1
            start = len(self._workers) < min(self._busy, self._host.config.max_servers)
        if start:
            worker = threading.Thread(target=self._work, name=f"netserver-worker-{len(self._workers) + 1}",
                                      daemon=self.daemon_threads)
            self._workers.append(worker)
            worker.start()
        self._queue.put((request, client_address, token))

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors (or memory): the listener stays readable, so accepting again at
        once would spin at 100% CPU (issue 14).  Back off, 50 ms doubling to 1 s, and say so
        (at most every 10 s); the queued connections wait in the kernel meanwhile."""
        now = time.monotonic()
        self._accept_backoff = min(max(self._accept_backoff * 2, 0.05), 1.0)
        self._accept_paused_until = now + self._accept_backoff
        if now - self._accept_logged >= 10.0:
            self._accept_logged = now
            self._host.log(1, f"Cannot accept connections: {exc.strerror}; pausing accepts "
                        f"({self._busy} connections being served)")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, client_address, token = item
            self._host.serving_from(token)
            try:
                self._handle_connection(request, client_address)
            finally:
                with self._busy_lock:
                    was_full = self._busy >= self._host.config.max_servers
                    self._busy -= 1
                if was_full and self._signals is not None:
                    self._signals.wake()  # the loop stopped accepting; let it start again

    def _stop_workers(self, timeout: Optional[float] = None) -> None:
        workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(None)
        if self.block_on_close:
            for worker in workers:
                worker.join(timeout)

    def server_close(self) -> None:
        """Close the listeners, then let the workers finish (joined if ``block_on_close``)."""
        super().server_close()
        self._stop_workers()

    def _sig_term(self) -> None:
        super()._sig_term()
        self._stop_now()

    def _sig_int(self) -> None:
        super()._sig_int()
        self._stop_now()

    def _stop_now(self) -> None:
        """TERM/INT: do not wait for connections in progress (daemon workers die with the process)."""
        self.block_on_close = False
        for worker in self._workers:
            if not worker.daemon:
                self._host.log(1, "TERM: waiting for non-daemon worker threads; set daemon_threads to stop at once")
                self.block_on_close = True
                break

    def _before_restart(self) -> None:
        """HUP: connections in progress finish before the process image is replaced."""
        super()._before_restart()
        self._stop_workers()


class Thread(ThreadMixIn, Server):
    """Net::Server's Thread personality over every listener.

    Workers are daemon threads, so TERM stops the server at once; QUIT and
    ``server_close()`` still wait for connections in progress.
    """

    daemon_threads = True
