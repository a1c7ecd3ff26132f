"""CGI (RFC 3875) scripts served by ``netserver HTTP --app``.

The scripts live in a world-readable temporary directory because the serving
processes run as ``nobody`` when the suite runs as root.
"""

import json
import os
import random
import shutil
import time

import pytest

from httpkit import Raw, descendants, get, proc_state, public_dir, request, serve, write_script
from waiting import wait_until

ENV_SCRIPT = r"""#!/usr/bin/env python3
import json, os, sys
body = sys.stdin.buffer.read()
out = json.dumps({"env": dict(os.environ), "stdin": body.decode("latin-1"), "cwd": os.getcwd(),
                  "uid": os.getuid()})
sys.stdout.write("Content-Type: application/json\r\n\r\n" + out)
"""

SLEEP = f"4.{random.randrange(10 ** 6):06d}"

SCRIPTS = {
    "env.cgi": ENV_SCRIPT,
    "status.cgi": "#!/bin/sh\nprintf 'Status: 404 Not Found\\r\\nContent-Type: text/plain\\r\\n\\r\\nnope\\n'\n",
    "redirect.cgi": "#!/bin/sh\nprintf 'Location: /elsewhere?x=1\\r\\n\\r\\n'\n",
    "lf.cgi": "#!/bin/sh\necho 'Content-Type: text/plain'\necho 'X-Lf: yes'\necho\necho 'lf body'\n",
    "nph-raw.cgi": ("#!/bin/sh\nprintf 'HTTP/1.1 299 Custom Thing\\r\\nContent-Type: text/plain\\r\\n"
                    "X-Nph: 1\\r\\n\\r\\nnph body'\n"),
    "fail.cgi": "#!/bin/sh\nexit 3\n",
    "stderr.cgi": ("#!/bin/sh\necho cgi-stderr-marker >&2\n"
                   "printf 'Content-Type: text/plain\\r\\n\\r\\nok'\n"),
    "slow-py.cgi": "#!/usr/bin/env python3\nimport time\ntime.sleep(30)\nprint('Content-Type: text/plain\\n\\nlate')\n",
    # a duration unique to this run, to find its sleep in /proc whoever else runs tests
    "slow-sh.cgi": f"#!/bin/sh\nsleep {SLEEP}\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate'\n",
    "nobody.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nid -u\n",
}


@pytest.fixture(scope="module")
def cgi_dir():
    directory = public_dir("netserver-cgi-")
    for name, text in SCRIPTS.items():
        write_script(directory, name, text)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cgi_server(cgi_dir):
    """Every script mounted at /NAME-without-.cgi; PreFork so the serving processes stay around."""
    args = ["--server_type", "PreFork", "--min_servers", "2", "--max_servers", "4", "--timeout_cgi", "1"]
    if os.geteuid() == 0:
        args += ["--user", "nobody"]  # started as root, scripts run as this user (root has to ask)
    for name in SCRIPTS:
        args += ["--app", f"/{name[:-4]}={os.path.join(cgi_dir, name)}"]
    with serve(args) as proc:
        yield proc


def cgi_env(response):
    assert response.status == 200, response
    return json.loads(response.body)


def test_unusable_script_is_a_startup_error(cgi_dir):
    from harness import run_command

    path = os.path.join(cgi_dir, "not-executable.cgi")
    with open(path, "w") as out:
        out.write("#!/bin/sh\n")
    os.chmod(path, 0o644)
    for target in (path, os.path.join(cgi_dir, "missing.cgi")):
        result = run_command(["HTTP", "--port", "127.0.0.1:0", "--app", f"/x={target}"])
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert "app" in result.stderr and os.path.basename(target) in result.stderr


def test_relative_script_served_from_its_directory(cgi_dir):
    with serve(["--app", "./env.cgi"], cwd=cgi_dir) as proc:
        result = cgi_env(get(proc.port, "/env.cgi/extra/path?q=1"))
        env = result["env"]
        assert env["SCRIPT_NAME"] == "/env.cgi"
        assert env["PATH_INFO"] == "/extra/path"
        assert env["QUERY_STRING"] == "q=1"
        assert os.path.realpath(result["cwd"]) == os.path.realpath(cgi_dir)
        assert os.path.realpath(env["SCRIPT_FILENAME"]) == os.path.realpath(os.path.join(cgi_dir, "env.cgi"))
        # nothing is mounted at "/", so the script answers it too (as in Net::Server)
        assert cgi_env(get(proc.port, "/"))["env"]["REQUEST_METHOD"] == "GET"


def test_full_cgi_environment_and_stdin(cgi_server):
    body = b"field=value&other=1"
    data = (b"POST /env/extra/path?q=1&r=2 HTTP/1.1\r\nHost: example.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\nX-Custom: custom-value\r\nUser-Agent: cgi-test/1\r\n"
            b"Connection: close\r\n\r\n" % len(body)) + body
    with Raw(cgi_server.port) as conn:
        conn.send(data)
        client_port = conn.sock.getsockname()[1]
        result = cgi_env(conn.response())
    env = result["env"]
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SCRIPT_NAME"] == "/env"
    assert env["PATH_INFO"] == "/extra/path"
    assert env["QUERY_STRING"] == "q=1&r=2"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(cgi_server.port)
    assert env["SERVER_NAME"]
    assert env["SERVER_SOFTWARE"]
    assert env["HTTP_HOST"] == "example.test"
    assert env["HTTP_X_CUSTOM"] == "custom-value"
    assert env["HTTP_USER_AGENT"] == "cgi-test/1"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    assert "HTTPS" not in env
    assert result["stdin"] == body.decode()


