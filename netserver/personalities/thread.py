"""Thread: a bounded pool of worker threads (Net::Server's Thread personality).

The main thread accepts and queues; at most ``max_servers`` workers serve.
When every worker is busy the main thread stops accepting, so connections
wait in the kernel's queue instead of piling up in memory (the unbounded
growth of ``ThreadingMixIn`` users reported, bpo-37193).  Threads are
started as needed and joined on shutdown.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, List, Optional

from ..options import Option
from ..options.validators import to_int
from ..server import Server
from .base import PersonalityMixIn

__all__ = ["ThreadMixIn", "Thread"]


class ThreadMixIn(PersonalityMixIn):
    """Serve each connection in one of at most ``max_servers`` threads.

    Class variables (as in socketserver's ThreadingMixIn): ``daemon_threads``
    (workers do not keep the process alive), ``block_on_close`` (shutdown
    waits for the workers to finish).
    """

    personality = "Thread"
    daemon_threads = False
    block_on_close = True

    OPTIONS = (
        Option("max_servers", to_int(1), 256, section="Thread", metavar="N",
               doc="Most worker threads; the server stops accepting while all are busy."),
    )

    def _personality_init(self) -> None:
        super()._personality_init()
        self._local = threading.local()
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._workers: List[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    # Per-connection state lives in the serving thread.
    @property
    def client(self) -> Any:
        return getattr(self._local, "client", None)

    @client.setter
    def client(self, value: Any) -> None:
        self._local.client = value

    @property
    def _current_listener(self) -> Any:
        return getattr(self._local, "listener", None)

    @_current_listener.setter
    def _current_listener(self, value: Any) -> None:
        self._local.listener = value

    def waiting_clients_sockets(self) -> List[Any]:
        return []  # the accepting loop is elsewhere: a readable listener says nothing about us

    def accepting(self) -> bool:
        return self._busy < self.config.max_servers

    def serve_from(self, token: Any) -> None:
        self.pre_accept_hook()
        try:
            request, client_address = self.accept_from(token)
        except OSError:
            return
        self.pre_thread_hook()
        with self._busy_lock:
            self._busy += 1
            start = len(self._workers) < min(self._busy, self.config.max_servers)
        if start:
            worker = threading.Thread(target=self._work, name=f"netserver-worker-{len(self._workers) + 1}",
                                      daemon=self.daemon_threads)
            self._workers.append(worker)
            worker.start()
        self._queue.put((request, client_address, token))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, client_address, token = item
            self._current_listener = token
            try:
                self.handle_connection(request, client_address)
            finally:
                with self._busy_lock:
                    was_full = self._busy >= self.config.max_servers
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

    def sig_term(self) -> None:
        super().sig_term()
        self._stop_now()

    def sig_int(self) -> None:
        super().sig_int()
        self._stop_now()

    def _stop_now(self) -> None:
        """TERM/INT: do not wait for connections in progress (daemon workers die with the process)."""
        self.block_on_close = False
        for worker in self._workers:
            if not worker.daemon:
                self.log(1, "TERM: waiting for non-daemon worker threads; set daemon_threads to stop at once")
                self.block_on_close = True
                break

    def before_restart(self) -> None:
        """HUP: connections in progress finish before the process image is replaced."""
        super().before_restart()
        self._stop_workers()


class Thread(ThreadMixIn, Server):
    """Net::Server's Thread personality over every listener.

    Workers are daemon threads, so TERM stops the server at once; QUIT and
    ``server_close()`` still wait for connections in progress.
    """

    daemon_threads = True
