"""The Apache-style access log: ``--access_log_file`` and ``--access_log_format``."""

import os
import re
import shutil

import pytest

from harness import run_command
from httpkit import Raw, get, public_dir, request, serve, server_env, wait_until
from waiting import holds_for

COMMON_LINE = re.compile(
    r'^(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-)$')


@pytest.fixture
def log_dir():
    path = public_dir("netserver-accesslog-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_lines(path, count):
    def lines():
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            found = handle.read().splitlines()
        return found if len(found) >= count else None
    return wait_until(lines, timeout=5, what=f"{count} lines in {path}")


def test_common_format_one_line_per_request(app_dir, log_dir):
    path = os.path.join(log_dir, "access.log")
    with serve(["--app", "wsgiapps:app", "--access_log_file", path, "--access_log_format", "common"],
               app_dir=app_dir) as proc:
        with Raw(proc.port) as conn:  # several requests on one connection: one line each
            conn.send(b"GET /index?q=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().status == 200
            conn.send(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().status == 404
            conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            assert conn.response().body == b"abc"
            conn.send(b"HEAD /index HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response("HEAD").status == 200
        assert get(proc.port, "/boom").status == 500
        assert request(proc.port, b"GET / HTTP/1.1\r\n\r\n").status == 400  # refused: no Host
        lines = read_lines(path, 6)
    assert len(lines) == 6, lines
    parsed = [COMMON_LINE.match(line) for line in lines]
    assert all(parsed), lines
    # one connection's lines come in order; separate connections (forked) may log in any order
    parsed = parsed[:4] + sorted(parsed[4:], key=lambda m: m["status"], reverse=True)
    expected = [
        ("GET /index?q=1 HTTP/1.1", "200", "6"),
        ("GET /missing HTTP/1.1", "404", "10"),
        ("POST /echo HTTP/1.1", "200", "3"),
        ("HEAD /index HTTP/1.1", "200", "-"),
        ("GET /boom HTTP/1.1", "500", str(len(b"<h1>500 Internal Server Error</h1>\n"))),
    ]
    for match, (req, status, size) in zip(parsed, expected, strict=False):
        assert (match["request"], match["status"], match["bytes"]) == (req, status, size), match.string
        assert match["host"] == "127.0.0.1"
        assert match["ident"] == "-" and match["user"] == "-"
    assert parsed[5]["status"] == "400"


def test_custom_format(app_dir, log_dir):
    path = os.path.join(log_dir, "custom.log")
    fmt = '%h %>s %b "%{User-agent}i" %D %T %{X-Test}e %m %U %q'
    env = server_env(app_dir)
    env["X-Test"] = "env-value"
    from harness import ServerProcess

    command = ["HTTP", "--port", "127.0.0.1:0", "--app", "/mnt=wsgiapps:app",
               "--access_log_file", path, "--access_log_format", fmt]
    with ServerProcess(command, env=env) as proc:
        assert get(proc.port, "/mnt/index?a=1&b=2", headers="User-Agent: agent/9.1\r\n").status == 200
        assert get(proc.port, "/mnt/missing").status == 404
        lines = sorted(read_lines(path, 2), key=lambda line: " 404 " in line)  # any order
    first = re.match(r'^127\.0\.0\.1 200 6 "agent/9\.1" (\d+) (\d+) env-value GET /mnt/index \?a=1&b=2$',
                     lines[0])
    assert first, lines[0]
    microseconds, seconds = int(first[1]), int(first[2])
    assert 0 <= microseconds < 5_000_000 and seconds == microseconds // 1_000_000
    assert re.match(r'^127\.0\.0\.1 404 10 "-" \d+ \d+ env-value GET /mnt/missing $', lines[1]), lines[1]


def test_stderr_target(app_dir):
    with serve(["--app", "wsgiapps:app", "--access_log_file", "STDERR"], app_dir=app_dir) as proc:
        assert get(proc.port, "/index?stderr-target=1", headers="User-Agent: ua/1\r\n").status == 200
        matches = proc.wait_for(r'"GET /index\?stderr-target=1 HTTP/1\.1" 200 6')
    # Net::Server::HTTP's default: the combined format (common, then referer and user agent).
    line = matches[0].string
    assert line.endswith(' "-" "ua/1"') and COMMON_LINE.match(line[:-len(' "-" "ua/1"')]), line


def test_log_values_are_escaped(app_dir, log_dir):
    path = os.path.join(log_dir, "escaped.log")
    fmt = '%h "%r" %>s "%{User-agent}i" %U'
    with serve(["--app", "wsgiapps:app", "--access_log_file", path, "--access_log_format", fmt],
               app_dir=app_dir) as proc:
        assert request(proc.port, b"GET /x%0d%0aFORGED HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                       ).status == 404
        assert get(proc.port, "/index", headers='User-Agent: mark-a" 200 1 "b\r\n').status == 200
        assert get(proc.port, "/index", headers="User-Agent: high\xff\r\n").status == 200
        read_lines(path, 3)

        def lines_now():
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines()

        assert holds_for(lambda: len(lines_now()) == 3, 0.3), lines_now()
        lines = lines_now()
    assert len(lines) == 3, lines  # one line per request, whatever the client sent
    assert not any(line.startswith("FORGED") for line in lines)
    assert all(line.startswith("127.0.0.1 ") for line in lines), lines
    quoted = next(line for line in lines if "mark-a" in line)
    assert '"mark-a\\" 200 1 \\"b"' in quoted, quoted  # Apache escapes the quotes
    assert all(ch.isprintable() for line in lines for ch in line), lines


@pytest.mark.parametrize("fmt", ["%Z", "%{User-agent", "100%"])
def test_bad_format_is_a_startup_error(fmt):
    result = run_command(["HTTP", "--port", "127.0.0.1:0", "--access_log_format", fmt])
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "access_log_format" in result.stderr


def test_remote_user_is_the_basic_auth_user_when_the_app_sets_none(app_dir, log_dir):
    """``%u``: REMOTE_USER, else the user of a Basic Authorization header (Apache's, gunicorn's)."""
    path = os.path.join(log_dir, "access.log")
    with serve(["--app", "wsgiapps:app", "--access_log_file", path, "--access_log_format", "%u %s"],
               app_dir=app_dir) as proc:
        with Raw(proc.port) as conn:
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\nAuthorization: Basic Ym9iOnB3\r\n\r\n")  # bob:pw
            assert conn.response().status == 200
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\nAuthorization: Basic !!not-base64\r\n\r\n")
            assert conn.response().status == 200
            conn.send(b"GET /index HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.response().status == 200
        assert read_lines(path, 3) == ["bob 200", "- 200", "- 200"]
