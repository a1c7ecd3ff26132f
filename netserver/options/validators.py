"""Converters for option values.

Each takes one raw value (a string from the command line or a conf file, or a
Python value given in code) and returns the canonical value, or raises
``ValueError`` with a short reason; :class:`~netserver.options.option.Option`
adds the option's name and the value's source to the message.
"""

from __future__ import annotations

import importlib
import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n", "", "none", "undef"}


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be a boolean (1/0, yes/no, true/false, on/off)")


def to_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            try:
                number = int(text, 10)
            except ValueError:
                raise ValueError("must be a whole number") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            if maximum is None:
                raise ValueError(f"must be at least {minimum}")
            if minimum is None:
                raise ValueError(f"must be at most {maximum}")
            raise ValueError(f"must be {minimum}..{maximum}")
        return number

    convert.__name__ = "to_int"
    return convert


def to_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if number != number or number < 0:
        raise ValueError("must be a non-negative number")
    return number


def to_str(value: Any) -> str:
    if value is None:
        raise ValueError("must not be empty")
    return str(value)


def to_optional_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def choice(*allowed: str) -> Callable[[Any], str]:
    lowered = {a.lower(): a for a in allowed}

    def convert(value: Any) -> str:
        text = str(value).strip()
        try:
            return lowered[text.lower()]
        except KeyError:
            raise ValueError("must be one of " + ", ".join(allowed)) from None

    convert.__name__ = "choice"
    return convert


def switch_or(*modes: str) -> Callable[[Any], str]:
    """``"0"``, ``"1"`` or one of ``modes``: an on/off word (``on``, ``yes``, ``true``, ``off``…, as
    every boolean option takes, and Net::Server's sample conf file writes ``reverse_lookups on``)
    is ``"1"`` or ``"0"``."""
    pick = choice("0", "1", *modes)

    def convert(value: Any) -> str:
        if isinstance(value, bool) or str(value).strip().lower() in _TRUE | _FALSE:
            return "1" if to_bool(value) else "0"
        try:
            return pick(value)
        except ValueError:
            raise ValueError("must be on/off (1/0, yes/no, true/false) or one of " + ", ".join(modes)) from None

    convert.__name__ = "switch_or"
    return convert


def to_path(value: Any) -> str:
    """A file name, made absolute now (the server may chdir or chroot later)."""
    text = to_str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return os.path.abspath(text)


def to_existing_dir(value: Any) -> str:
    path = to_path(value)
    if not os.path.isdir(path):
        raise ValueError("no such directory")
    return path


def to_readable_file(value: Any) -> str:
    path = to_path(value)
    if not os.path.isfile(path):
        raise ValueError("no such file")
    if not os.access(path, os.R_OK):
        raise ValueError("file is not readable")
    return path


def to_user(value: Any) -> str:
    """A user name or uid that exists on this system (kept as given)."""
    import pwd

    text = to_str(value).strip()
    try:
        if text.isdigit():
            pwd.getpwuid(int(text))
        else:
            pwd.getpwnam(text)
    except KeyError:
        raise ValueError("no such user") from None
    return text


def to_group(value: Any) -> str:
    """One or more group names or gids (space or comma separated) that exist."""
    import grp  # an extension module: loaded only by a server that names a group

    text = to_str(value).strip()
    for part in text.replace(",", " ").split():
        try:
            if part.isdigit():
                grp.getgrgid(int(part))
            else:
                grp.getgrnam(part)
        except KeyError:
            raise ValueError(f"no such group {part!r}") from None
    if not text:
        raise ValueError("must not be empty")
    return text


def to_signal_names(value: Any) -> list[str]:
    """Signal names (``HUP``, ``SIGUSR1``, ``usr2``), comma or space separated."""
    text = value if isinstance(value, str) else ",".join(map(str, value))
    names = []
    for part in text.replace(",", " ").split():
        name = part.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if not isinstance(getattr(signal, name, None), signal.Signals):
            raise ValueError(f"unknown signal {part!r}")
        names.append(name[3:])
    return names


def to_dotted(value: Any) -> Any:
    """``module:attribute`` (or ``module.attribute``), imported now; objects pass through."""
    if not isinstance(value, str):
        return value
    return import_dotted(value)


def import_dotted(path: str) -> Any:
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError("must be module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name}: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name} has no attribute {attribute}{_shadowing(module)}") from None
    return target


def _shadowing(module: Any) -> str:
    """Why a module may not be the user's: ``site`` is the standard module, not ./site.py."""
    found = getattr(module, "__file__", None) or "built in"
    mine = os.path.join(os.getcwd(), module.__name__.replace(".", os.sep) + ".py")
    if os.path.exists(mine) and os.path.abspath(found) != mine:
        return f" ({module.__name__} is {found}, which comes before {mine}: rename yours)"
    return ""


def somaxconn() -> int:
    """The kernel's maximum listen backlog (Net::Server's default ``listen``)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(int(f.read()), 1)
    except (OSError, ValueError):
        import socket

        return socket.SOMAXCONN
