"""Fixtures of the HTTP tests: the app directory and a shared ``netserver HTTP`` process."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("httptools")

from httpkit import make_app_dir, serve  # noqa: E402


@pytest.fixture(scope="session")
def app_dir():
    path = make_app_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server(app_dir):
    """``netserver HTTP --app wsgiapps:app`` (PreFork, the default server_type), shared."""
    with serve(["--app", "wsgiapps:app", "--server_revision", "TestServer/1"], app_dir=app_dir) as proc:
        yield proc
