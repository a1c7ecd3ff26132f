"""SSL listeners as Net::Server::Proto::SSL has them: a certificate per port (SSL_* keys in a dict
port specification), more SSL_* options passed to Python's ssl module, and a wrong key password
that says so."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys

import pytest

from harness import TIMEOUT, ServerProcess, python_env, run_command

trustme = pytest.importorskip("trustme")

SCRIPT = """
import json, sys
import netserver
netserver.Server.run(port=json.loads(sys.argv.pop(1)), host="127.0.0.1", ipv=4)
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {}
    for name in ("a", "b"):
        cert = ca.issue_cert("127.0.0.1", f"{name}.example")
        files[name] = (str(directory / f"{name}.crt"), str(directory / f"{name}.key"))
        cert.cert_chain_pems[0].write_to_path(files[name][0])
        cert.private_key_pem.write_to_path(files[name][1])
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    encrypted = directory / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"right")))
    files["encrypted"] = (files["b"][0], str(encrypted))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    files["context"] = context
    return files


def names_presented(port, context):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            return {value for kind, value in conn.getpeercert()["subjectAltName"] if kind == "DNS"}


def test_each_port_presents_its_own_certificate(write_script, pki):
    ports = [{"port": 0, "proto": "ssl", "SSL_cert_file": pki[name][0], "SSL_key_file": pki[name][1]}
             for name in ("a", "b")]
    script = write_script(SCRIPT)
    with ServerProcess([json.dumps(ports)], script=script, bindings=2) as server:
        (_, port_a, _), (_, port_b, _) = server.bindings
        assert names_presented(port_a, pki["context"]) == {"a.example"}
        assert names_presented(port_b, pki["context"]) == {"b.example"}


def test_a_port_key_overrides_the_servers_option(write_script, pki):
    ports = [{"port": 0, "proto": "ssl", "SSL_cert_file": pki["a"][0], "SSL_key_file": pki["a"][1]},
             "0/ssl"]
    script = write_script(SCRIPT)
    with ServerProcess([json.dumps(ports), "--SSL_cert_file", pki["b"][0], "--SSL_key_file", pki["b"][1]],
                       script=script, bindings=2) as server:
        (_, port_a, _), (_, port_b, _) = server.bindings
        assert names_presented(port_a, pki["context"]) == {"a.example"}
        assert names_presented(port_b, pki["context"]) == {"b.example"}


def test_unknown_or_bad_ssl_keys_in_a_port_spec_are_errors(write_script, pki):
    script = write_script(SCRIPT)
    for key, value, message in (("SSL_foo", "1", "SSL_foo: not an SSL option"),
                                ("SSL_verify_mode", "sometimes", "SSL_verify_mode")):
        ports = [{"port": 0, "proto": "ssl", "SSL_cert_file": pki["a"][0], key: value}]
        done = subprocess.run([sys.executable, script, json.dumps(ports)], capture_output=True, text=True,
                              timeout=TIMEOUT, env=python_env())
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Binding to" not in done.stderr


def test_more_ssl_options_reach_the_ssl_module(pki):
    base = ["Single", "--port", "127.0.0.1:0/ssl", "--SSL_cert_file", pki["a"][0], "--SSL_key_file", pki["a"][1]]
    with ServerProcess(base + ["--SSL_honor_cipher_order", "--SSL_ecdh_curve", "prime256v1"]) as server:
        assert names_presented(server.port, pki["context"]) == {"a.example"}
    done = run_command(base + ["--SSL_ecdh_curve", "no-such-curve"])
    assert done.returncode != 0 and "SSL_ecdh_curve 'no-such-curve': unknown curve" in done.stderr


def test_a_wrong_key_password_says_so(pki):
    cert, key = pki["encrypted"]
    base = ["Single", "--port", "127.0.0.1:0/ssl", "--SSL_cert_file", cert, "--SSL_key_file", key]
    done = run_command(base + ["--SSL_key_password", "wrong"])
    assert done.returncode != 0
    assert "wrong password" in done.stderr and "PEM lib" not in done.stderr, done.stderr
    with ServerProcess(base + ["--SSL_key_password", "right"]) as server:
        assert names_presented(server.port, pki["context"]) == {"b.example"}
