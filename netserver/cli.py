"""The ``netserver`` command: ``netserver [PERSONALITY] [OPTIONS...]`` and ``netserver status``.

Net::Server's ``net-server``: with nothing, an echo server on port 20203 (a
MultiType whose ``server_type`` defaults to Fork); a first word naming a
personality picks it.  Options take every command-line form of the library
(``--key value``, ``--key=value``, ``key=value``, ``--flag``) and, as
``net-server`` allows, a bare ``key value``.  This module is the only place
that prints usage or chooses an exit status.
"""

from __future__ import annotations

import re
import sys
from typing import List, Optional, Sequence

from . import __version__
from .options import OptionError, normalize_template, parse_argv
from .options.reference import format_help
from .personalities import PERSONALITIES, LoadError, canonical_name, load
from .proto import BindError
from .server import ServerError
from .log import LogConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

USAGE = """\
usage: netserver [PERSONALITY] [OPTIONS...]
       netserver status --pid_file FILE      (or --scoreboard_file FILE)

Run a Net::Server-style server.  With no personality, an echo server
(MultiType, server_type Fork) on port 20203: try `nc localhost 20203`.

Personalities: Single, INET, MultiType, Fork, PreForkSimple, PreFork, Thread,
Multiplex, HTTP.  Options: --name value, --name=value, name=value, name value.

  -h, --help     show this help (with the chosen personality's options)
  --version      show the version
"""


def _usage_error(message: str) -> int:
    sys.stderr.write(f"netserver: error: {message}\n")
    sys.stderr.write("Try 'netserver --help'.\n")
    return EXIT_USAGE


def _bare_key_forms(words: Sequence[str], known: set) -> List[str]:
    """``port 8080`` → ``--port 8080`` for known option names (net-server's form)."""
    out: List[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in known and i + 1 < len(words):
            out.append(f"--{word}={words[i + 1]}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def _status(words: List[str]) -> int:
    """``netserver status --pid_file F`` (or ``--scoreboard_file S``): print the live pool."""
    from .options import Option
    from .options.validators import to_path
    from .status import scoreboard_for, status_text

    template = {name: Option(name, to_path) for name in ("pid_file", "scoreboard_file")}
    try:
        entries, rest = parse_argv(_bare_key_forms(words, set(template)), template)
    except OptionError as exc:
        return _usage_error(str(exc))
    if rest:
        return _usage_error(f"unknown option or word {rest[0]!r}")
    given = {key: template[key].parse(value, source) for key, value, source in entries}
    try:
        path = scoreboard_for(given.get("pid_file"), given.get("scoreboard_file"))
        sys.stdout.write(status_text(path))
    except ValueError as exc:
        return _usage_error(str(exc))
    except OSError as exc:
        sys.stderr.write(f"netserver: cannot read the scoreboard {exc.filename}: {exc.strerror}\n")
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> None:
    sys.exit(run_command(sys.argv[1:] if argv is None else list(argv)))


def run_command(words: List[str]) -> int:
    """Parse ``words`` and run the server; returns the exit status."""
    if "--version" in words:
        sys.stdout.write(f"netserver {__version__}\n")
        return EXIT_OK
    if words and words[0] == "status":
        return _status(words[1:])
    name = "MultiType"
    explicit = False
    if words and not words[0].startswith("-") and "=" not in words[0]:
        canonical = canonical_name(words[0])
        if canonical is not None:
            name, explicit, words = canonical, True, words[1:]
    try:
        cls = load(name)
    except LoadError as exc:
        return _usage_error(str(exc))
    from .handlers import EchoHandler

    probe = cls(None, EchoHandler, bind_and_activate=False)
    template = normalize_template(probe.options({}))
    if "-h" in words or "--help" in words:
        sys.stdout.write(USAGE + "\n" + format_help(template))
        return EXIT_OK
    words = _bare_key_forms(words, set(template))
    try:
        _, rest = parse_argv(words, template)
    except OptionError as exc:
        return _usage_error(str(exc))
    if rest:
        first = words[0] if words else None
        if (not explicit and rest[0] == first and first not in template
                and re.match(r"^[A-Za-z][\w:]*$", first)):
            # A leading bare name is where a personality goes: say so.
            known = ", ".join(PERSONALITIES)
            return _usage_error(f"unknown personality {first!r} (one of {known})")
        return _usage_error(f"unknown option or word {rest[0]!r}")
    defaults = {"server_type": ["Fork"]} if name == "MultiType" and not explicit else {}
    if defaults:
        cls = type(cls.__name__, (cls,), {"default_values": lambda self: dict(defaults)})
    try:
        cls.run(argv=words)
    except OptionError as exc:
        return _usage_error(str(exc))
    except (ServerError, BindError, LogConfigError) as exc:
        if not getattr(exc, "reported_to_launcher", False):
            sys.stderr.write(f"netserver: {exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
