"""The ``netserver`` command as a user runs it: real processes, real sockets.

Every server is started with ``wait=False`` and made ready inside its
``with`` block, so a server that fails to come up is still stopped (by pid,
through the harness) instead of outliving the test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from harness import ROOT, TIMEOUT, ServerProcess, echo_exchange, python_env, read_all, run_command, serving
from waiting import wait_until

import netserver
from netserver.proto.resolve import bindv6only, ipv6_usable

LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d (\d+) (ERROR|WARNING|NOTICE|INFO|DEBUG) \S")


def echo_lines(reply: bytes, name, pid, said):
    """Check ``reply`` is exactly Net::Server's echo of ``said`` lines then ``quit``.

    ``name``/``pid`` None: take them from the greeting (a forking server
    answers from a child).  Returns (name, pid).
    """
    m = re.match(rb'Welcome to "(\w+)" \((\d+)\)\r\n', reply)
    assert m, reply
    name = m.group(1).decode() if name is None else name
    pid = int(m.group(2)) if pid is None else pid
    out = f'Welcome to "{name}" ({pid})\r\n'
    for line in list(said) + ["quit"]:
        out += f'{name}:{pid}: You said "{line}"\r\n'
    assert reply == out.encode()
    return name, pid


def error_lines(stderr: str):
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def connect_refused(address) -> bool:
    try:
        socket.create_connection(address, timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


# ---------------------------------------------------------------------------
# The default server: `netserver` with nothing
# ---------------------------------------------------------------------------


def _default_port_free() -> bool:
    """Can the server's own bind (SO_REUSEADDR, as it does) take 20203?"""
    family, address = (socket.AF_INET6, ("::", 20203)) if ipv6_usable() else (socket.AF_INET, ("0.0.0.0", 20203))
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def test_no_arguments_serves_echo_on_20203_on_ipv4_and_ipv6():
    if not _default_port_free():
        pytest.skip("port 20203 is in use on this machine")
    expected = 2 if ipv6_usable() and bindv6only() else 1
    with serving([], bindings=expected) as server:
        assert server.port == 20203
        assert all(b[1] == 20203 for b in server.bindings)
        name, _ = echo_lines(echo_exchange(("127.0.0.1", 20203), [b"hello there"]), None, None, ["hello there"])
        if ipv6_usable():
            echo_lines(echo_exchange(("::1", 20203), [b"over six"]), name, None, ["over six"])
        # `quit` ends the connection, not the server: a second client is served.
        echo_lines(echo_exchange(("127.0.0.1", 20203), []), name, None, [])
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0


