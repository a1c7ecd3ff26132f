"""What every personality mixin shares, so it works over two kinds of base.

``class S(PreForkMixIn, netserver.Server)`` gets options from all five
sources.  ``class S(PreForkMixIn, socketserver.TCPServer)`` is a plain
socketserver class: its options come from constructor keywords
(``S(addr, Handler, max_servers=8)``) or class attributes
(``max_servers = 8``), and the rest is the mixin's defaults.
"""

from __future__ import annotations

from typing import Any, Dict

from ..engine import Engine
from ..log import ServerLog
from ..options import Source, merge, normalize_template
from ..options import core
from ..options.sources import entries_from_mapping

__all__ = ["PersonalityMixIn"]


class PersonalityMixIn(Engine):
    """Base of the ``XMixIn`` classes.

    Subclasses declare ``OPTIONS`` and create their per-instance state in
    ``_personality_init``, which runs before the base constructor (which may
    already bind and configure).
    """

    personality = "Single"

    def __init__(self, *args: Any, **options: Any):
        self._engine_init()
        self._personality_init()
        from ..server import Server

        if isinstance(self, Server):
            super().__init__(*args, **options)
            return
        template = normalize_template(self._collect_options())
        own = {name: options.pop(name) for name in list(options) if name in template}
        super().__init__(*args, **options)
        cls = type(self)
        from_class = {name: getattr(cls, name) for name in template
                      if not callable(getattr(cls, name, None)) and getattr(cls, name, None) is not None}
        self.config = merge([
            entries_from_mapping(own, Source(Source.CONSTRUCTOR), template),
            entries_from_mapping(from_class, Source("class attribute"), template),
        ], template)
        self.logger = ServerLog.from_config(self.config)
        self._serving_prepared = True

    def _personality_init(self) -> None:
        """Create per-instance state (override; call super)."""

    def _collect_options(self) -> Dict[str, Any]:
        template: Dict[str, Any] = {option.name: option for option in core.OPTIONS}
        for klass in reversed(type(self).__mro__):
            for option in klass.__dict__.get("OPTIONS", ()):
                template[option.name] = option
        return template

    def is_netserver(self) -> bool:
        """True over ``netserver.Server`` (listeners, run() flow), False over a socketserver class."""
        return hasattr(self, "listeners")
