"""What a client sees, side by side: the echo server's commands, HTTP refusals and app forms."""

from __future__ import annotations

import os

from client import converse, request
from sidekit import start_commands

LOOPBACK_PERL = ["--port=0", "--host=127.0.0.1", "--ipv=4"]
LOOPBACK = ["--port", "0", "--host", "127.0.0.1", "--ipv", "4"]


def http_get(port, path):
    reply = request(port, f"GET {path} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].split(b" ", 1)[1]  # "400 Bad Request", whatever the version
    return status.decode(), body


def test_echo_get_and_exit(servers):
    both = start_commands(servers, ["Single", *LOOPBACK_PERL, "--log_level=3"],
                          ["Single", *LOOPBACK, "--log_level", "3"])
    for side, server in both.items():
        assert "log_level: 3\r\n" in converse(server.port, [b"get log_level", b"quit"]), side
        converse(server.port, [b"exit"])
        server.wait_exit()  # exit stops the server
        assert server.proc.returncode is not None, side


def refused_status(port):
    """The status a refused client is sent at once.  Nothing is sent first: Net::Server closes
    without reading, so a request it left unread resets the connection and the 400 with it
    (netserver reads what arrived before closing; tests/http covers a client that sent one)."""
    reply = request(port)
    return reply.split(b"\r\n")[0].split(b" ", 1)[1].decode()


def test_http_client_refused_by_the_rules_gets_400(servers):
    both = start_commands(servers, ["HTTP", *LOOPBACK_PERL, r"--deny=^127\.0\.0\.1$"],
                          ["HTTP", *LOOPBACK, "--deny", r"^127\.0\.0\.1$"])
    statuses = {side: refused_status(server.port) for side, server in both.items()}
    assert statuses == {"perl": "400 Bad Request", "python": "400 Bad Request"}


def test_http_app_forms_without_a_leading_slash(servers, tmp_path):
    directory = tmp_path / "apps"
    directory.mkdir()
    os.chmod(directory, 0o755)
    script = directory / "x.cgi"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npath [%s]' \"$PATH_INFO\"\n")
    os.chmod(script, 0o755)
    # In a conf file: Net::Server's command line takes no value with a space in it.
    conf = directory / "apps.conf"
    conf.write_text("app bim=./x.cgi\napp baz ./x.cgi\n")
    both = start_commands(servers, ["HTTP", *LOOPBACK_PERL, f"--conf_file={conf}"],
                          ["HTTP", *LOOPBACK, "--conf_file", str(conf)], cwd=str(directory))
    for path in ("/bim/more", "/baz/more", "/bim"):
        got = {side: http_get(server.port, path) for side, server in both.items()}
        assert got["perl"] == got["python"], (path, got)
        assert got["python"][0] == "200 OK", (path, got)


def test_http_access_log_is_the_combined_format_by_default(servers, tmp_path):
    import re

    from waiting import wait_until

    logs = {side: tmp_path / f"{side}.log" for side in ("perl", "python")}
    both = start_commands(servers, ["HTTP", *LOOPBACK_PERL, f"--access_log_file={logs['perl']}"],
                          ["HTTP", *LOOPBACK, "--access_log_file", str(logs["python"])])
    line = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                      r'"GET /x HTTP/1\.0" 200 (\d+|-) "http://r\.example/" "probe/1"$')
    for side, server in both.items():
        request(server.port, b"GET /x HTTP/1.0\r\nHost: t\r\nReferer: http://r.example/\r\nUser-Agent: probe/1\r\n\r\n")
        path = logs[side]
        text = wait_until(lambda path=path: path.exists() and path.read_text(), what=f"{side}: an access log line")
        assert line.match(text.splitlines()[0]), (side, text)