def test_quit_closes_only_that_connection():
    with serving(["Single", "--port", "127.0.0.1:0"]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            rfile = sock.makefile("rb")
            assert rfile.readline() == f'Welcome to "Server" ({server.pid})\r\n'.encode()
            sock.sendall(b"one\r\n")
            assert rfile.readline() == f'Server:{server.pid}: You said "one"\r\n'.encode()
            sock.sendall(b"quit\r\n")
            assert rfile.readline() == f'Server:{server.pid}: You said "quit"\r\n'.encode()
            assert rfile.read() == b""  # the server closed the connection
        assert b"You said" in echo_exchange(("127.0.0.1", server.port))


# ---------------------------------------------------------------------------
# --help, --version, the console script
# ---------------------------------------------------------------------------


def _sections(help_text: str):
    """option name → the section heading it is listed under."""
    section, found = None, {}
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            section = line[:-1]
        m = re.match(r"^  --(\w+)", line)
        if m and section:
            found[m.group(1)] = section
    return found


def test_help_lists_options_by_section_with_defaults():
    result = run_command(["--help"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: netserver [PERSONALITY] [OPTIONS...]")
    sections = _sections(out)
    assert sections["port"] == "Binding"
    assert sections["host"] == "Binding"
    assert sections["log_level"] == "Logging"
    assert sections["cidr_allow"] == "Access control"
    assert sections["user"] == "Daemon"
    assert sections["server_type"] == "Personality and configuration"
    assert re.search(r"--port SPEC (.|\n)*?\[repeatable; default: 20203\]", out)
    assert re.search(r"--log_level 0-4 (.|\n)*?\[default: 2\]", out)
    assert result.stderr == ""


def _help(*words, columns=80):
    env = dict(python_env(), COLUMNS=str(columns))
    result = subprocess.run([sys.executable, "-m", "netserver", *words, "--help"], capture_output=True,
                            text=True, timeout=TIMEOUT, cwd=ROOT, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def _option_block(text, name):
    """The lines of ``--name``'s entry in the help, joined."""
    m = re.search(rf"^  --{name} .*(\n {{8,}}\S.*)*", text, re.M)
    assert m, f"--{name} not in the help"
    return " ".join(m.group(0).split())


def test_help_leads_with_usage_and_five_examples_then_groups_in_order():
    out = _help()
    head, _, options = out.partition("Options of ")
    assert head.startswith("usage: netserver [PERSONALITY] [OPTIONS...]")
    examples = head.split("Examples:")[1].split("\n\n")[0]
    commands = [line.split()[0:2] for line in examples.splitlines() if re.match(r"^  \S", line)]
    assert len(commands) == 5, examples
    for needle in ("nc localhost 20203", "myserver.py", "--app myapp:application", "--app ./hello.cgi",
                   "--pid_file", "--user", "--check-config", "--print-config", "netserver status"):
        assert needle in head, needle
    groups = [line[:-1] for line in options.splitlines() if line and not line.startswith(" ")
              and line.endswith(":")][1:]
    assert groups == ["Personality and configuration", "Binding", "Access control", "Process pool", "Daemon", "Logging", "TLS"]
    assert _help("HTTP").count("\nHTTP:\n") == 1


@pytest.mark.parametrize("columns", [60, 80, 132])
def test_help_is_wrapped_to_the_terminal_width(columns):
    out = _help("HTTP", columns=columns)
    assert max(len(line) for line in out.splitlines()) <= max(columns, 80 if columns < 80 else columns)
    options = out.partition("Options of ")[2]
    assert max(len(line) for line in options.splitlines()) <= columns


def test_help_defaults_are_the_chosen_personalitys():
    assert "[default: 50]" in _option_block(_help("PreFork"), "max_servers")
    assert "[default: 256]" in _option_block(_help(), "max_servers")  # MultiType running as Fork
    assert "[repeatable; default: Fork]" in _option_block(_help(), "server_type")
    assert "running as Fork" in _help()
    http_prefork = _help("HTTP", "--server_type", "PreFork")
    assert "running as PreFork" in http_prefork
    assert "[default: 50]" in _option_block(http_prefork, "max_servers")
    assert "--min_spare_servers" in http_prefork and "--min_spare_servers" in _help("HTTP")  # PreFork by default
    assert "--min_spare_servers" not in _help("HTTP", "--server_type", "Fork")


def test_help_shows_values_as_typed_and_says_repeatable_once():
    out = _help("HTTP")
    assert "CERT_" not in out
    assert "[default: none]" in _option_block(out, "SSL_verify_mode")
    assert "none|peer|require" in _option_block(out, "SSL_verify_mode")
    assert "(repeatable)" not in out
    for name in ("port", "allow", "cidr_deny", "app"):
        assert _option_block(out, name).lower().count("repeatable") == 1, name


def test_options_doc_lists_every_option_the_help_lists():
    with open(os.path.join(ROOT, "docs", "options.md")) as fh:
        documented = set(re.findall(r"^\| `(\w+)` \|", fh.read(), re.M))
    for personality in ("Single", "Fork", "PreForkSimple", "PreFork", "Thread", "Multiplex", "INET", "HTTP"):
        listed = set(re.findall(r"^  --(\w+)", _help(personality).partition("Options of ")[2], re.M))
        assert listed and listed <= documented, (personality, listed - documented)
    assert {"udp_recv_len", "SSL_cert_file", "SSL_verify_mode", "log_config"} <= documented


def test_help_of_a_personality_and_short_flag():
    result = run_command(["Single", "-h"])
    assert result.returncode == 0
    sections = _sections(result.stdout)
    assert sections["port"] == "Binding"
    assert "server_type" not in sections  # MultiType's option is not Single's


def test_version():
    result = run_command(["--version"])
    assert result.returncode == 0
    assert result.stdout == f"netserver {netserver.__version__}\n"


@pytest.mark.slow
def test_console_script_behaves_like_python_dash_m():
    script = shutil.which("netserver")
    if script is None:
        pytest.skip("the netserver console script is not on PATH")

    # Compare with `python -m netserver` under the script's own interpreter (same installed extras).
    with open(script, "rb") as fh:
        first = fh.readline()
    interpreter = first[2:].split()[0].decode() if first.startswith(b"#!") else sys.executable

    def run(command):
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                              env=python_env(), cwd=ROOT, stdin=subprocess.DEVNULL)

    for words in (["--version"], ["--help"], ["--port", "70000"], ["Bogus"]):
        via_script = run([script, *words])
        via_module = run([interpreter, "-m", "netserver", *words])
        assert (via_script.returncode, via_script.stdout, via_script.stderr) == \
               (via_module.returncode, via_module.stdout, via_module.stderr), words
    with serving(["Single", "--port", "127.0.0.1:0"], script=script) as server:
        echo_lines(echo_exchange(("127.0.0.1", server.port), [b"x"]), "Server", server.pid, ["x"])


# ---------------------------------------------------------------------------
# Usage errors: exit 2, one clear line, nothing started
# ---------------------------------------------------------------------------


def test_unknown_personality_is_named():
    result = run_command(["Bogus", "--port", "0"])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert "personality" in line and "'Bogus'" in line
    assert "Binding" not in result.stderr


@pytest.mark.parametrize("option, value, words", [
    ("port", "70000", ["--port", "70000"]),
    ("ipv", "5", ["--ipv", "5"]),
    ("log_level", "9", ["--log_level", "9"]),
    ("user", "nosuchuser", ["--user", "nosuchuser"]),
    ("port", "70000", ["Single", "--port=70000"]),
])
def test_bad_option_value(option, value, words):
    result = run_command(words)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert option in line and value in line and "command line" in line, line
    assert "Binding" not in result.stderr and "starting" not in result.stderr


def test_conf_file_with_bad_line(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# a comment\n\nport 127.0.0.1:0\nlog_level 2\nno_such_option 5\n")
    result = run_command(["Single", "--conf_file", str(conf)])
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert str(conf) in line and "line 5" in line and "no_such_option" in line
    assert "Binding" not in result.stderr


def test_conf_file_with_bad_value(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("port 127.0.0.1:0\nipv 7\n")
    result = run_command(["Single", "--conf_file", str(conf)])
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert str(conf) in line and "line 2" in line and "ipv" in line and "7" in line


def test_a_bad_port_among_several_names_its_own_conf_file_line(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("host 127.0.0.1\n# comment\nport 0/IPv4\nport 0/IPv6\n")
    result = run_command(["Single", "--conf_file", str(conf), "--check-config"])
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert f"port: '0/IPv6' from conf_file {conf} line 4:" in line, line


def test_good_conf_file_is_used(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("# comment\n\nport 127.0.0.1:0\nlog_level 3\n")
    with serving(["Single", "--conf_file", str(conf)]) as server:
        echo_exchange(("127.0.0.1", server.port))
        server.wait_for(r"INFO CONNECT \[127\.0\.0\.1\]:\d+")  # log_level 3 came from the file


def test_unknown_word():
    result = run_command(["Single", "--port", "127.0.0.1:0", "frobnicate"])
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert "'frobnicate'" in line
    assert "Binding" not in result.stderr


def test_unknown_dashed_option():
    result = run_command(["Single", "--port", "127.0.0.1:0", "--no_such_thing", "1"])
    assert result.returncode == 2
    assert "--no_such_thing" in result.stderr


# ---------------------------------------------------------------------------
# Bind failure: exit 1, the reason, nothing left behind
# ---------------------------------------------------------------------------


def test_port_in_use_exits_1_and_leaves_nothing():
    short = tempfile.mkdtemp(prefix="ns", dir="/tmp")
    try:
        path = os.path.join(short, "first.sock")
        with socket.create_server(("127.0.0.1", 0)) as busy:
            port = busy.getsockname()[1]
            # The UNIX listener binds first; the TCP one then fails.
            result = run_command(["Single", "--port", f"{path}|unix", "--port", f"127.0.0.1:{port}"])
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr
            assert re.search(rf"cannot bind TCP port {port} on host 127\.0\.0\.1.*Address already in use",
                             result.stderr), result.stderr
            assert not os.path.exists(path), "the UNIX listener bound before the failure was left behind"
            # The port stays the other owner's; nothing else answers on it.
            client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            conn, _ = busy.accept()
            conn.close()
            client.close()
    finally:
        shutil.rmtree(short, ignore_errors=True)


# ---------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "TERM"), (signal.SIGINT, "INT")])
def test_term_and_int_stop_with_exit_0(signum, name):
    with serving(["Single", "--port", "127.0.0.1:0"]) as server:
        assert b"You said" in echo_exchange(("127.0.0.1", server.port))
        server.signal(signum)
        assert server.wait_exit() == 0
        assert f"Received {name}" in server.log_text()
        assert "Traceback" not in server.log_text()
        assert connect_refused(("127.0.0.1", server.port))


def test_term_stops_at_once_while_a_client_is_connected():
    with serving(["Single", "--port", "127.0.0.1:0"]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as client:
            assert client.recv(100).startswith(b"Welcome")
            server.signal(signal.SIGTERM)
            try:
                code = server.wait_exit(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0


def _ids(pid: int):
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh if ":" in line)
    return [int(v) for v in fields["Uid"].split()], [int(v) for v in fields["Gid"].split()]


def test_without_user_option_the_server_keeps_its_identity_and_warns_when_root():
    """Net::Server 2.013's code (issue 17; its POD still says nobody): no --user, no change of user."""
    with serving(["Single", "--port", "127.0.0.1:0"]) as server:
        assert b"You said" in echo_exchange(("127.0.0.1", server.port))  # past post_bind, in the loop
        uids, gids = _ids(server.pid)
        assert uids == [os.getuid()] * 4
        assert gids == [os.getgid()] * 4
        if os.geteuid() == 0:
            server.wait_for(r"WARNING User not defined, running as root")
        else:
            assert "User not defined" not in server.log_text()


# ---------------------------------------------------------------------------
# Command-line forms
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("words, name", [
    (["Single", "--port", "127.0.0.1:0"], "Server"),
    (["single", "--port", "127.0.0.1:0"], "Server"),
    (["SINGLE", "--port=127.0.0.1:0"], "Server"),
    (["Net::Server::Single", "--port", "127.0.0.1:0"], "Server"),
    (["port", "0", "host", "127.0.0.1"], None),
    (["port=0", "host=127.0.0.1"], None),
    (["Single", "port", "127.0.0.1:0", "log_level", "3"], "Server"),
    (["--port", "0", "--host=127.0.0.1"], None),
])
def test_command_line_forms(words, name):
    with serving(words) as server:
        assert server.bindings == [("TCP", server.port, "127.0.0.1")]
        reply = echo_exchange(("127.0.0.1", server.port), [b"form"])
        if name is None:  # the default command (MultiType): the greeting may come from a child
            echo_lines(reply, None, None, ["form"])
        else:
            assert "(type Single) starting" in server.log_text()
            echo_lines(reply, name, server.pid, ["form"])
        if "log_level" in words:
            server.wait_for(r"INFO CONNECT")


def test_log_file_gets_time_pid_and_level(tmp_path):
    log = tmp_path / "server.log"
    with ServerProcess(["Single", "--port", "127.0.0.1:0", "--log_file", str(log), "--log_level", "3"],
                       wait=False) as server:
        def port():
            text = log.read_text() if log.exists() else ""
            m = re.search(r"Binding to TCP port (\d+) on host 127\.0\.0\.1", text)
            return m and int(m.group(1))

        bound = wait_until(port)
        assert b"You said" in echo_exchange(("127.0.0.1", bound))
        wait_until(lambda: "CONNECT" in log.read_text())
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        lines = log.read_text().splitlines()
        assert server.log_text() == ""  # everything went to the file, nothing to stderr
    assert len(lines) >= 4
    levels = set()
    for line in lines:
        m = LOG_LINE.match(line)
        assert m, f"log line without time, pid and level: {line!r}"
        assert int(m.group(1)) == server.pid
        levels.add(m.group(2))
    assert {"NOTICE", "INFO"} <= levels
    assert any("Received TERM" in line for line in lines)


# ---------------------------------------------------------------------------
# The echo handler's limits
# ---------------------------------------------------------------------------

LIMITS_SCRIPT = """
import netserver
from netserver.cli import main
netserver.EchoHandler.timeout = 1.0
netserver.EchoHandler.max_line = 64
main()   # the netserver command, with the handler's limits lowered
"""


@pytest.fixture
def limited_server(tmp_path):
    script = tmp_path / "limited.py"
    script.write_text(textwrap.dedent(LIMITS_SCRIPT))
    with serving(["--port", "127.0.0.1:0"], script=str(script)) as server:
        yield server


def _concurrent(server) -> bool:
    """Does this server serve several clients at once (the default Fork does)?"""
    return re.search(r"\(type (\w+)\) starting", server.log_text()).group(1) != "Single"


@pytest.mark.slow
def test_idle_client_is_timed_out_and_another_client_served(limited_server):
    address = ("127.0.0.1", limited_server.port)
    with socket.create_connection(address, timeout=TIMEOUT) as silent:
        start = time.monotonic()
        assert silent.recv(100).startswith(b"Welcome")
        with socket.create_connection(address, timeout=TIMEOUT) as other:
            other.sendall(b"patient\nquit\n")
            if _concurrent(limited_server):
                # Served while the silent client still holds its connection.
                reply = read_all(other)
                silent.setblocking(False)
                with pytest.raises(BlockingIOError):
                    silent.recv(100)  # not timed out yet: nothing to read, no EOF
                silent.settimeout(TIMEOUT)
                assert read_all(silent).endswith(b"Timed Out.\r\n")
            else:
                assert read_all(silent).endswith(b"Timed Out.\r\n")
                reply = read_all(other)
            waited = time.monotonic() - start
    assert 0.9 < waited < TIMEOUT
    echo_lines(reply, None, None, ["patient"])


def test_overlong_line_is_refused_and_another_client_served(limited_server):
    address = ("127.0.0.1", limited_server.port)
    with socket.create_connection(address, timeout=TIMEOUT) as abusive:
        assert abusive.recv(100).startswith(b"Welcome")
        with socket.create_connection(address, timeout=TIMEOUT) as other:
            abusive.sendall(b"A" * 200)  # no newline, longer than max_line
            assert read_all(abusive) == b"Line too long.\r\n"
            other.sendall(b"B" * 60 + b"\nquit\n")  # within the limit
            reply = read_all(other)
    echo_lines(reply, None, None, ["B" * 60])
