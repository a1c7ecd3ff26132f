"""The ``app`` option: what answers which path (Net::Server::HTTP's dispatch).

``app`` values: ``./script.cgi`` (mounted at ``/script.cgi``),
``/prefix=target`` or ``/prefix target`` (``prefix=target`` mounts at
``/prefix`` too, as in Net::Server), where a target is a CGI script
path or a WSGI callable written ``module:attribute``; from code, a callable
mounts at ``/`` and a dict or list of pairs mounts several.  Mounts are
matched in the order given, on whole path segments; if nothing is mounted at
``/``, the first app also answers ``/``, as in Net::Server.
"""

from __future__ import annotations

import os
import re
import sys

from ..options.validators import import_dotted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Tuple

__all__ = ["Mount", "parse_app", "DispatchTable"]

_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Mount:
    """One ``prefix → target`` entry (target: a WSGI callable or a CGI script path)."""

    __slots__ = ("prefix", "target", "encoded")

    def __init__(self, prefix: str, target: Any):
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
        self.prefix = prefix
        self.target = target
        self.encoded = prefix.encode("latin-1") if prefix != "/" else b""

    def __repr__(self) -> str:
        return f"Mount({self.prefix!r}, {self.target!r})"


def _target(value: Any) -> Any:
    if callable(value):
        return value
    text = str(value).strip()
    if _DOTTED.match(text):
        _current_directory_first()
        app = import_dotted(text)
        if not callable(app):
            raise ValueError(f"{text} is not callable")
        return app
    path = os.path.abspath(text)
    if not os.path.isfile(path):
        raise ValueError(f"no such CGI script {text}")
    if not os.access(path, os.X_OK):
        raise ValueError(f"CGI script {text} is not executable")
    return path


def _current_directory_first() -> None:
    """``--app myapp:application`` finds ``myapp.py`` in the current directory, as with gunicorn.

    ``python -m netserver`` has it on ``sys.path`` already; the ``netserver``
    console script has its own directory there instead.
    """
    cwd = os.getcwd()
    if sys.path[:1] not in ([""], [cwd]):
        sys.path.insert(0, cwd)


def parse_app(value: Any) -> List[Mount]:
    """One ``app`` value → mounts (``ValueError`` naming what is wrong)."""
    if callable(value):
        return [Mount("/", value)]
    if isinstance(value, dict):
        return [Mount(prefix, _target(target)) for prefix, target in value.items()]
    if isinstance(value, (list, tuple)):
        pairs = list(value)
        if len(pairs) % 2:
            raise ValueError("a list of apps must hold prefix, target pairs")
        return [Mount(pairs[i], _target(pairs[i + 1])) for i in range(0, len(pairs), 2)]
    text = str(value).strip()
    if not text:
        raise ValueError("empty app")
    if _DOTTED.match(text):
        return [Mount("/", _target(text))]
    # Net::Server's order: "location target" first, then "location=target"; the location needs
    # no leading slash ("bim=./x.cgi" mounts at /bim).
    for sep in (" ", "="):
        prefix, found, target = text.partition(sep)
        if found and prefix.strip() and target.strip():
            return [Mount(prefix.strip(), _target(target.strip()))]
    return [Mount("/" + os.path.basename(text), _target(text))]


class DispatchTable:
    """Finds the app for a raw request path; returns (app, SCRIPT_NAME, PATH_INFO bytes)."""

    def __init__(self, mounts: List[Mount], default: Callable, wrap: Callable[[Any], Callable]):
        self.mounts = [(m.encoded, m.prefix, wrap(m.target)) for m in mounts]
        if mounts and not any(m.prefix == "/" for m in mounts):
            self.mounts.append((b"", "/", self.mounts[0][2]))  # the first app also answers /
        if not mounts:
            self.mounts.append((b"", "/", default))
        # Longest prefix first keeps '/a/b' from being shadowed by '/a'; '/' last.
        self.mounts.sort(key=lambda m: -len(m[0]))

    def __call__(self, path: bytes) -> Tuple[Callable, str, bytes]:
        for encoded, prefix, app in self.mounts:
            if not encoded:
                return app, "", path
            if path.startswith(encoded) and (len(path) == len(encoded) or path[len(encoded)] == 47):
                return app, prefix, path[len(encoded):]
        raise LookupError(path)

    def describe(self) -> List[str]:
        return [f"Dispatch: {prefix} => {app!r}" for _, prefix, app in self.mounts]
