"""Hooks and the PreFork parent, side by side with Perl's Net::Server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from client import request
from harness import TIMEOUT, python_env
from proctools import live_children, wait_until
from sidekit import notes, start_both

PERL_NOTE = textwrap.dedent("""
    my $out = shift @ARGV;
    sub note { open my $fh, '>>', $out or die "$out: $!"; print $fh join(' ', @_), "\\n"; close $fh }
""")
PY_NOTE = textwrap.dedent("""
    import os, sys
    import netserver
    OUT = sys.argv.pop(1)

    def note(*words):
        with open(OUT, "a") as fh:
            fh.write(" ".join(str(w) for w in words) + "\\n")
""")

PERL_PREFORK = PERL_NOTE + textwrap.dedent("""
    package T; use base 'Net::Server::PreFork';
    sub child_init_hook { my $s = shift; my $sock = $s->{'server'}->{'parent_sock'};
        print $sock "hello $$\\n"; $sock->flush }
    sub child_is_talking_hook { my ($s, $sock) = @_; my $line = <$sock>;
        main::note('talk', defined $line ? (split ' ', $line)[1] : 'EOF') }
    sub idle_loop_hook { my ($s, $fh) = @_; main::note('idle', scalar @$fh) }
    sub run_n_children_hook { my ($s, $n) = @_; main::note('run_n_children', $n) }
    sub pre_server_close_hook { my $s = shift; main::note('pre_server_close') }
    sub post_child_cleanup_hook { my $s = shift; main::note('post_child_cleanup') }
    T->run(host => '127.0.0.1', port => 0, ipv => 4, min_servers => 2, max_servers => 6,
           min_spare_servers => 0, max_spare_servers => 3, child_communication => 1,
           check_for_waiting => 1, log_level => 3);
""")
PY_PREFORK = PY_NOTE + textwrap.dedent("""
    class T(netserver.PreFork):
        def child_init_hook(self, kind=""):
            self.parent_sock.sendall(f"hello {os.getpid()}\\n".encode())
        def child_is_talking_hook(self, sock):
            line = sock.recv(100)
            note("talk", line.split()[1].decode() if line else "EOF")
        def idle_loop_hook(self, readable=()):
            note("idle", len(readable))
        def run_n_children_hook(self, n):
            note("run_n_children", n)
        def pre_server_close_hook(self):
            note("pre_server_close")
        def post_child_cleanup_hook(self):
            note("post_child_cleanup")

    T.run(host="127.0.0.1", port=0, ipv=4, min_servers=2, max_servers=6, min_spare_servers=0,
          max_spare_servers=3, child_communication=True, log_level=3)
""")


def test_prefork_parent_hooks_and_child_communication(servers, tmp_path):
    """Both: children talk on their socketpair, the parent's hooks hear each once; idle_loop_hook
    runs on the parent's passes and sees the readable sockets; close hooks in the same order."""
    both = start_both(servers, tmp_path, PERL_PREFORK, PY_PREFORK)
    observed = {}
    for side, (server, path) in both.items():
        wait_until(lambda server=server: len(live_children(server.pid)) == 2, what=f"{side}: 2 children")
        pids = {str(pid) for pid in live_children(server.pid)}
        wait_until(lambda path=path, pids=pids: {w[1] for w in notes(path) if w[0] == "talk"} == pids,
                   what=f"{side}: children talking")
        wait_until(lambda path=path: any(w[0] == "idle" for w in notes(path)), what=f"{side}: idle_loop_hook")
        server.signal(signal.SIGTERM)
        server.wait_exit()
        got = notes(path)
        observed[side] = {
            "first": got[0],
            "talk_calls": sum(w[0] == "talk" and w[1] != "EOF" for w in got),
            "idle_saw_a_talker": any(w[0] == "idle" and w[1] != "0" for w in got),
            "closing": [w[0] for w in got if w[0] in ("pre_server_close", "post_child_cleanup")],
        }
    assert observed["python"] == observed["perl"] == {
        "first": ["run_n_children", "2"],
        "talk_calls": 2,
        "idle_saw_a_talker": True,
        "closing": ["pre_server_close", "post_child_cleanup"],
    }


