"""One option, declared once.

An :class:`Option` carries everything about a setting — name, converter,
default, whether it repeats, its section and a one-line doc.  The parser, the
command line's ``--help``, the error messages and ``docs/options.md`` are all
derived from these declarations, so an option is never described twice.

This module must not import the server; it is used by everything else.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional

__all__ = ["Option", "OptionError", "Source", "normalize_template"]


class OptionError(ValueError):
    """A bad option value: names the option, the value and where it came from.

    Renders as ``port: '70000' from command line: must be 0..65535``.
    """

    def __init__(self, name: str, value: Any, source: "Source | str | None", message: str):
        self.name = name
        self.value = value
        self.source = source
        self.message = message
        detail = ("" if value is None else f" {value!r}") + (f" from {source}" if source else "")
        super().__init__(f"{name}:{detail}: {message}" if detail else f"{name}: {message}")




class Source:
    """Where a value came from: a kind (``command line``, ``conf_file``, …) and a detail."""

    __slots__ = ("kind", "detail")

    CONSTRUCTOR = "constructor arguments"
    COMMAND_LINE = "command line"
    RUN = "run() arguments"
    CONF_FILE = "conf_file"
    DEFAULT_VALUES = "default_values()"
    DEFAULT = "default"

    def __init__(self, kind: str, detail: str = ""):
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}" if self.detail else self.kind

    def __repr__(self) -> str:
        return f"Source({self.kind!r}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and (self.kind, self.detail) == (other.kind, other.detail)

    def __hash__(self) -> int:
        return hash((self.kind, self.detail))


def _identity(value: Any) -> Any:
    return value


class Option:
    """The declaration of one option.

    ``convert`` turns one raw value (a string from the command line or a conf
    file, or any Python value given in code) into its canonical form, raising
    ``ValueError`` with a short reason when it cannot.  For a ``multi`` option
    it is applied to each element and the result is a list.
    """

    __slots__ = ("name", "convert", "default", "multi", "section", "doc", "metavar", "flag", "show")

    def __init__(
        self,
        name: str,
        convert: Callable[[Any], Any] = _identity,
        default: Any = None,
        *,
        multi: bool = False,
        section: str = "Server",
        doc: str = "",
        metavar: Optional[str] = None,
        flag: bool = False,
        show: Optional[Callable[[Any], str]] = None,
    ):
        self.name = name
        self.convert = convert
        self.default = default
        self.multi = multi
        self.section = section
        self.doc = doc
        self.metavar = metavar or ("BOOL" if flag else "VALUE")
        self.flag = flag
        self.show = show  # canonical value -> the text a user would type (for --help and the docs)

    def __repr__(self) -> str:
        return f"Option({self.name!r})"

    def default_value(self) -> Any:
        """A fresh copy of the default (lists are never shared between servers)."""
        if self.multi:
            return list(self.default or ())
        return self.default

    def parse(self, raw: Any, source: "Source | str | None" = None) -> Any:
        """Convert one source's raw value(s); errors name the option and source."""
        if self.multi:
            items = raw if isinstance(raw, list) or type(raw) is tuple else [raw]  # a NamedTuple (PortSpec) is one value
            values: list = []
            for item in items:
                value = self._convert_one(item, source)
                # A converter may split one value into several ("USR1,USR2").
                values.extend(value) if isinstance(value, list) else values.append(value)
            return values
        if isinstance(raw, list) and raw:
            raw = raw[0]  # a single-valued option repeated in one source: first wins
        return self._convert_one(raw, source)

    def _convert_one(self, raw: Any, source: "Source | str | None") -> Any:
        try:
            return self.convert(raw)
        except OptionError:
            raise
        except (ValueError, TypeError, LookupError, OSError) as exc:
            raise OptionError(self.name, raw, source, str(exc) or exc.__class__.__name__) from None

    @classmethod
    def from_default(cls, name: str, default: Any) -> "Option":
        """An option a subclass declared Net::Server style, as ``template[name] = default``.

        A list default makes a repeatable option.  A bool, int or float
        default makes string values from the command line or a conf file
        convert to that type.
        """
        from .validators import to_bool, to_float, to_int

        if isinstance(default, Option):
            return default
        if isinstance(default, (list, tuple)):
            return cls(name, default=list(default), multi=True, section="Application")
        if isinstance(default, bool):
            return cls(name, to_bool, default, section="Application", flag=True)
        if isinstance(default, int):
            return cls(name, to_int(), default, section="Application")
        if isinstance(default, float):
            return cls(name, to_float, default, section="Application")
        return cls(name, default=default, section="Application")


def normalize_template(template: Mapping[str, Any]) -> Dict[str, Option]:
    """Turn a template that may hold plain defaults into name → Option."""
    return {name: Option.from_default(name, value) for name, value in template.items()}


def declared_options(cls: type) -> Dict[str, "Option"]:
    """Every ``OPTIONS`` declaration along ``cls``'s MRO, name → Option; a subclass's wins.

    Entries that are not :class:`Option` are skipped, so a third-party class
    with an ``OPTIONS`` of its own (a netserver mixin may sit on any class)
    is no trouble.
    """
    found: Dict[str, Option] = {}
    for klass in reversed(cls.__mro__):
        for option in vars(klass).get("OPTIONS", ()) or ():
            if isinstance(option, Option):
                found[option.name] = option
    return found

