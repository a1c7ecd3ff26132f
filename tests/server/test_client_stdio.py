"""``no_client_stdout 0``: print()/input() talk to the client — plain, TLS, and per thread under Thread.

The default (``no_client_stdout 1``) leaves stdin/stdout alone: a socketserver handler
that prints debugging lines keeps printing them to the server's stdout.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from harness import TIMEOUT, ServerProcess

HANDLER = '''
import os, socketserver, sys, threading
import netserver

PERSONALITY = getattr(netserver, sys.argv.pop(1))


class Tied(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            name = input()                    # the client's first line
        except EOFError:                      # stdin is the server's own (/dev/null here)
            name = "no-input"
        print(f"hello {name}", flush=True)
        if os.environ.get("SUBPROCESS"):
            os.system("echo from a subprocess")
        if PERSONALITY is netserver.Thread:
            BARRIER.wait(10)                    # both clients are served at once
            for _ in range(50):
                print(f"line for {name}")
        print("bye", flush=True)


BARRIER = threading.Barrier(2)
PERSONALITY.run(Tied)
'''


def serve(write_script, personality, *args, env=None):
    script = write_script(HANDLER)
    environment = None
    if env:
        from harness import python_env
        environment = dict(python_env(), **env)
    return ServerProcess([personality, *args], script=script, env=environment)


def converse(sock, name):
    sock.sendall(name.encode() + b"\n")
    data = b""
    while not data.endswith(b"bye\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_plain_client_gets_print_input_and_subprocess_output(write_script):
    with serve(write_script, "Single", "--port", "127.0.0.1:0", "--no_client_stdout", "0",
               env={"SUBPROCESS": "1"}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            assert converse(conn, "plain") == "hello plain\nfrom a subprocess\nbye\n"
        # The server's own stdout is its own again between connections.
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            assert converse(conn, "again") == "hello again\nfrom a subprocess\nbye\n"


def test_tls_client_gets_print_through_tls(write_script, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with serve(write_script, "PreForkSimple", "--port", "127.0.0.1:0/ssl", "--no_client_stdout", "0",
               "--max_servers", "1", "--SSL_cert_file", str(cert_file), "--SSL_key_file", str(key_file),
               "--user", "root") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                assert converse(conn, "tls") == "hello tls\nbye\n"


def test_thread_each_client_gets_its_own_output(write_script):
    with serve(write_script, "Thread", "--port", "127.0.0.1:0", "--no_client_stdout", "0") as server:
        results = {}

        def client(name):
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
                results[name] = converse(conn, name)

        threads = [threading.Thread(target=client, args=(name,)) for name in ("alpha", "beta")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        for name in ("alpha", "beta"):
            assert results[name] == f"hello {name}\n" + f"line for {name}\n" * 50 + "bye\n", name


def test_by_default_print_goes_to_the_servers_stdout(write_script):
    with serve(write_script, "Single", "--port", "127.0.0.1:0") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            conn.sendall(b"quiet\n")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(100) == b""  # nothing printed reached the client
        server.wait_for(r"^hello no-input$")


CONVERSATION = '''
import socketserver, sys
import netserver


class Prompt(socketserver.BaseRequestHandler):
    def handle(self):
        print("Welcome")                      # no flush: the client must see it before it writes
        for line in sys.stdin:
            print("You said", line.strip())
            if line.strip() == "quit":
                return
            sys.stdout.write("next? ")        # a prompt without a newline, then a read


getattr(netserver, sys.argv.pop(1)).run(Prompt)
'''


def read_until(sock, ending):
    data = b""
    while not data.endswith(ending):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("personality", ["Single", "Thread", "PreFork"])
def test_an_interactive_client_gets_each_line_and_prompt_while_it_is_served(write_script, personality):
    """Net::Server's client STDOUT is autoflushed: a line-by-line protocol gets each reply before
    it sends the next line, and a prompt before the server waits for input."""
    script = write_script(CONVERSATION)
    with ServerProcess([personality, "--port", "127.0.0.1:0", "--no_client_stdout", "0"], script=script) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as conn:
            assert read_until(conn, b"Welcome\n") == b"Welcome\n"
            conn.sendall(b"hello\n")
            assert read_until(conn, b"next? ") == b"You said hello\nnext? "
            conn.sendall(b"quit\n")
            assert read_until(conn, b"You said quit\n") == b"You said quit\n"
