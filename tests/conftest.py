"""Shared test set-up: make tests/support importable and the repo root first on sys.path."""

import os
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
sys.path.insert(0, os.path.dirname(HERE))


@pytest.fixture
def write_script(tmp_path):
    """``write_script(source)`` writes a dedented server script to tmp_path and returns its path."""
    count = [0]

    def write(source: str) -> str:
        count[0] += 1
        path = tmp_path / f"server_{count[0]}.py"
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write
