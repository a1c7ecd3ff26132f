"""MultiType: use the first usable personality named by ``server_type``.

Options of every personality are accepted (so ``--max_servers`` works
whichever one is chosen); once the options are read, the server becomes an
instance of the chosen personality with your subclass's methods still first
in line.
"""

from __future__ import annotations


from ..options import Option, Source, declared_options
from ..options.option import normalize_template
from ..options.sources import Config
from ..server import Server
from . import PERSONALITIES, LoadError, canonical_name, load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type

__all__ = ["MultiType", "chosen_declarations"]


def _server_type(value: Any) -> str:
    name = canonical_name(value)
    if name is None or name == "MultiType":
        raise ValueError("not a personality (one of " + ", ".join(n for n in PERSONALITIES if n != "MultiType") + ")")
    return name


def chosen_declarations(cls: type, chosen: Type[Server]) -> Dict[str, Option]:
    """Options ``chosen`` declares that ``cls`` does not: their defaults are the chosen personality's.

    (``max_servers`` is 256 for Fork and 50 for PreFork; ``HTTP --server_type PreFork`` gets 50.)
    """
    own = declared_options(cls)
    return {name: option for name, option in declared_options(chosen).items() if name not in own}


_COMBINED: Dict[Tuple[Type[Server], Type[Server]], type] = {}


def combine(base: Type[Server], personality: Type[Server]) -> type:
    """``base`` (the user's class) over ``personality``: their methods first, then the personality's."""
    if issubclass(base, personality) and base._personality == personality._personality:
        return base
    key = (base, personality)
    if key not in _COMBINED:
        _COMBINED[key] = type(f"{base.__name__}", (base, personality),
                              {"_personality": personality._personality, "__module__": base.__module__})
    return _COMBINED[key]


class MultiType(Server):
    """Tries each ``server_type`` in order; Single when none is usable."""

    _personality = "MultiType"

    OPTIONS: Tuple[Option, ...] = (
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
            for name, option in declared_options(cls).items():
                template.setdefault(name, option)
        return template

    def configure(self, run_options: Mapping[str, Any], argv: Optional[Sequence[str]] = None,
                  run_source: Optional[Source] = None) -> Config:
        config = super().configure(run_options, argv, run_source)
        chosen = None
        for name in config.server_type:
            try:
                chosen = load(name)
                break
            except LoadError as exc:
                self.log(3, f"server_type {name}: {exc}; trying the next one")
        for name, option in chosen_declarations(type(self), chosen or Server).items():
            config.set_default(name, option.default_value())
        self.__class__ = combine(type(self), chosen or Server)
        self._personality_defaults(config)
        init = getattr(self, "_personality_init", None)
        if init is not None:
            # The chosen personality's constructor never ran: create its per-instance state now.
            init()
        return config

    def _personality_defaults(self, config: Config) -> None:
        """Options left at their default take the chosen personality's default.

        Every personality's options were accepted, the first declaration of
        each name giving its default (Fork's ``max_servers`` 256); once the
        personality is chosen, its own declarations apply (PreFork's 50).
        """
        template = normalize_template(self.options({}))
        values = config._values  # a default is not "set in code": keep its source
        for name, option in template.items():
            if name in values and config.source_of(name).kind == Source.DEFAULT:
                values[name] = option.default_value()
