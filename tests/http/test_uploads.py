"""Large uploads cost the server memory only while they are served (issue 14).

20 concurrent 16 MiB uploads to a Thread server used to peak at 663 MB RSS
and keep 351 MB afterwards: each body was kept as Python chunks, joined
into a second copy, and the chunks' memory stayed in the allocator's
per-thread arenas.  A body past 1 MiB now goes to an anonymous memory file
as it arrives and is closed with its request.
"""

from __future__ import annotations

import socket
import threading

import pytest

from harness import read_all
from httpkit import serve

pytestmark = pytest.mark.slow

UPLOADS = 20
SIZE = 16 * 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def _upload(port: int, results: list) -> None:
    block = b"u" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % SIZE)
        for _ in range(SIZE // len(block)):
            sock.sendall(block)
        reply = read_all(sock, 60)
    results.append(reply)


def test_twenty_concurrent_16_mib_uploads_to_thread_stay_small_and_give_memory_back(app_dir):
    with serve(["--app", "wsgiapps:app", "--server_type", "Thread", "--max_servers", str(UPLOADS),
                "--max_body_size", str(SIZE)], app_dir=app_dir) as server:
        before = _status_kib(server.pid, "VmRSS")
        results: list = []
        clients = [threading.Thread(target=_upload, args=(server.port, results)) for _ in range(UPLOADS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(120)
        assert len(results) == UPLOADS and all(reply.endswith(b"\r\n\r\n%d" % SIZE) for reply in results), \
            [reply[-40:] for reply in results]
        peak, after = _status_kib(server.pid, "VmHWM"), _status_kib(server.pid, "VmRSS")
    # Before: a peak of about 663 MB and 351 MB kept (each body held twice in Python objects).
    assert peak - before < 160 * 1024, f"peak RSS grew by {(peak - before) // 1024} MB"
    assert after - before < 64 * 1024, f"{(after - before) // 1024} MB kept after the uploads"
