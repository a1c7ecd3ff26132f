"""Slow clients (issue 14, finding 5): whole-request deadlines, and idle keep-alive yields a busy pool.

A body that trickles in (a byte every few hundred ms) must end at its
deadline — ``timeout_idle`` for the whole body plus a second per 64 KiB
received — in every loop, not live on because each read is quick.  Where a
worker serves one connection (Thread), an idle keep-alive connection is
closed once a client has waited ``yield_idle`` seconds for a worker.
"""

import socket
import time

import pytest

from httpkit import Raw, get, serve

LOOPS = {
    "event": ["--server_type", "PreForkSimple", "--max_servers", "1"],
    "classic": ["--server_type", "PreForkSimple", "--max_servers", "1", "--http_event", "0"],
    "thread": ["--server_type", "Thread", "--max_servers", "2"],
    "fork": ["--server_type", "Fork"],
}


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.slow
def test_a_trickled_body_ends_at_its_deadline(app_dir, loop):
    with serve(["--app", "wsgiapps:app", "--timeout_idle", "1", *LOOPS[loop]], app_dir=app_dir) as proc, \
            Raw(proc.port) as conn:
        conn.send(b"POST /env HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        conn.sock.settimeout(0.25)
        status = None
        while status is None and time.monotonic() - started < 8:
            try:
                conn.send(b"x")  # every 0.25 s: each read is quick, the body never completes
            except OSError:
                break  # closed after its answer: read it below
            try:
                status = conn.response().status
            except socket.timeout:
                continue
            except (OSError, EOFError):
                break
        if status is None:
            conn.sock.settimeout(2)
            try:
                status = conn.response().status
            except (OSError, EOFError):
                pass
        elapsed = time.monotonic() - started
        assert status == 408, (status, conn.buffer)
        assert elapsed < 4, elapsed  # about timeout_idle (1 s) and a deadline scan, not for ever


@pytest.mark.slow
def test_a_slow_but_steady_upload_is_not_cut_off(app_dir):
    """The body deadline grows with what arrives: 256 KiB in 8 pieces over ~1.6 s with timeout_idle 1."""
    with serve(["--app", "wsgiapps:app", "--timeout_idle", "1", *LOOPS["event"]], app_dir=app_dir) as proc, \
            Raw(proc.port) as conn:
        size = 8 * 32768
        conn.send(f"POST /env HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
        for _ in range(8):
            conn.send(b"y" * 32768)
            time.sleep(0.2)  # the pace of a slow link, not synchronisation
        assert conn.response().status == 200


@pytest.mark.parametrize("personality", ["Thread", "Fork"])
@pytest.mark.slow
def test_an_idle_keep_alive_connection_yields_its_worker_when_the_pool_is_full(app_dir, personality):
    with serve(["--app", "wsgiapps:app", "--server_type", personality, "--max_servers", "1"],
               app_dir=app_dir) as proc, Raw(proc.port) as idle:
        idle.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        assert idle.response().status == 200  # kept alive, now idle (timeout_idle is 60 s)
        started = time.monotonic()
        assert get(proc.port, "/index").body == b"hello\n"
        assert time.monotonic() - started < 4  # yield_idle (1 s), not timeout_idle (60 s)


@pytest.mark.slow
def test_fork_below_max_servers_idle_keep_alive_connections_stay_open(app_dir):
    with serve(["--app", "wsgiapps:app", "--server_type", "Fork", "--max_servers", "4"],
               app_dir=app_dir) as proc, Raw(proc.port) as idle:
        idle.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        assert idle.response().status == 200
        for _ in range(3):
            assert get(proc.port, "/index").body == b"hello\n"
        time.sleep(1.5)  # past yield_idle: the pool was never full, so nothing yields
        idle.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
        assert idle.response().status == 200


@pytest.mark.slow
def test_a_client_reading_a_trickle_cannot_hold_an_event_child(app_dir):
    """A response must be taken whole within timeout_idle (per write), not only progress each second."""
    import threading

    with serve(["--app", "wsgiapps:app", "--timeout_idle", "1", *LOOPS["event"]], app_dir=app_dir) as proc:
        slow = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        stop = threading.Event()

        def trickle():  # ~2.5 MiB/s: progress every second, 25 s for the whole 64 MiB
            while not stop.is_set():
                try:
                    if not slow.recv(262144):
                        return
                except OSError:
                    return
                stop.wait(0.1)  # the reader's pace, not synchronisation

        reader = threading.Thread(target=trickle)
        try:
            slow.sendall(b"GET /big?size=67108864 HTTP/1.1\r\nHost: t\r\n\r\n")  # 64 MiB
            reader.start()
            # The only child gives up on the slow reader at its write deadline: a new client is served.
            started = time.monotonic()
            probe = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
            with probe:
                probe.sendall(b"GET /index HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert b"hello" in probe.recv(65536) + probe.recv(65536)
            assert time.monotonic() - started < 4
        finally:
            stop.set()
            if reader.ident is not None:
                reader.join(10)
            slow.close()