def test_get_has_empty_stdin_and_no_content_length(cgi_server):
    result = cgi_env(get(cgi_server.port, "/env"))
    assert result["stdin"] == ""
    assert result["env"].get("CONTENT_LENGTH", "") in ("", "0")
    assert result["env"]["PATH_INFO"] == ""


def test_chunked_body_reaches_stdin_with_a_length(cgi_server):
    response = request(cgi_server.port, b"POST /env HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                        b"Connection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
    result = cgi_env(response)
    assert result["stdin"] == "abcdefg"
    assert result["env"]["CONTENT_LENGTH"] == "7"


def test_server_environment_does_not_leak_into_cgi(cgi_server):
    env = cgi_env(get(cgi_server.port, "/env"))["env"]
    assert "PYTHONPATH" not in env  # only PATH, LANG, … pass through
    assert not any(key.startswith("wsgi.") for key in env)


def test_proxy_header_does_not_become_http_proxy(cgi_server):
    env = cgi_env(get(cgi_server.port, "/env", headers="Proxy: http://evil.example:3128/\r\n"))["env"]
    assert "HTTP_PROXY" not in env


@pytest.mark.parametrize("target", ["/env/../../../../../etc/passwd", "/env/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                    "/env/..%2f..%2f..%2f..%2fetc%2fpasswd"])
def test_dot_segments_cannot_escape_the_script_directory(cgi_server, cgi_dir, target):
    response = get(cgi_server.port, target)
    if response.status != 200:
        assert 400 <= response.status < 500, response  # refusing is fine
        return
    env = cgi_env(response)["env"]
    assert ".." not in env["PATH_INFO"].split("/"), env["PATH_INFO"]
    translated = env.get("PATH_TRANSLATED")
    if translated:
        assert os.path.realpath(translated).startswith(os.path.realpath(cgi_dir) + os.sep), translated


def test_status_header(cgi_server):
    response = get(cgi_server.port, "/status")
    assert (response.status, response.reason) == (404, "Not Found")
    assert response.body == b"nope\n"
    assert response.header("Status") is None  # consumed, not passed on


def test_location_header_is_a_302(cgi_server):
    response = get(cgi_server.port, "/redirect")
    assert response.status == 302
    assert response.header("Location") == "/elsewhere?x=1"


def test_lf_only_script_output(cgi_server):
    response = get(cgi_server.port, "/lf")
    assert response.status == 200
    assert response.header("X-Lf") == "yes"
    assert response.body == b"lf body\n"


def test_nph_script_status_line(cgi_server):
    response = get(cgi_server.port, "/nph-raw")
    assert (response.status, response.reason) == (299, "Custom Thing")
    assert response.header("X-Nph") == "1"
    assert response.body == b"nph body"


def test_script_failing_without_output_is_a_500(cgi_server):
    response = get(cgi_server.port, "/fail")
    assert response.status == 500
    cgi_server.wait_for(r"fail\.cgi produced no output \(exit status 3\)")
    assert get(cgi_server.port, "/status").status == 404  # still serving


def test_script_stderr_goes_to_the_log(cgi_server):
    assert get(cgi_server.port, "/stderr").body == b"ok"
    cgi_server.wait_for(r"cgi-stderr-marker")


def test_keep_alive_across_cgi_requests(cgi_server):
    with Raw(cgi_server.port) as conn:
        for _ in range(3):
            conn.send(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().status == 404
        conn.send(b"GET /redirect HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.response().status == 302


@pytest.mark.root  # the privilege drop needs root
def test_scripts_run_unprivileged(cgi_server):
    response = get(cgi_server.port, "/nobody")
    assert response.status == 200
    assert response.body.strip() != b"0"


def _serving_tree_problems(server_pid, script):
    """Zombies among the server's descendants, and live processes still running ``script``."""
    problems = []
    for pid in descendants(server_pid):
        state, name = proc_state(pid)
        if state == "Z":
            problems.append(f"zombie {pid} ({name})")
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if script.encode() in handle.read().split(b"\0"):
                    problems.append(f"script still running {pid}")
        except OSError:
            pass
    return problems


@pytest.mark.slow
def test_slow_script_is_a_504_and_is_reaped(cgi_server, cgi_dir):
    started = time.monotonic()
    with Raw(cgi_server.port) as conn:
        conn.send(b"GET /slow-py HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        elapsed = time.monotonic() - started
        assert response.status == 504
        assert elapsed < 3, elapsed
        conn.send(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")  # the connection may be closed or not
    cgi_server.wait_for(r"ran longer than 1\.0s")
    script = os.path.join(cgi_dir, "slow-py.cgi")
    wait_until(lambda: _serving_tree_problems(cgi_server.pid, script) == [], timeout=2,
               what="the timed-out script to be killed and reaped")
    assert get(cgi_server.port, "/status").status == 404


@pytest.mark.slow
def test_slow_shell_script_is_a_504_on_time(cgi_server):
    started = time.monotonic()
    with Raw(cgi_server.port, timeout=3) as conn:
        conn.send(b"GET /slow-sh HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = conn.response()
    assert response.status == 504
    assert time.monotonic() - started < 3

    def live_sleeps():
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        if handle.read() == f"sleep\0{SLEEP}\0".encode() and proc_state(int(entry))[0] != "Z":
                            found.append(int(entry))
                except OSError:
                    pass
        return found

    # the whole script (process group) is killed, not just the shell
    wait_until(lambda: live_sleeps() == [], timeout=2, what="the script's sleep to be killed")
