"""The five configuration sources and their precedence.

Net::Server reads, first one wins: constructor arguments, the command line,
``run()`` arguments, the ``conf_file``, ``default_values()``.  A single
option takes its value from the first source that has it.  A repeatable
(list) option takes *all* its values from the first source that has any, and
accumulates repeats within that source — so ``--port 80 --port 443`` on the
command line replaces the conf file's ports rather than adding to them.

Everything here is pure: argv and file contents in, values and provenance out.
"""

from __future__ import annotations

import re

from .option import Option, OptionError, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

    Entry = Tuple[str, Any, Source]  # (option name, raw value, source)

__all__ = ["Config", "parse_argv", "read_conf_file", "parse_conf_text", "merge"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Config:
    """The parsed options: attribute access plus where each value came from.

    ``server.config.port``; ``server.config.source_of("port")`` → ``Source``.
    A hook may assign new values (``config.max_servers = 10``); the source of
    such a value is recorded as ``set in code``.
    """

    # The values live in the instance ``__dict__``: reading an option (the serving loops do, every
    # pass) is a plain attribute lookup, with no Python-level ``__getattr__`` call.
    __slots__ = ("_sources", "_each", "__dict__")

    def __init__(self, values: Optional[Dict[str, Any]] = None, sources: Optional[Dict[str, Source]] = None,
                 each: Optional[Dict[str, List[Source]]] = None):
        object.__setattr__(self, "_sources", dict(sources or {}))
        # A list option's source per value, when they differ, beside the values they describe.
        object.__setattr__(self, "_each", {name: (tuple((values or {})[name]), list(sources_))
                                           for name, sources_ in (each or {}).items()})
        values = values or {}
        shadowing = sorted(name for name in values if hasattr(Config, name))
        if shadowing:
            raise ValueError(f"option names {shadowing} would hide Config's own attributes")
        self.__dict__.update(values)

    @property
    def _values(self) -> Dict[str, Any]:
        return self.__dict__

    def __getattr__(self, name: str) -> Any:  # only for a name that is not an option
        raise AttributeError(f"no option named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value
        self._sources[name] = Source("set in code")
        self._each.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __iter__(self):
        return iter(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def set_default(self, name: str, value: Any, why: str = "") -> None:
        """Replace ``name``'s value if it is still the declared default (MultiType's chosen
        personality; HTTP's pool size), saying ``why`` in its source (``--print-config``)."""
        if name in self._values and self._sources[name].kind == Source.DEFAULT:
            self._values[name] = value
            if why:
                self._sources[name] = Source(Source.DEFAULT, why)

    def source_of(self, name: str) -> Source:
        """Where ``name``'s value came from (a list option's: where its first value did)."""
        return self._sources[name]

    def sources_of_each(self, name: str) -> List[Source]:
        """Where each value of list option ``name`` came from (``port`` on two conf-file lines: each
        its own line); once code has changed the values, where the first came from, for all."""
        values = self._values[name]
        values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        described, each = self._each.get(name, ((), []))
        return list(each) if described == values else [self._sources[name]] * len(values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


def _split_key(word: str) -> Tuple[str, Optional[str]]:
    key, sep, value = word.partition("=")
    return key, (value if sep else None)


def parse_argv(argv: Sequence[str], template: Mapping[str, Option]) -> Tuple[List[Entry], List[str]]:
    """Pick the words naming known options out of ``argv``.

    Forms: ``--key value``, ``--key=value``, ``-key value``, ``key=value``
    and, for a boolean option, ``--flag``.  Words that are not known options
    are returned untouched, in order, for the application.
    """
    source = Source(Source.COMMAND_LINE)
    entries: List[Entry] = []
    rest: List[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        dashed = word.startswith("-") and word != "-" and word != "--"
        key, value = _split_key(word.lstrip("-") if dashed else word)
        option = template.get(key)
        if option is None or (not dashed and value is None):
            rest.append(word)
            continue
        if value is None:
            if option.flag and (i >= len(argv) or not _looks_like_bool(argv[i])):
                value = "1"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise OptionError(key, None, source, "needs a value")
        entries.append((key, value, source))
    return entries, rest


def _looks_like_bool(word: str) -> bool:
    return word.lower() in {"0", "1", "yes", "no", "true", "false", "on", "off"}


def parse_conf_text(text: str, name: str, template: Mapping[str, Option]) -> List[Entry]:
    """Parse conf-file text: ``key value`` lines, whole-line ``#`` comments, blanks.

    The value is the rest of the line with surrounding white space removed
    (so ``port localhost, 20203, tcp`` works).  An unknown key or a line
    without a value is an error naming the file and line.
    """
    entries: List[Entry] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        source = Source(Source.CONF_FILE, f"{name} line {number}")
        parts = stripped.split(None, 1)
        key = parts[0]
        if not _KEY.match(key):
            raise OptionError(key, stripped, source, "malformed line (expected 'key value')")
        option = template.get(key)
        if option is None:
            raise OptionError(key, parts[1] if len(parts) > 1 else None, source, "unknown option")
        if len(parts) == 1:
            if not option.flag:
                raise OptionError(key, None, source, "needs a value")
            value = "1"
        else:
            value = parts[1]
        entries.append((key, value, source))
    return entries


def read_conf_file(path: str, template: Mapping[str, Option], source: Optional[Source] = None) -> List[Entry]:
    """Read and parse a conf file; an unreadable file is an ``OptionError``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OptionError("conf_file", path, source, f"cannot read: {reason}") from None
    return parse_conf_text(text, path, template)


def entries_from_mapping(values: Mapping[str, Any], source: Source, template: Mapping[str, Option],
                         strict: bool = True) -> List[Entry]:
    """Entries from a dict (constructor, ``run()`` or ``default_values()`` arguments)."""
    entries: List[Entry] = []
    for key, value in values.items():
        if key not in template:
            if strict:
                raise OptionError(key, value, source, "unknown option")
            continue
        entries.append((key, value, source))
    return entries


def merge(layers: Iterable[List[Entry]], template: Mapping[str, Option]) -> Config:
    """Apply the layers, highest precedence first, over the declared defaults.

    Each value is converted by its option; a conversion error names the
    option, the value and its source.
    """
    chosen: Dict[str, Tuple[Any, Source]] = {}
    each: Dict[str, List[Source]] = {}
    for layer in layers:
        grouped: Dict[str, List[Tuple[Any, Source]]] = {}
        for key, value, source in layer:
            grouped.setdefault(key, []).append((value, source))
        for key, items in grouped.items():
            if key in chosen:
                continue
            option = template[key]
            if option.multi:
                values: List[Any] = []
                for raw, source in items:
                    parsed = option.parse(raw, source)
                    values.extend(parsed)
                    if len(items) > 1:
                        each.setdefault(key, []).extend([source] * len(parsed))
                chosen[key] = (values, items[0][1])
            else:
                raw, source = items[0]
                chosen[key] = (option.parse(raw, source), source)
    merged: Dict[str, Any] = {}
    sources: Dict[str, Source] = {}
    default = Source(Source.DEFAULT)
    for name, option in template.items():
        if name in chosen:
            merged[name], sources[name] = chosen[name]
        else:
            merged[name], sources[name] = option.default_value(), default
    return Config(merged, sources, each)
