"""What a Net::Server::HTTP user relies on: a 400 for a refused client, send_status/send_400/
send_500, exec_cgi, access_log_function, default_content_type, http_note (``%{key}n``), app
forms without a leading slash, the combined log format by name."""

from __future__ import annotations

import os
import textwrap

import pytest

from harness import ServerProcess
from httpkit import Raw, public_dir, serve, server_env, write_script

SCRIPT = textwrap.dedent('''
    import sys
    from netserver.http import HTTP

    LINES = sys.argv.pop(1)
    CGI = sys.argv.pop(1)


    class App(HTTP):
        def exec_fork_hook(self, pid, path):
            with open(LINES, "a") as out:
                out.write(f"exec_fork_hook {pid} {path}\\n")

        def log_line(self, line):
            with open(LINES, "a") as out:
                out.write(line + "\\n")

        def process_http_request(self, environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/400":
                return self.send_400(start_response, "bad <input>")
            if path == "/500":
                return self.send_500(start_response, "it broke")
            if path == "/404":
                return self.send_status(start_response, 404, details=[])
            if path == "/cgi":
                return self.exec_cgi(CGI, environ, start_response)
            self.http_note("who", "noted-" + path.strip("/"))
            assert self.http_note("who") == "noted-" + path.strip("/")
            return self.send_status(start_response, 200, body="plain", headers=[("Content-Type", "text/plain")])


    App.run()
''')

CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ncgi says %s' \"$PATH_INFO\"\n"


@pytest.fixture(scope="module")
def helpers_server():
    directory = public_dir()
    script = write_script(directory, "app.py", SCRIPT)
    cgi = write_script(directory, "x.cgi", CGI)
    lines = os.path.join(directory, "access.lines")
    args = [lines, cgi, "--port", "127.0.0.1:0", "--access_log_function", "log_line",
            "--access_log_format", "%>s %{who}n %U", "--default_content_type", "text/x-test"]
    with ServerProcess(args, script=script, env=server_env()) as proc:
        proc.lines_path = lines
        yield proc


def request(port, path, headers=b""):
    with Raw(port) as conn:
        conn.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + b"\r\n")
        return conn.response()


def test_send_400_and_send_500_make_net_servers_pages(helpers_server):
    bad = request(helpers_server.port, "/400")
    assert (bad.status, bad.reason) == (400, "Bad Request")
    assert bad.header("Content-Type") == "text/x-test"  # default_content_type
    assert bad.body == b"<html>\n<body>\n<h1>Bad Request</h1><p>bad &lt;input&gt;</p></body>\n</html>\n"
    broke = request(helpers_server.port, "/500")
    assert (broke.status, broke.reason) == (500, "Internal Server Error")
    assert b"<h1>Internal Server Error</h1><p>it broke</p>" in broke.body


def test_send_status_with_its_own_headers_and_body(helpers_server):
    plain = request(helpers_server.port, "/page")
    assert (plain.status, plain.header("Content-Type"), plain.body) == (200, "text/plain", b"plain")
    missing = request(helpers_server.port, "/404")
    assert (missing.status, missing.reason) == (404, "Not Found")
    assert b"<h1>Not Found</h1>" in missing.body


def test_exec_cgi_answers_the_request_with_a_script(helpers_server):
    response = request(helpers_server.port, "/cgi")
    assert response.status == 200 and response.body == b"cgi says /cgi"
    with open(helpers_server.lines_path) as fh:  # exec_fork_hook(pid, path), as in Net::Server::HTTP
        assert any(line.startswith("exec_fork_hook ") and line.endswith("/x.cgi") for line in fh.read().splitlines())


def test_access_log_function_gets_each_line_with_http_notes(helpers_server):
    request(helpers_server.port, "/noted")
    path = helpers_server.lines_path

    def lines():
        try:
            with open(path) as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []

    from waiting import wait_until
    wait_until(lambda: "200 noted-noted /noted" in lines(), what="the access line with the note")
    assert "400 - /400" in lines()  # a request without a note: '-'


def test_a_client_refused_by_the_rules_gets_400_bad_request():
    with serve(["--cidr_deny", "127.0.0.0/8", "--access_log_file", "/dev/null"]) as server:
        for _ in range(3):
            with Raw(server.port) as conn:
                conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                response = conn.response()
                assert (response.status, response.reason) == (400, "Bad Request")
                assert response.header("Connection") == "close"
        server.wait_for(r"Denying connection from")


def test_app_forms_without_a_leading_slash(tmp_path):
    directory = public_dir()
    write_script(directory, "x.cgi", CGI)
    with serve(["--app", "bim=./x.cgi", "--app", "baz ./x.cgi"], cwd=directory) as server:
        for prefix in ("/bim", "/baz"):
            response = request(server.port, prefix + "/more")
            assert (response.status, response.body) == (200, b"cgi says /more"), prefix


def test_combined_log_format_by_name(tmp_path):
    log = public_dir()
    path = os.path.join(log, "access.log")
    with serve(["--access_log_file", path, "--access_log_format", "combined"]) as server:
        request(server.port, "/x", b"Referer: http://r.example/\r\nUser-Agent: probe/1\r\n")
        from waiting import wait_until
        wait_until(lambda: os.path.exists(path) and open(path).read().endswith('"http://r.example/" "probe/1"\n'),
                   what="a combined log line")
        line = open(path).read()
        assert '"GET /x HTTP/1.1" 200 ' in line and line.startswith("127.0.0.1 - - [")