def test_ttin_starts_a_child_at_once_and_raises_min_and_max(servers, tmp_path):
    perl = PERL_NOTE + textwrap.dedent("""
        package T; use base 'Net::Server::PreFork';
        T->run(host => '127.0.0.1', port => 0, ipv => 4, min_servers => 2, max_servers => 6,
               min_spare_servers => 0, max_spare_servers => 3, check_for_waiting => 1, log_level => 3);
    """)
    python = PY_NOTE + textwrap.dedent("""
        netserver.PreFork.run(host="127.0.0.1", port=0, ipv=4, min_servers=2, max_servers=6,
                              min_spare_servers=0, max_spare_servers=3, log_level=3)
    """)
    for side, (server, _) in start_both(servers, tmp_path, perl, python).items():
        wait_until(lambda server=server: len(live_children(server.pid)) == 2, what=f"{side}: 2 children")
        server.signal(signal.SIGTTIN)
        # min_servers went up with max_servers: a third child, without any load.
        wait_until(lambda server=server: len(live_children(server.pid)) == 3, what=f"{side}: a third child after TTIN")
        server.signal(signal.SIGTERM)
        server.wait_exit()


def test_fatal_hook_on_a_bind_failure_gets_message_package_file_line(tmp_path):
    perl = tmp_path / "fatal.pl"
    perl.write_text(textwrap.dedent("""
        package T; use base 'Net::Server';
        sub fatal_hook { my ($self, @args) = @_; print STDOUT join("\\t", scalar(@args), @args), "\\n" }
        T->run(port => $ARGV[0], host => '127.0.0.1', ipv => 4);
    """))
    python = tmp_path / "fatal.py"
    python.write_text(textwrap.dedent("""
        import sys, netserver
        class T(netserver.Server):
            def fatal_hook(self, *args):
                print("\\t".join(str(a) for a in (len(args), *args)), flush=True)
        T.run(port=sys.argv[1], host="127.0.0.1", ipv=4)
    """))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        results = {}
        for side, command in (("perl", ["perl", str(perl)]), ("python", [sys.executable, str(python)])):
            done = subprocess.run([*command, str(port)], capture_output=True, text=True, timeout=TIMEOUT,
                                  env=python_env())
            assert done.returncode != 0, (side, done.stdout, done.stderr)
            line = next(line for line in done.stdout.splitlines() if line[:1].isdigit())
            results[side] = line.split("\t")
    for side, (count, message, package, file, line) in results.items():
        assert count == "4", side
        assert str(port) in message and "Address already in use" in message, (side, message)
        assert package and os.path.isfile(file) and line.isdigit(), (side, package, file, line)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: what happens when root names no user")
def test_started_as_root_without_user_both_keep_root_and_warn(servers, tmp_path):
    perl = PERL_NOTE + textwrap.dedent("""
        package T; use base 'Net::Server';
        sub process_request { my $s = shift; print "uid $<\\n" }
        T->run(host => '127.0.0.1', port => 0, ipv => 4);
    """)
    python = PY_NOTE + textwrap.dedent("""
        import socketserver
        class Uid(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(f"uid {os.getuid()}\\n".encode())
        netserver.Server.run(Uid, host="127.0.0.1", port=0, ipv=4)
    """)
    for side, (server, _) in start_both(servers, tmp_path, perl, python).items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            assert conn.makefile("rb").readline() == b"uid 0\n", side
        server.wait_for(r"(?i)User not defined")


@pytest.mark.slow
def test_parent_read_hook_hears_a_child_start_processing(servers, tmp_path):
    perl = PERL_NOTE + textwrap.dedent("""
        package T; use base 'Net::Server::PreFork';
        sub parent_read_hook { my ($s, $line) = @_; chomp $line; main::note('status', $line); return 0 }
        T->run(host => '127.0.0.1', port => 0, ipv => 4, min_servers => 1, max_servers => 6,
               min_spare_servers => 0, max_spare_servers => 3, check_for_waiting => 1);
    """)
    python = PY_NOTE + textwrap.dedent("""
        class T(netserver.PreFork):
            def parent_read_hook(self, line):
                note("status", line.strip())
                return False
        T.run(host="127.0.0.1", port=0, ipv=4, min_servers=1, max_servers=6, min_spare_servers=0,
              max_spare_servers=3)
    """)
    for side, (server, path) in start_both(servers, tmp_path, perl, python).items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            greeting = conn.recv(200)  # the echo server's greeting: a child is serving us
            child = greeting.split(b"(")[1].split(b")")[0].decode()
            wait_until(lambda child=child, path=path: ["status", child, "processing"] in notes(path),
                       what=f"{side}: processing line")
            conn.sendall(b"quit\r\n")
        wait_until(lambda child=child, path=path: notes(path)[-1:] == [["status", child, "waiting"]],
                   what=f"{side}: waiting again")


