"""Fixtures for the reliability suite: reuse the process-level fixtures and helpers.

tests/process holds ``proctools`` (observing processes through /proc) and the
``servers`` / ``clients`` fixtures (``write_script`` is the root conftest's); they are loaded from
there rather than copied.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROCESS = os.path.join(os.path.dirname(HERE), "process")
if PROCESS not in sys.path:
    sys.path.insert(0, PROCESS)

_spec = importlib.util.spec_from_file_location("_process_fixtures", os.path.join(PROCESS, "conftest.py"))
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

servers = _fixtures.servers
clients = _fixtures.clients
