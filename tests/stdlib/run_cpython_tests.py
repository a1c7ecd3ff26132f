"""Run CPython's own tests of socketserver and of its stdlib consumers against the compat modules.

    python tests/stdlib/run_cpython_tests.py [SUITE ...]

SUITE is any of ``socketserver``, ``httpservers``, ``xmlrpc``, ``wsgiref``,
``logging`` (default: all).  ``compat.socketserver`` and
``compat.http_server`` are put in place of ``socketserver`` and
``http.server`` before anything imports them, so ``xmlrpc.server``,
``wsgiref.simple_server`` and ``logging.config`` build their servers on
netserver too; the script checks that the substitution took (the servers
the tests build are netserver servers) and exits with unittest's status.
Prints SKIP and exits 0 when this Python has no ``test`` package.
"""

import importlib
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

for consumer in ("xmlrpc.server", "wsgiref.simple_server", "logging.config"):
    assert consumer not in sys.modules, f"{consumer} was imported before the substitution"

import http  # noqa: E402

import compat.http_server  # noqa: E402
import compat.socketserver  # noqa: E402
import netserver  # noqa: E402

sys.modules["socketserver"] = compat.socketserver
sys.modules["http.server"] = compat.http_server
http.server = compat.http_server

SUITES = {
    "socketserver": "test.test_socketserver",
    "httpservers": "test.test_httpservers",
    "xmlrpc": "test.test_xmlrpc",
    "wsgiref": "test.test_wsgiref",
    "logging": "test.test_logging",
}

# Of test_logging, the tests that run socketserver servers (handlers over sockets, config.listen).
LOGGING_CLASSES = {
    "SocketHandlerTest", "DatagramHandlerTest", "SysLogHandlerTest", "HTTPHandlerTest",
    "UnixSocketHandlerTest", "UnixDatagramHandlerTest", "UnixSysLogHandlerTest", "IPv6SysLogHandlerTest",
}
LOGGING_LISTEN_TESTS = ("test_listen_",)

# Bookkeeping of the module's own names (DESIGN.md allows leaving these out; docs/compat.md says why).
LEFT_OUT = {"test_all"}

try:
    modules = {name: importlib.import_module(SUITES[name]) for name in (sys.argv[1:] or SUITES)}
except ImportError as exc:
    print(f"SKIP: CPython's test package is not installed here ({exc})")
    sys.exit(0)

# The substitution must have taken, or the run proves nothing.
import socketserver  # noqa: E402
import xmlrpc.server  # noqa: E402
import wsgiref.simple_server  # noqa: E402

assert socketserver is compat.socketserver
assert issubclass(socketserver.TCPServer, netserver.SingleMixIn)
assert issubclass(compat.http_server.HTTPServer, netserver.SingleMixIn)
assert issubclass(xmlrpc.server.SimpleXMLRPCServer, netserver.SingleMixIn), "xmlrpc did not get compat"
assert issubclass(wsgiref.simple_server.WSGIServer, netserver.SingleMixIn), "wsgiref did not get compat"
if "httpservers" in modules:
    assert modules["httpservers"].server is compat.http_server
if "logging" in modules:
    assert modules["logging"].ThreadingTCPServer is compat.socketserver.ThreadingTCPServer
print("substituted: socketserver -> compat.socketserver, http.server -> compat.http_server", flush=True)


def wanted(suite_name, test):
    name = test._testMethodName
    if name in LEFT_OUT:
        return False
    if suite_name == "logging":
        return type(test).__name__ in LOGGING_CLASSES or name.startswith(LOGGING_LISTEN_TESTS)
    return True


def selected(suite_name, suite):
    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.addTest(selected(suite_name, item))
        elif wanted(suite_name, item):
            kept.addTest(item)
    return kept


suite = unittest.TestSuite()
for name, module in modules.items():
    suite.addTest(selected(name, unittest.defaultTestLoader.loadTestsFromModule(module)))

result = unittest.TextTestRunner(verbosity=int(os.environ.get("VERBOSE", "1"))).run(suite)
print(f"{result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)} passed, "
      f"{len(result.failures) + len(result.errors)} failed, {len(result.skipped)} skipped")
sys.exit(0 if result.wasSuccessful() else 1)
