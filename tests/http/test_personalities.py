"""The HTTP personality over every process model (``--server_type``)."""

import http.client
import json
import threading
import time

import pytest

from httpkit import get, serve
from netserver.process.cpuload import usable_cpus
from procfs import live_children
from waiting import holds_for, wait_until

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


def test_default_server_type_is_prefork(app_dir):
    with serve(["--app", "wsgiapps:app"], app_dir=app_dir) as proc:
        proc.wait_for(r"HTTP \(type PreFork\) starting")
        environ = json.loads(get(proc.port, "/env").body)
        assert environ["pid"] != proc.pid  # served by a pool child
        assert (environ["wsgi.multithread"], environ["wsgi.multiprocess"]) == (False, True)


@pytest.mark.parametrize("argv, personality, max_servers", [
    ([], "PreFork", 50),
    (["--server_type", "PreFork"], "PreFork", 50),  # PreFork's default, not Fork's 256
    (["--server_type", "PreForkSimple"], "PreForkSimple", 50),
    (["--server_type", "Fork"], "Fork", 256),
    (["--server_type", "Thread"], "Thread", 256),
    (["--server_type", "PreFork", "--max_servers", "7"], "PreFork", 7),
])
def test_options_left_at_default_take_the_chosen_personalitys_default(argv, personality, max_servers):
    from netserver.http import HTTP

    server = HTTP()
    config = server.configure({}, argv=argv)
    assert server.personality == personality
    assert config.max_servers == max_servers


# Affinity and the container's CPU quota (tested on its own below), at most max_servers (50).
CPUS = min(usable_cpus(), 50)


@pytest.mark.parametrize("argv, min_servers", [
    ([], CPUS),                                   # event-driven children: one per CPU
    (["--http_event", "0"], 5),                   # one connection per child: Net::Server's 5
    (["--proxy_protocol", "v1", "--proxy_allow", "127.0.0.1"], 5),  # the classic loop reads PROXY headers
    (["--min_servers", "3"], 3),
])
def test_http_pool_starts_one_event_child_per_cpu(argv, min_servers):
    from netserver.http import HTTP

    server = HTTP()
    config = server.configure({}, argv=argv)
    assert config.min_servers == min_servers
    if not argv:  # --print-config says where the number came from
        assert str(config.source_of("min_servers")) == "default (one per CPU)"


def test_the_default_pool_runs_one_event_child_per_cpu(app_dir):
    """No option but the app: PreFork with as many children as CPUs (Net::Server's spare rule keeps
    at least two), each waiting on many connections."""
    # --http_event is the default; given here so that NETSERVER_TEST_HTTP_EVENT=0 keeps it.
    with serve(["--app", "wsgiapps:app", "--http_event"], app_dir=app_dir) as proc:
        assert get(proc.port, "/index").body == b"hello\n"
        wait_until(lambda: len(live_children(proc.pid)) == max(CPUS, 2), what="the starting pool")
        assert holds_for(lambda: len(live_children(proc.pid)) == max(CPUS, 2), 1.0), "the idle pool stays"


def test_default_values_of_a_subclass_are_kept_when_the_personality_is_chosen():
    from netserver.http import HTTP

    class Mine(HTTP):
        def default_values(self):
            return {"max_servers": 12}

    server = Mine()
    config = server.configure({}, argv=["--server_type", "Fork"])
    assert server.personality == "Fork" and config.max_servers == 12
    assert config.source_of("max_servers").kind == "default_values()"


@pytest.mark.parametrize("event", [False, True], ids=["classic", "http_event"])
def test_a_childs_last_connection_is_not_kept_alive(app_dir, event):
    """At max_requests the successor is already forked: the old child ends keep-alive at once."""
    args = ["--app", "wsgiapps:app", "--server_type", "PreForkSimple", "--max_servers", "1", "--max_requests", "1"]
    with serve(args + ["--http_event", "1" if event else "0"], app_dir=app_dir) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
        try:
            conn.request("GET", "/index")
            response = conn.getresponse()
            assert response.read() == b"hello\n"
            assert response.getheader("Connection") == "close"
        finally:
            conn.close()
        assert get(proc.port, "/index").body == b"hello\n"  # served by the successor


def test_term_in_the_middle_of_a_request_answers_503_before_the_server_stops(app_dir):
    """A serving process that handles TERM (Single, here) stops the app mid-request; the client
    gets a 503 with the connection closed, not an empty reply."""
    import signal

    with serve(["--app", "wsgiapps:app", "--server_type", "Single"], app_dir=app_dir) as proc:
        answers = []
        client = threading.Thread(target=lambda: answers.append(get(proc.port, "/sleep?s=5")))
        client.start()
        wait_until(lambda: _busy(proc.pid), what="the app sleeping in the request")
        proc.signal(signal.SIGTERM)
        client.join(10)
        assert answers and answers[0].status == 503
        assert proc.wait_exit() == 0


def _busy(pid: int) -> bool:
    """Whether the process sleeps in the app (its main thread is in a timed wait: 'S' and a
    wchan of hrtimer_nanosleep / do_nanosleep)."""
    try:
        with open(f"/proc/{pid}/wchan") as handle:
            return "nanosleep" in handle.read()
    except OSError:
        return False
