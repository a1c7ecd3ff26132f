"""The import layering of STYLE.md §7: a module never imports from a layer below it.

Every ``import`` in every module counts, deferred ones inside functions
included (a deferred import hides a cycle; it does not remove it).  The
layers are in ``LAYERS`` below, from 1 (imported by everything) to 5
(imports everything).
"""

from __future__ import annotations

import ast
import os


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "netserver")

# Module (or package) → layer.  Layer 1 knows nothing of a server; 2 is the server; 3 the
# personalities; 4 HTTP over them; 5 the command line and the public surface.
LAYERS = {
    "options": 1, "proto": 1, "signals": 1, "daemon": 1, "privileges": 1, "access": 1, "log": 1, "loghandlers": 1, "records": 1,
    "process": 1, "proxy": 1, "systemd": 1, "client": 1, "status": 1, "restart": 1,
    "configcheck": 1, "clientstdio": 1, "version": 1,
    "engine": 2, "hooks": 2, "handlers": 2, "binding": 2, "server": 2, "host": 2, "contract": 2,
    "personalities": 3,
    "http": 4,
    "cli": 5, "docgen": 5, "__main__": 5, "__init__": 5,
}

def modules():
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield dotted.removesuffix(".__init__") if name == "__init__.py" else dotted, path


def layer_of(dotted: str) -> int:
    parts = dotted.split(".")
    if parts == ["netserver"]:
        return LAYERS["__init__"]
    return LAYERS[parts[1]]


def imported(dotted: str, path: str, is_package: bool):
    """The netserver modules ``path`` imports (absolute names; ``from . import x`` resolved)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    package = dotted if is_package else dotted.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "netserver":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "netserver":
                continue
            for alias in node.names:  # from . import x, from netserver import server: x may be a module
                candidate = os.path.join(ROOT, *f"{target}.{alias.name}".split("."))
                if os.path.isdir(candidate) or os.path.exists(candidate + ".py"):
                    yield f"{target}.{alias.name}"
                else:
                    yield target  # a name defined in target (its __init__ when a package)


def upward_imports():
    found = set()
    for dotted, path in modules():
        is_package = path.endswith("__init__.py")
        mine = layer_of(dotted)
        for target in imported(dotted, path, is_package):
            parts = target.split(".")
            if layer_of(target) > mine:
                found.add((dotted, ".".join(parts[:2])))
    return found


def test_every_module_has_a_layer():
    for dotted, _ in modules():
        layer_of(dotted)  # KeyError names a module missing from LAYERS


def test_no_upward_import():
    found = upward_imports()
    assert not found, "imports from a lower layer (STYLE.md §7): " + ", ".join(f"{a} -> {b}" for a, b in sorted(found))
