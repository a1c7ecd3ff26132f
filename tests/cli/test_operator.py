"""What an operator runs into first: --check-config, --print-config, netserver status,
one-line errors from the command and from a script's run(), logging where the app's goes.

Real processes throughout; every server is stopped by its harness.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from harness import ROOT, TIMEOUT, ServerProcess, echo_exchange, python_env

from waiting import wait_until

LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d \d+ (ERROR|WARNING|NOTICE|INFO|DEBUG) ")


def run(words, cwd=ROOT, script=None, env=None):
    command = [sys.executable, script] if script else [sys.executable, "-m", "netserver"]
    return subprocess.run(command + list(words), capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd,
                          env=env or python_env(), stdin=subprocess.DEVNULL)


def one_line_error(result, *needles, code=2):
    """Exit ``code``, no traceback, one line on stderr besides log lines, naming each needle."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def script(tmp_path):
    def write(source: str, name: str = "myserver.py") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)
    return write


PLAIN = """
    import netserver
    netserver.{personality}.run()
"""

# ---------------------------------------------------------------------------
# --check-config
# ---------------------------------------------------------------------------


def test_check_config_ok_binds_nothing_and_exits_0(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:  # checking does not bind: a used port is fine
        port = busy.getsockname()[1]
        done = run(["PreFork", "--port", f"127.0.0.1:{port}", "--log_file", str(tmp_path / "new.log"),
                    "--pid_file", str(tmp_path / "x.pid"), "--check-config"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("configuration OK: ") and f"port {port}" in done.stdout
    assert done.stdout.count("\n") == 1
    assert os.listdir(tmp_path) == []  # nothing created, nothing left


def test_check_config_opens_but_does_not_truncate_files(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("yesterday's lines\n")
    done = run(["Single", "--port", "127.0.0.1:0", "--log_file", str(log), "--check-config"])
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "yesterday's lines\n"


@pytest.mark.parametrize("words, needles", [
    (["--port", "70000"], ["port", "70000", "command line"]),
    (["--port", "no.such.host.invalid:80"], ["no.such.host.invalid"]),
    (["--log_file", "/nonexistent/dir/x.log"], ["log_file", "/nonexistent/dir"]),
    (["--log_file", "/proc/x.log"], ["log_file", "/proc/x.log"]),
    (["--pid_file", "/proc/1/x.pid"], ["pid_file", "/proc/1/x.pid"]),
    (["--SSL_cert_file", "/nonexistent.pem"], ["SSL_cert_file", "/nonexistent.pem"]),
    (["--proxy_protocol", "v2"], ["proxy_protocol", "v2", "needs proxy_allow"]),  # options that need each other
    (["--user", "no-such-user-here"], ["user", "no-such-user-here"]),
])
def test_check_config_failure_is_one_line_and_exit_2(words, needles):
    one_line_error(run(["Single", "--port", "127.0.0.1:0", *words, "--check-config"]), *needles)


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user's paths are checked when root drops privileges")
def test_check_config_refuses_a_log_file_the_service_user_could_redirect(tmp_path):
    """What a start refuses (privileges.path_hazard), --check-config refuses too, naming the option."""
    shared = tmp_path / "shared"
    (shared / "logs").mkdir(parents=True)
    shared.chmod(0o777)  # nobody could rename logs/ and point the log anywhere
    os.chmod(tmp_path, 0o755)
    log_file = shared / "logs" / "x.log"
    one_line_error(run(["Single", "--port", "127.0.0.1:0", "--user", "nobody", "--log_file", str(log_file),
                        "--check-config"]), "log_file", str(log_file), "writable by nobody")


def test_check_config_loads_the_app_and_the_access_log(tmp_path):
    pytest.importorskip("httptools")
    (tmp_path / "hello.py").write_text("def application(environ, start_response):\n    return []\n")
    ok = run(["HTTP", "--port", "127.0.0.1:0", "--app", "hello:application", "--check-config"], cwd=str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    one_line_error(run(["HTTP", "--port", "127.0.0.1:0", "--app", "hello:nothing", "--check-config"],
                       cwd=str(tmp_path)), "app", "hello:nothing")
    one_line_error(run(["HTTP", "--port", "127.0.0.1:0", "--app", "hello:application", "--access_log_file",
                        "/proc/no/access.log", "--check-config"], cwd=str(tmp_path)),
                   "access_log_file", "/proc/no/access.log")


def test_check_config_from_a_script(script):
    path = script(PLAIN.format(personality="PreFork"))
    done = run(["--port", "127.0.0.1:0", "--check-config"], script=path)
    assert done.returncode == 0 and done.stdout.startswith("configuration OK"), done.stderr
    one_line_error(run(["--port", "127.0.0.1:0", "--log_file", "/proc/x/y.log", "--check-config"], script=path),
                   "log_file", "/proc/x/y.log")


# ---------------------------------------------------------------------------
# --print-config
# ---------------------------------------------------------------------------


def test_print_config_shows_values_and_their_sources(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# a comment\nlog_level 3\nmax_servers 7\n")
    done = run(["PreFork", "--port", "127.0.0.1:8080", "--conf_file", str(conf), "--print-config"])
    assert done.returncode == 0, done.stderr
    rows = {}
    lines = done.stdout.splitlines()
    for line in lines[1:-1]:
        name, value, source = line.split(None, 2)
        rows.setdefault(name, (value, source))
    # host shows its default although the port names 127.0.0.1: the last line says which wins
    assert rows["host"] == ("*", "default")
    assert lines[-1].startswith("# a host inside a port (HOST:PORT) wins over host")
    assert rows["port"] == ("127.0.0.1:8080", "command line")
    assert rows["log_level"] == ("3", f"conf_file {conf} line 2")
    assert rows["max_servers"] == ("7", f"conf_file {conf} line 3")
    assert rows["min_servers"] == ("5", "default")
    assert rows["SSL_verify_mode"] == ("none", "default")
    assert "server_type" not in rows  # not an option of PreFork


def test_print_config_gives_each_value_of_a_repeated_option_its_own_line(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# two ports\nport 127.0.0.1:8080\nport 127.0.0.1:8081/udp\n")
    done = run(["PreFork", "--conf_file", str(conf), "--print-config"])
    assert done.returncode == 0, done.stderr
    rows = [line.split(None, 2) for line in done.stdout.splitlines()[1:] if not line.startswith("#")]
    assert [(value, source) for name, value, source in rows if name == "port"] == [
        ("127.0.0.1:8080", f"conf_file {conf} line 2"), ("127.0.0.1:8081/udp", f"conf_file {conf} line 3")]


@pytest.mark.parametrize("flag", ["--print-config", "--help"])
def test_print_config_into_a_reader_that_is_gone_is_quiet(flag):
    """``--print-config | head`` (or ``--help``): the reader has gone; no BrokenPipeError traceback, exit 1."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # gone before the first write, so the write fails whatever the pipe's size
    with open(write_fd, "wb") as writer:
        done = subprocess.run([sys.executable, "-m", "netserver", "PreFork", "--port", "127.0.0.1:8080",
                               flag], cwd=ROOT, env=python_env(), stdin=subprocess.DEVNULL,
                              stdout=writer, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr.decode()
    assert done.returncode == 1


def test_print_config_of_the_default_command_names_default_values():
    done = run(["--print-config"])
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert rows["server_type"] == ["Fork", "default_values()"]
    assert rows["max_servers"] == ["256", "default"]
    assert "min_spare_servers" not in rows  # PreFork's, not Fork's


# ---------------------------------------------------------------------------
# netserver status
# ---------------------------------------------------------------------------


def test_status_help():
    done = run(["status", "--help"])
    assert done.returncode == 0 and done.stdout.startswith("usage: netserver status")
    assert "3 not running" in done.stdout


def test_status_running_then_not_running(tmp_path):
    pid_file = str(tmp_path / "server.pid")
    with ServerProcess(["PreFork", "--port", "127.0.0.1:0", "--user", "root", "--min_servers", "2",
                        "--pid_file", pid_file]) as server:
        wait_until(lambda: run(["status", "--pid_file", pid_file]).returncode == 0, what="status to say running")
        done = run(["status", "--pid_file", pid_file])
        assert f"parent {server.pid} (running)" in done.stdout
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    done = run(["status", "--pid_file", pid_file])
    assert done.returncode == 3, done
    assert done.stdout.startswith("netserver: not running") and done.stderr == ""


def test_status_of_a_server_without_scoreboard(tmp_path):
    pid_file = str(tmp_path / "single.pid")
    with ServerProcess(["Single", "--port", "127.0.0.1:0", "--user", "root", "--pid_file", pid_file]):
        wait_until(lambda: os.path.exists(pid_file))
        done = run(["status", "--pid_file", pid_file])
        assert done.returncode == 0 and "running as pid" in done.stdout and "no scoreboard" in done.stdout


# ---------------------------------------------------------------------------
# Errors from a script's run(): one line, never a traceback
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("personality", ["Server", "PreFork"])
def test_script_bad_option_is_one_line(script, personality):
    path = script(PLAIN.format(personality=personality))
    one_line_error(run(["--port", "70000"], script=path), "myserver.py: error:", "port", "70000", "command line")


def test_script_port_in_use_is_one_line(script):
    path = script(PLAIN.format(personality="PreFork"))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        one_line_error(run(["--port", f"127.0.0.1:{port}", "--user", "root"], script=path),
                       "Address already in use", str(port), code=1)


@pytest.mark.parametrize("option, value, code", [
    ("log_file", "/proc/x.log", 2),
    ("log_file", "/nonexistent/x.log", 2),
    ("pid_file", "/proc/1/x.pid", 1),
    ("pid_file", "/nonexistent/x.pid", 1),
])
def test_script_unusable_files_are_one_line(script, option, value, code):
    path = script(PLAIN.format(personality="Single"))
    one_line_error(run(["--port", "127.0.0.1:0", "--user", "root", f"--{option}", value], script=path),
                   option, value, code=code)


def test_command_unusable_access_log_is_one_line():
    pytest.importorskip("httptools")
    line = one_line_error(run(["HTTP", "--port", "127.0.0.1:0", "--user", "root", "--access_log_file",
                               "/proc/none/access.log", "--log_level", "0"]), "access_log_file",
                          "/proc/none/access.log")
    assert "cannot open" in line


def test_run_called_from_a_library_or_on_an_instance_still_raises(script, tmp_path):
    """Only ``SomeServer.run()`` called from ``__main__`` turns errors into an exit."""
    (tmp_path / "mylib.py").write_text(textwrap.dedent("""
        import netserver

        def start():
            netserver.Server.run(port=70000)
    """))
    path = script("""
        import netserver
        import mylib

        for start in (mylib.start, lambda: netserver.Server(None, None, bind_and_activate=False).run(port=70000)):
            try:
                start()
            except netserver.OptionError as exc:
                print("caught", exc.name)
    """)
    done = run([], script=path)
    assert done.stdout == "caught port\ncaught port\n", done.stderr


def test_misspelt_option_warns_and_strict_options_makes_it_fatal(script):
    path = script("""
        import sys
        import netserver

        class Echo(netserver.Server):
            def pre_loop_hook(self):
                print("argv", sys.argv[1:], flush=True)
                self._shutdown_request = True

        Echo.run()
    """)
    done = run(["--port", "127.0.0.1:0", "--user", "root", "--prot", "8080"], script=path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"WARNING Unknown option --prot \(did you mean --proto or --port\?\)", done.stderr)
    assert "argv ['--prot', '8080']" in done.stdout  # left for the application
    one_line_error(run(["--port", "127.0.0.1:0", "--prot", "8080", "--strict_options"], script=path),
                   "prot", "unknown option", "--port")


# ---------------------------------------------------------------------------
# --app from the current directory; the missing-extra hint
# ---------------------------------------------------------------------------


def test_app_module_in_the_current_directory_with_the_console_script(tmp_path):
    import shutil

    pytest.importorskip("httptools")
    command = shutil.which("netserver")
    if command is None:
        pytest.skip("the netserver console script is not on PATH")
    (tmp_path / "hereapp.py").write_text("def application(environ, start_response):\n    return []\n")
    done = subprocess.run([command, "HTTP", "--port", "127.0.0.1:0", "--app", "hereapp:application",
                           "--check-config"], capture_output=True, text=True, timeout=TIMEOUT, cwd=str(tmp_path),
                          env=python_env())
    assert done.returncode == 0, done.stderr


def test_missing_httptools_names_an_install_command_that_works_from_a_checkout():
    code = "import sys; sys.modules['httptools'] = None; from netserver.cli import main; main(['HTTP', '--help'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=ROOT, env=python_env())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    first = done.stderr.splitlines()[0]
    assert "HTTP" in first and "pip install httptools" in first and "pip install -e '.[http]'" in first, first


# ---------------------------------------------------------------------------
# Logging where the application's goes
# ---------------------------------------------------------------------------

APP_LOGGING = """
    import logging, socketserver
    import netserver

    class Hello(socketserver.StreamRequestHandler):
        def handle(self):
            logging.getLogger("myapp").warning("handled a client")
            self.wfile.write(b"hello\\n")

    netserver.Single.run(Hello)
"""


def _dict_config(log):
    return {"version": 1,
            "formatters": {"f": {"format": "%(name)s|%(levelname)s|%(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "f"}},
            "root": {"handlers": ["file"], "level": "INFO"}}


def _toml_config(log):
    return textwrap.dedent(f"""\
        version = 1
        [formatters.f]
        format = "%(name)s|%(levelname)s|%(message)s"
        [handlers.file]
        class = "logging.FileHandler"
        filename = "{log}"
        formatter = "f"
        [root]
        handlers = ["file"]
        level = "INFO"
    """)


def _ini_config(log):
    return textwrap.dedent(f"""\
        [loggers]
        keys = root
        [handlers]
        keys = file
        [formatters]
        keys = f
        [logger_root]
        level = INFO
        handlers = file
        [handler_file]
        class = FileHandler
        args = ('{log}',)
        formatter = f
        [formatter_f]
        format = %(name)s|%(levelname)s|%(message)s
    """)


@pytest.mark.parametrize("kind", ["json", "toml", "ini"])
def test_log_config_sends_netserver_lines_where_the_apps_go(script, tmp_path, kind):
    if kind == "toml":
        pytest.importorskip("tomllib")
    log = tmp_path / "all.log"
    conf = tmp_path / f"logging.{kind}"
    text = {"json": lambda: json.dumps(_dict_config(log)), "toml": lambda: _toml_config(log),
            "ini": lambda: _ini_config(log)}[kind]()
    conf.write_text(text)
    path = script(APP_LOGGING)
    with ServerProcess(["--port", "127.0.0.1:0", "--user", "root", "--log_config", str(conf)], script=path,
                       wait=False) as server:
        def bound():
            match = re.search(r"Binding to TCP port (\d+)", log.read_text() if log.exists() else "")
            return match and int(match.group(1))

        port = wait_until(bound, what="the Binding line in the log_config file")
        assert b"hello" in echo_exchange(("127.0.0.1", port))
        wait_until(lambda: "myapp|WARNING|handled a client" in log.read_text(), what="the app's line")
        server.signal(signal.SIGTERM)
        server.wait_exit()
    text = log.read_text()
    assert re.search(r"^netserver\|NOTICE\|Binding to TCP port \d+", text, re.M), text
    assert "netserver|NOTICE|Received TERM" in text


def test_bad_log_config_is_one_line(tmp_path):
    conf = tmp_path / "logging.json"
    conf.write_text('{"handlers": {}}')
    one_line_error(run(["Single", "--port", "127.0.0.1:0", "--log_config", str(conf)]), "log_config",
                   str(conf), "version")


def test_log_function_takes_a_callable_from_python(script, tmp_path):
    out = tmp_path / "lines.txt"
    path = script(f"""
        import netserver

        def to_file(level, message):
            with open({str(out)!r}, "a") as f:
                f.write(f"{{level}} {{message}}\\n")

        class Quick(netserver.Server):
            def pre_loop_hook(self):
                self.log(1, "from the hook")
                self._shutdown_request = True

        Quick.run(port="127.0.0.1:0", user="root", log_function=to_file)
    """)
    done = run([], script=path)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert re.search(r"^2 Binding to TCP port \d+", text, re.M) and "1 from the hook" in text
    assert "Binding" not in done.stderr


def test_access_log_to_stdout_creates_no_file(tmp_path):
    pytest.importorskip("httptools")
    import http.client

    with ServerProcess(["HTTP", "--port", "127.0.0.1:0", "--user", "root", "--access_log_file", "STDOUT"],
                       cwd=str(tmp_path)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        conn.request("GET", "/to-stdout")
        assert conn.getresponse().status == 200
        conn.close()
        server.wait_for(r'"GET /to-stdout HTTP/1.1" 200')
    assert not (tmp_path / "STDOUT").exists()


def test_log_function_from_the_command_line_and_by_method_name(script, tmp_path):
    out = tmp_path / "lines.txt"
    (tmp_path / "sink.py").write_text(textwrap.dedent(f"""
        def write(level, message):
            with open({str(out)!r}, "a") as f:
                f.write(f"sink {{level}} {{message}}\\n")
    """))
    path = script(f"""
        import netserver

        class Quick(netserver.Server):
            def pre_loop_hook(self):
                self._shutdown_request = True

            def my_log(self, level, message):
                with open({str(out)!r}, "a") as f:
                    f.write(f"method {{level}} {{message}}\\n")

        Quick.run()
    """)
    env = dict(python_env(), PYTHONPATH=str(tmp_path) + os.pathsep + python_env()["PYTHONPATH"])
    assert run(["--port", "127.0.0.1:0", "--user", "root", "--log_function", "sink:write"], script=path,
               env=env).returncode == 0
    assert run(["--port", "127.0.0.1:0", "--user", "root", "--log_function", "my_log"], script=path).returncode == 0
    text = out.read_text()
    assert re.search(r"^sink 2 Binding to TCP port", text, re.M) and re.search(r"^method 2 Binding", text, re.M)
    one_line_error(run(["--port", "127.0.0.1:0", "--log_function", "nosuchmodule:write"], script=path),
                   "log_function", "nosuchmodule")
