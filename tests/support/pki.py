"""A throwaway certificate authority and one server certificate (trustme), as world-readable files.

``server_pki()`` yields ``{"ca", "cert", "key"}`` paths (0644 in a 0755
directory, so a server that drops privileges can still read them) and a
client ``context`` trusting the CA; the directory is removed afterwards.
trustme is a test extra: a test module using this skips without it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from typing import Iterator

import pytest


@contextlib.contextmanager
def server_pki(*names: str, prefix: str = "netserver-pki-") -> Iterator[dict]:
    """A CA and a certificate for ``names`` (default 127.0.0.1 and localhost)."""
    trustme = pytest.importorskip("trustme")
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        os.chmod(directory, 0o755)
        ca = trustme.CA()
        cert = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
        files = {"ca": os.path.join(directory, "ca.pem"), "cert": os.path.join(directory, "cert.pem"),
                 "key": os.path.join(directory, "key.pem")}
        ca.cert_pem.write_to_path(files["ca"])
        cert.cert_chain_pems[0].write_to_path(files["cert"])
        cert.private_key_pem.write_to_path(files["key"])
        for path in files.values():
            os.chmod(path, 0o644)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        yield {**files, "context": context}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
