"""The HTTP personality over every process model (``--server_type``)."""

import http.client
import json
import threading
import time

import pytest

from httpkit import get, serve

TYPES = {
    "Single": [],
    "Fork": [],
    "PreFork": ["--min_servers", "2", "--max_servers", "4"],
    "PreForkSimple": ["--max_servers", "2"],
    "Thread": ["--max_servers", "4"],
}

FLAGS = {  # (wsgi.multithread, wsgi.multiprocess)
    "Single": (False, False),
    "Fork": (False, True),
    "PreFork": (False, True),
    "PreForkSimple": (False, True),
    "Thread": (True, False),
}


@pytest.fixture(params=sorted(TYPES))
def typed_server(request, app_dir):
    server_type = request.param
    with serve(["--app", "wsgiapps:app", "--server_type", server_type, *TYPES[server_type]],
               app_dir=app_dir) as proc:
        yield server_type, proc


def test_serves_with_keep_alive(typed_server):
    server_type, proc = typed_server
    proc.wait_for(rf"HTTP \(type {server_type}\) starting")
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
    try:
        answers = []
        for i in range(3):
            conn.request("GET", f"/env?i={i}")
            response = conn.getresponse()
            assert response.status == 200
            environ = json.loads(response.read())
            assert environ["QUERY_STRING"] == f"i={i}"
            answers.append((environ["pid"], environ["REMOTE_PORT"]))
        conn.request("POST", "/echo", body=b"body")
        assert conn.getresponse().read() == b"body"
    finally:
        conn.close()
    assert len(set(answers)) == 1, answers  # one connection, one serving process
    assert (environ["wsgi.multithread"], environ["wsgi.multiprocess"]) == FLAGS[server_type]
    if server_type in ("Single", "Thread"):
        assert answers[0][0] == proc.pid
    else:
        assert answers[0][0] != proc.pid
    # the next client is served once the first is done
    assert get(proc.port, "/index").body == b"hello\n"


def test_concurrent_clients(typed_server):
    server_type, proc = typed_server
    results = []

    def client(n):
        response = get(proc.port, f"/env?n={n}")
        results.append(json.loads(response.body)["QUERY_STRING"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(results) == [f"n={n}" for n in range(6)]


def test_multiplex_server_type_serves_or_is_refused_before_binding(app_dir):
    from harness import ServerProcess
    from httpkit import server_env

    command = ["HTTP", "--port", "127.0.0.1:0", "--app", "wsgiapps:app", "--server_type", "Multiplex"]
    proc = ServerProcess(command, env=server_env(app_dir), wait=False)
    try:
        try:
            proc.wait_ready()
        except AssertionError:  # it exited before binding: a configuration error
            assert proc.proc.wait(5) == 2
            assert "server_type" in proc.log_text()
            return
        time.sleep(0.3)
        assert get(proc.port, "/index").body == b"hello\n"
    finally:
        proc.stop()
