"""MultiType: use the first usable personality named by ``server_type``.

Options of every personality are accepted (so ``--max_servers`` works
whichever one is chosen); once the options are read, the server becomes an
instance of the chosen personality with your subclass's methods still first
in line.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ..options import Option, Source
from ..options.sources import Config
from ..server import Server
from . import PERSONALITIES, LoadError, canonical_name, load

__all__ = ["MultiType"]


def _server_type(value: Any) -> str:
    name = canonical_name(value)
    if name is None or name == "MultiType":
        raise ValueError("not a personality (one of " + ", ".join(n for n in PERSONALITIES if n != "MultiType") + ")")
    return name


_COMBINED: Dict[tuple, type] = {}


def combine(base: type, personality: type) -> type:
    """``base`` (the user's class) over ``personality``: their methods first, then the personality's."""
    if issubclass(base, personality) and base.personality == personality.personality:
        return base
    key = (base, personality)
    if key not in _COMBINED:
        _COMBINED[key] = type(f"{base.__name__}", (base, personality),
                              {"personality": personality.personality, "__module__": base.__module__})
    return _COMBINED[key]


def _take_declared_defaults(config: Config, cls: type) -> None:
    """Options left at their default take the chosen class's own default.

    Every personality's options were accepted, each with the first default
    found (Fork's ``max_servers`` 256); PreFork's is 50, as in Net::Server.
    """
    seen = set()
    for klass in cls.__mro__:
        for option in klass.__dict__.get("OPTIONS", ()):
            if option.name in seen or option.name not in config:
                continue
            seen.add(option.name)
            if config.source_of(option.name).kind == Source.DEFAULT:
                default = option.default
                config._values[option.name] = list(default) if isinstance(default, list) else default


class MultiType(Server):
    """Tries each ``server_type`` in order; Single when none is usable."""

    personality = "MultiType"

    OPTIONS = (
        Option("server_type", _server_type, ["Single"], multi=True, section="MultiType", metavar="NAME",
               doc="Personality to run as; repeat to give fallbacks, tried in order."),
    )

    def options(self, template: Dict[str, Any]) -> Dict[str, Any]:
        super().options(template)
        for name in PERSONALITIES:
            if name in ("MultiType", "Single"):
                continue
            try:
                cls = load(name)
            except LoadError:
                continue
            for klass in reversed(cls.__mro__):
                for option in klass.__dict__.get("OPTIONS", ()):
                    template.setdefault(option.name, option)
        return template

    def configure(self, run_options: Mapping[str, Any], argv: Optional[Sequence[str]] = None) -> Config:
        config = super().configure(run_options, argv)
        chosen = None
        for name in config.server_type:
            try:
                chosen = load(name)
                break
            except LoadError as exc:
                self.log(3, f"server_type {name}: {exc}; trying the next one")
        self.__class__ = combine(type(self), chosen or Server)
        _take_declared_defaults(config, type(self))
        init = getattr(self, "_personality_init", None)
        if init is not None:
            # The chosen personality's constructor never ran: create its per-instance state now.
            init()
        return config
