"""The ``netserver`` command: ``netserver [PERSONALITY] [OPTIONS...]`` and ``netserver status``.

Net::Server's ``net-server``: with nothing, an echo server on port 20203 (a
MultiType whose ``server_type`` defaults to Fork); a first word naming a
personality picks it.  Options take every command-line form of the library
(``--key value``, ``--key=value``, ``key=value``, ``--flag``) and, as
``net-server`` allows, a bare ``key value``.  This module is the only place
that prints usage or chooses an exit status.
"""

from __future__ import annotations

import copy
import os
import re
import sys

from .version import __version__
from .configcheck import take_request
from .log import LogConfigError
from .options import Option, OptionError, normalize_template, parse_argv
from .personalities import PERSONALITIES, LoadError, canonical_name, load
from .proto import BindError
from .server import Server, ServerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Type

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

USAGE = """\
usage: netserver [PERSONALITY] [OPTIONS...] [--check-config | --print-config]
       netserver status --pid_file FILE      (or --scoreboard_file FILE)

Runs a Net::Server-style server.  PERSONALITY: Single, INET, MultiType, Fork,
PreForkSimple, PreFork, Thread, Multiplex or HTTP; without one, an echo server
(MultiType running as Fork).  Options: --name value, --name=value, name=value.

Examples:
  netserver                                  an echo server on port 20203
                                             (try: nc localhost 20203)
  python myserver.py --port 8080             your script's own Server.run()
                                             takes these same options
  netserver HTTP --app myapp:application --port 8080
                                             a WSGI app (myapp.py here)
  netserver HTTP --app ./hello.cgi --port 8080
                                             a CGI script
  netserver PreFork --port 20203 --setsid --pid_file /run/echo.pid \\
            --user nobody --log_file /var/log/echo.log
                                             a daemon; stop it gracefully:
                                             kill -QUIT $(cat /run/echo.pid)

  -h, --help        this help, with the chosen personality's options and
                    defaults (netserver PreFork --help)
  --version         the version
  --check-config    read every source, resolve the ports, load the app, open
                    the files (truncating none); exit 0, or one line and exit 2
  --print-config    print every option's value and where it came from
  netserver status  the live pool of a running PreFork server; exit 3 if it
                    is not running
"""


STATUS_USAGE = """\
usage: netserver status --pid_file FILE
       netserver status --scoreboard_file FILE

Shows the live pool of a running PreFork or PreForkSimple server, read from
its scoreboard file (scoreboard_file, or pid_file + ".scoreboard"): each
child's pid, state, requests served, age and current client, and the totals.

Exit status, as systemctl status has it: 0 running, 3 not running,
1 the scoreboard cannot be read, 2 usage error.
"""


def _usage_error(message: str, command: str = "netserver") -> int:
    sys.stderr.write(f"netserver: error: {message}\n")
    sys.stderr.write(f"Try '{command} --help'.\n")
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
    from .status import UNREADABLE, report

    if "-h" in words or "--help" in words:
        sys.stdout.write(STATUS_USAGE)
        return EXIT_OK
    template = {name: Option(name, to_path) for name in ("pid_file", "scoreboard_file")}
    try:
        entries, rest = parse_argv(_bare_key_forms(words, set(template)), template)
    except OptionError as exc:
        return _usage_error(str(exc), "netserver status")
    if rest:
        return _usage_error(f"unknown option or word {rest[0]!r}", "netserver status")
    given = {key: template[key].parse(value, source) for key, value, source in entries}
    if not given:
        return _usage_error("give --pid_file or --scoreboard_file", "netserver status")
    try:
        code, text = report(given.get("pid_file"), given.get("scoreboard_file"))
    except ValueError as exc:
        sys.stderr.write(f"netserver: {exc}\n")
        return UNREADABLE
    except OSError as exc:
        sys.stderr.write(f"netserver: cannot read the scoreboard {exc.filename}: {exc.strerror}\n")
        return UNREADABLE
    sys.stdout.write(text)
    return code


def main(argv: Optional[Sequence[str]] = None) -> None:
    try:
        status = run_command(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``--print-config | head``): stop quietly, as Python's documentation
        # recommends; stdout goes to /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_FAILURE
    sys.exit(status)


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
    # Net::Server's net-server: with no personality, a MultiType that runs as Fork.
    defaults = {"server_type": ["Fork"]} if name == "MultiType" and not explicit else {}
    probe = cls(None, None, bind_and_activate=False)  # asked for its options only
    template = normalize_template(probe.options({}))
    if "-h" in words or "--help" in words:
        sys.stdout.write(USAGE + "\n" + _help_options(cls, probe, template, words, defaults))
        return EXIT_OK
    words = _bare_key_forms(words, set(template))
    mode, plain = take_request(words)
    try:
        _, rest = parse_argv(plain, template)
    except OptionError as exc:
        return _usage_error(str(exc))
    if rest:
        first = plain[0] if plain else None
        if (not explicit and rest[0] == first and first not in template
                and re.match(r"^[A-Za-z][\w:]*$", first)):
            # A leading bare name is where a personality goes: say so.
            known = ", ".join(PERSONALITIES)
            return _usage_error(f"unknown personality {first!r} (one of {known})")
        return _usage_error(f"unknown option or word {rest[0]!r}")
    if defaults:
        cls = type(cls.__name__, (cls,), {"default_values": lambda self: dict(defaults)})
    try:
        cls.run(argv=words)
    except (OptionError, ServerError, BindError, LogConfigError) as exc:
        if mode is not None:  # --check-config: one line, exit 2, whatever failed
            sys.stderr.write(f"netserver: error: {exc}\n")
            return EXIT_USAGE
        reported = getattr(exc, "reported_to_launcher", False)  # after detaching: the launcher printed it
        if isinstance(exc, OptionError):  # a bad value: one line naming the option and its source
            if not reported:
                sys.stderr.write(f"netserver: error: {exc}\n")
            return EXIT_USAGE
        if not reported:
            sys.stderr.write(f"netserver: {exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _help_options(cls: Type[Server], probe: Any, template: Dict[str, Option], words: List[str],
                  defaults: Dict[str, Any]) -> str:
    """The options part of ``--help``: the chosen personality's, with its defaults.

    A MultiType (and HTTP) accepts every personality's options; the help
    lists those of the personality it would run as (``--server_type``, or
    the default), with that personality's defaults.
    """
    from .options.reference import format_help, wrap_paragraph  # --help only: shutil, textwrap
    from .personalities.multitype import MultiType, chosen_declarations

    if not issubclass(cls, MultiType):
        return wrap_paragraph(f"Options of {cls._personality}:") + "\n" + format_help(template)
    asked = None
    try:
        entries, _ = parse_argv(_bare_key_forms(words, set(template)), template)
        raw = [value for key, value, _ in entries if key == "server_type"]
        asked = template["server_type"].parse(raw) if raw else None
    except OptionError:
        pass
    names = asked or defaults.get("server_type") or template["server_type"].default
    chosen = Server
    for candidate in names:
        try:
            chosen = load(candidate)
            break
        except LoadError:
            continue
    shown = {key: option for key, option in template.items() if key in Server.options(probe, {})}
    shown.update(chosen_declarations(cls, chosen))
    if "server_type" in defaults:
        option = copy.copy(template["server_type"])
        option.default = list(defaults["server_type"])
        shown["server_type"] = option
    heading = (f"Options of {cls._personality} running as {chosen._personality} (every personality's "
               f"options are accepted; see netserver NAME --help):")
    return wrap_paragraph(heading) + "\n" + format_help(shown)
