"""Shared test set-up: make tests/support importable and the repo root first on sys.path."""

import os
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
sys.path.insert(0, os.path.dirname(HERE))

# Under --cov, servers started as subprocesses are measured too (pyproject: [tool.coverage.run]
# patch = subprocess sets COVERAGE_PROCESS_CONFIG).  Their data files must land beside the
# parent's whatever directory they run in, and servers that drop to `nobody` must be able to
# write there: a sticky, world-writable directory, as /tmp is.
if "COVERAGE_PROCESS_CONFIG" in os.environ:
    _coverage_dir = os.path.join(os.path.dirname(HERE), ".coverage-data")
    os.makedirs(_coverage_dir, exist_ok=True)
    try:
        os.chmod(_coverage_dir, 0o1777)
    except OSError:
        pass  # someone else's directory: privilege-dropping servers then go unmeasured
    os.environ["COVERAGE_FILE"] = os.path.join(_coverage_dir, "coverage")


# Markers (registered in pyproject.toml): `process` starts server processes, `slow` takes more
# than about half a second (`pytest -m "not slow"` is the inner loop), `root` needs root and is skipped
# without it.  A directory's marks go to every test in it (new files included); a module or a
# test adds its own with `pytestmark` or a decorator.
DIRECTORY_MARKS = {
    "process": ("process",),
    "daemon": ("process", "root"),
    "http": ("process",),
    "cli": ("process",),
    "integration": ("process",),
    "stdlib": ("process",),
    "dropin": ("process",),  # all but test_namespace.py run the programs as processes
    "parity": ("process",),  # the same server under Perl and Python, side by side
    "bench": ("process", "slow"),
}


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marks
def pytest_collection_modifyitems(config, items):
    root = os.geteuid() == 0
    for item in items:
        top = os.path.relpath(str(item.path), HERE).split(os.sep)[0]
        for name in DIRECTORY_MARKS.get(top, ()):
            item.add_marker(name)
        if not root and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root"))


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
