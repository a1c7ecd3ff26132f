"""Run the same scenario on Perl's Net::Server and on netserver (see conftest.py)."""

from __future__ import annotations

import os
import re
import textwrap
from typing import List

from harness import python_env

HERE = os.path.dirname(os.path.abspath(__file__))
PERL_EXEC = os.path.join(HERE, "perl_exec.py")  # ServerProcess runs Python scripts: this one execs perl

PERL_BOUND = r"Bound to auto-assigned port (\d+)"
NETSERVER_BOUND = r"Binding to \w+ port (\d+)"


def start_both(servers, tmp_path, perl: str, python: str, args=(), env=None):
    """Start the Perl and the Python server; each gets a notes file as its first argument.

    Returns ``{"perl": (server, notes_path), "python": (server, notes_path)}``, both bound.
    """
    started = {}
    for side, source, suffix, bound in (("perl", perl, ".pl", PERL_BOUND),
                                        ("python", python, ".py", NETSERVER_BOUND)):
        script = tmp_path / f"{side}{suffix}"
        script.write_text(textwrap.dedent(source))
        notes = tmp_path / f"{side}.notes"
        command = [str(script), str(notes), *args] if side == "perl" else [str(notes), *args]
        server = servers.start(command, script=PERL_EXEC if side == "perl" else str(script),
                               env=dict(python_env(), **(env or {})))
        server.port = int(server.wait_for(bound)[0].group(1))
        started[side] = (server, str(notes))
    return started


def notes(path) -> List[List[str]]:
    try:
        with open(path) as fh:
            return [line.split() for line in fh.read().splitlines()]
    except FileNotFoundError:
        return []


def first(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else ""


def start_commands(servers, perl_args, netserver_args, cwd=None):
    """``net-server PERL_ARGS`` and ``netserver NETSERVER_ARGS``, both bound: ``{"perl": s, "python": s}``."""
    perl = servers.start(["/usr/bin/net-server", *perl_args], script=PERL_EXEC, cwd=cwd)
    perl.port = int(perl.wait_for(PERL_BOUND)[0].group(1))
    python = servers.start(list(netserver_args), cwd=cwd)
    python.port = int(python.wait_for(NETSERVER_BOUND)[0].group(1))
    return {"perl": perl, "python": python}
