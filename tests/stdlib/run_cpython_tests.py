"""Run CPython's own test_socketserver and test_httpservers against the compat modules.

    python tests/stdlib/run_cpython_tests.py [unittest args...]

``compat.socketserver`` and ``compat.http_server`` are put in place of
``socketserver`` and ``http.server`` before the test modules are imported;
the script checks that the substitution took (the servers the tests build
are netserver servers) and exits with unittest's status.  Prints SKIP and
exits 0 when this Python has no ``test`` package.
"""

import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import http  # noqa: E402

import compat.http_server  # noqa: E402
import compat.socketserver  # noqa: E402
import netserver  # noqa: E402

sys.modules["socketserver"] = compat.socketserver
sys.modules["http.server"] = compat.http_server
http.server = compat.http_server

try:
    from test import test_httpservers, test_socketserver  # noqa: E402
except ImportError as exc:
    print(f"SKIP: CPython's test package is not installed here ({exc})")
    sys.exit(0)

# The substitution must have taken, or the run proves nothing.
assert test_socketserver.socketserver is compat.socketserver, "test_socketserver did not get compat"
assert test_httpservers.server is compat.http_server, "test_httpservers did not get compat"
assert issubclass(test_socketserver.socketserver.TCPServer, netserver.Server)
assert issubclass(test_httpservers.HTTPServer, netserver.Server)
print("substituted: socketserver -> compat.socketserver, http.server -> compat.http_server", flush=True)

# Bookkeeping of the module's own names (DESIGN.md allows leaving these out; docs/compat.md says why).
LEFT_OUT = {"test_all"}

loader = unittest.TestLoader()
suite = unittest.TestSuite()
for module in (test_socketserver, test_httpservers):
    for test in unittest.defaultTestLoader.loadTestsFromModule(module):
        suite.addTest(test)


def without_left_out(suite):
    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.addTest(without_left_out(item))
        elif item._testMethodName not in LEFT_OUT:
            kept.addTest(item)
    return kept


result = unittest.TextTestRunner(verbosity=int(os.environ.get("VERBOSE", "1"))).run(without_left_out(suite))
print(f"{result.testsRun - len(result.failures) - len(result.errors)} passed, "
      f"{len(result.failures) + len(result.errors)} failed, {len(result.skipped)} skipped")
sys.exit(0 if result.wasSuccessful() else 1)