def test_tied_stdin_and_stdout_with_no_client_stdout_0(servers, tmp_path):
    perl = PERL_NOTE + textwrap.dedent("""
        package T; use base 'Net::Server';
        sub process_request { my $line = <STDIN>; $line =~ s/[\\r\\n]+$//; print "hello $line\\n";
                              system("echo from a subprocess") }
        T->run(host => '127.0.0.1', port => 0, ipv => 4, no_client_stdout => 0);
    """)
    python = PY_NOTE + textwrap.dedent("""
        import socketserver
        class Tied(socketserver.BaseRequestHandler):
            def handle(self):
                print(f"hello {input()}", flush=True)
                os.system("echo from a subprocess")
        netserver.Server.run(Tied, host="127.0.0.1", port=0, ipv=4, no_client_stdout=0)
    """)
    for side, (server, _) in start_both(servers, tmp_path, perl, python).items():
        reply = request(server.port, b"there\n")
        assert reply == b"hello there\nfrom a subprocess\n", side


PERL_CONNECTION_HOOKS = PERL_NOTE + textwrap.dedent("""
    package T; use base 'Net::Server';
    my $n = 0;
    sub process_request { print "served\\r\\n" }
    sub post_accept_hook { $n++; main::note('post_accept', $n) }
    sub allow_deny_hook { main::note('allow_deny', $n); return $n != 2 }
    sub request_denied_hook { main::note('request_denied', $n) }
    sub post_process_request_hook { main::note('post_process_request', $n) }
    sub post_client_connection_hook { main::note('post_client_connection', $n) }
    T->run(host => '127.0.0.1', port => 0, ipv => 4, log_level => 3, @ARGV);
""")
PY_CONNECTION_HOOKS = PY_NOTE + textwrap.dedent("""
    import socketserver

    class Served(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"served\\r\\n")

    class T(netserver.Server):  # hooks written as Net::Server's: no arguments
        n = 0
        def post_accept_hook(self):
            T.n += 1
            note("post_accept", T.n)
        def allow_deny_hook(self):
            note("allow_deny", T.n)
            return T.n != 2
        def request_denied_hook(self):
            note("request_denied", T.n)
        def post_process_request_hook(self):
            note("post_process_request", T.n)
        def post_client_connection_hook(self):
            note("post_client_connection", T.n)

    T.run(Served, host="127.0.0.1", port=0, ipv=4, log_level=3)
""")


def test_connection_hooks_for_a_served_and_a_refused_client(servers, tmp_path):
    """Net::Server's flow: a refused connection (allow_deny_hook false, the second one) still
    ends with post_process_request_hook and post_client_connection_hook."""
    observed = {}
    for side, (server, path) in start_both(servers, tmp_path, PERL_CONNECTION_HOOKS, PY_CONNECTION_HOOKS).items():
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as client:
                while client.recv(100):
                    pass
        wait_until(lambda path=path: ["post_client_connection", "2"] in notes(path), what=f"{side}: both connections")
        server.signal(signal.SIGTERM)
        server.wait_exit()
        observed[side] = notes(path)
    assert observed["python"] == observed["perl"] == [
        ["post_accept", "1"], ["allow_deny", "1"], ["post_process_request", "1"], ["post_client_connection", "1"],
        ["post_accept", "2"], ["allow_deny", "2"], ["request_denied", "2"], ["post_process_request", "2"],
        ["post_client_connection", "2"],
    ]


@pytest.mark.parametrize("rules", [["--cidr_deny", "10.0.0.0/8"], ["--deny", r"10\..*"]])
def test_deny_rules_alone_refuse_a_client_they_do_not_name(servers, tmp_path, rules):
    """Net::Server: "the incoming client must match an allow and not match a deny"."""
    observed = {}
    for side, (server, path) in start_both(servers, tmp_path, PERL_CONNECTION_HOOKS, PY_CONNECTION_HOOKS,
                                           args=rules).items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as client:
            assert client.recv(100) == b"", f"{side} served a client no allow rule names"
        wait_until(lambda path=path: ["post_client_connection", "1"] in notes(path), what=f"{side}: the refusal")
        server.signal(signal.SIGTERM)
        server.wait_exit()
        observed[side] = notes(path)
    assert observed["python"] == observed["perl"] == [
        ["post_accept", "1"], ["request_denied", "1"], ["post_process_request", "1"], ["post_client_connection", "1"]]
