"""Looking at a configuration without serving: ``--check-config``, ``--print-config``, typos.

``--check-config`` (also what a HUP asks of the new image) reads every
source, resolves the ports into listeners (building TLS contexts), loads the
application, and checks that every file the server will write can be opened
— without truncating or creating any of them and without binding.  A
failure is an :class:`~netserver.options.OptionError` naming the option and
the file, or a :class:`~netserver.engine.ServerError`.

``--print-config`` prints each option's effective value and the source it
came from (command line, ``conf_file`` and line, ``run()`` arguments, …).

Words left on a script's command line that look like a misspelt option
(``--prot 8080``) are reported: a warning by default (the words stay in
``sys.argv`` for the application), an error with ``strict_options``.

Must not import the server (the server imports this module).
"""

from __future__ import annotations

import os
import sys

from .options import Option, OptionError, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Mapping, Optional, Sequence, TextIO, Tuple

__all__ = ["FLAGS", "take_request", "check", "print_config", "unknown_words", "report_unknown"]

#: Command-line flags → what they ask for.
FLAGS = {"--check-config": "check", "--print-config": "print"}

#: Options naming a file the server writes (created if missing, appended to, never truncated here).
WRITTEN_FILES = ("log_file", "pid_file", "scoreboard_file", "lock_file", "access_log_file")


def take_request(words: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """Pick ``--check-config`` / ``--print-config`` out of ``words``: ``(mode or None, the rest)``."""
    mode = None
    rest = []
    for word in words:
        if word in FLAGS:
            mode = mode or FLAGS[word]
        else:
            rest.append(word)
    return mode, rest


# -- --check-config -------------------------------------------------------------------


def check_together(config: Any) -> None:
    """What no single option's converter can see: values that need each other (``--check-config``
    and a start, in post_configure, refuse them alike)."""
    mode = config.get("proxy_protocol", "off")
    if mode != "off" and not config.get("proxy_allow"):
        raise OptionError("proxy_protocol", mode, config.source_of("proxy_protocol"),
                          "needs proxy_allow: the addresses of the proxies trusted to name the client "
                          "(none are trusted by default)")


def check(server: Any) -> str:
    """Check ``server`` (configured, not bound); returns a one-line summary or raises."""
    config = server.config
    check_together(config)
    server.pre_bind()  # port specs resolved, listeners planned, TLS contexts built
    for name in WRITTEN_FILES:
        value = config.get(name)
        if isinstance(value, str) and _is_file_target(name, value):
            check_writable(name, value, config.source_of(name))
    _check_paths_for_user(server, config)
    where = ", ".join(listener.describe() for listener in server.listeners)
    return f"configuration OK: {server._title()}, {where}"


def _check_paths_for_user(server: Any, config: Any) -> None:
    """The files a start hands to ``user`` (the log file, UNIX socket files) are refused when that
    user could redirect them (privileges.path_hazard): say so now, naming the option."""
    from . import privileges

    try:
        identity = privileges.plan_identity(config.get("user"), config.get("group"))
    except privileges.PrivilegeError as exc:
        raise OptionError("user", config.get("user"), config.source_of("user"), str(exc)) from None
    if identity is None:
        return
    paths = [("port", listener.target.address) for listener in server.listeners if getattr(listener, "owns_path", False)]
    log_file = config.get("log_file")
    if isinstance(log_file, str) and _is_file_target("log_file", log_file):
        paths.append(("log_file", log_file))
    for name, path in paths:
        hazard = privileges.path_hazard(path, identity)
        if hazard is not None:
            raise OptionError(name, path, config.source_of(name), f"a start would refuse it: {hazard}")


def _is_file_target(name: str, value: str) -> bool:
    upper = value.upper()
    if upper in ("STDERR", "STDOUT", "/DEV/STDERR", "/DEV/STDOUT"):
        return False
    if name == "log_file":
        from .log import describe_target

        return describe_target(value).startswith("file ")
    return True


def check_writable(name: str, path: str, source: Optional[Source] = None) -> None:
    """``path`` can be opened for appending: an existing file is opened (not truncated), a
    missing one is created and removed again.  ``OptionError`` naming the option and the file."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path) or "."

    def fail(reason: str) -> None:
        raise OptionError(name, path, source, reason)

    if os.path.isdir(path):
        fail("is a directory")
    if os.path.exists(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            fail(f"cannot open for writing: {exc.strerror}")
        os.close(fd)
        return
    if not os.path.isdir(directory):
        fail(f"directory {directory} does not exist")
    try:  # the only sure test (root passes os.access everywhere): create it, and remove it again
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        fail(f"cannot create it in {directory}: {exc.strerror}")
    os.close(fd)
    os.unlink(path)


# -- --print-config ---------------------------------------------------------------------


def print_config(server: Any, template: Mapping[str, Option], relevant: Sequence[str],
                 stream: Optional[TextIO] = None) -> None:
    """One row per value: option, value as typed, where it came from.

    ``relevant``: options shown even at their default (the others only when set).
    """
    from .options.reference import grouped, shown_value

    stream = stream or sys.stdout
    config = server.config
    keep = set(relevant)
    rows = []
    for options in grouped(template).values():
        for option in options:
            if option.name not in config:
                continue
            source = config.source_of(option.name)
            if source.kind == Source.DEFAULT and option.name not in keep and option.section != "Application":
                continue
            value = config.get(option.name)
            if option.multi and value:
                for item, origin in zip(value, config.sources_of_each(option.name), strict=True):
                    rows.append((option.name, shown_value(option, [item]), str(origin)))
            else:
                rows.append((option.name, shown_value(option, value), str(source)))
    width = max((len(r[0]) for r in rows), default=10) + 2
    value_width = min(max((len(r[1]) for r in rows), default=10) + 2, 40)
    stream.write(f"# {server._title()}: option, value, source\n")
    for name, value, source in rows:
        stream.write(f"{name:<{width}}{value:<{value_width}} {source}\n".rstrip() + "\n")
    if "port" in config and "host" in config:
        stream.write("# a host inside a port (HOST:PORT) wins over host; --check-config shows what each port binds\n")
    stream.flush()


# -- unknown words on a script's command line ------------------------------------------------


def unknown_words(rest: Sequence[str], template: Mapping[str, Option]) -> List[Tuple[str, Optional[str]]]:
    """Dashed words not naming an option: ``(word, the options it may be a typo of, or None)``."""
    names = list(template)
    found = []
    for word in rest:
        if not word.startswith("-") or word in ("-", "--") or word[1:2].isdigit():
            continue
        key = word.lstrip("-").partition("=")[0].replace("-", "_")
        import difflib  # imported on the first unknown word, not by every start

        close = difflib.get_close_matches(key, names, n=2, cutoff=0.75)
        found.append((word, " or --".join(close) if close else None))
    return found


def report_unknown(rest: Sequence[str], template: Mapping[str, Option], strict: bool, log: Any) -> None:
    """Warn about likely typos (every unknown dashed word is an error when ``strict``)."""
    for word, close in unknown_words(rest, template):
        hint = f" (did you mean --{close}?)" if close else ""
        if strict:
            raise OptionError(word.lstrip("-").partition("=")[0], None, Source(Source.COMMAND_LINE),
                              f"unknown option{hint}")
        if close:
            log(1, f"Unknown option {word}{hint}: left on the command line for the application "
                   f"(strict_options makes this an error)")
