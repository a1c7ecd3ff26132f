"""``NamedTuple`` class syntax without importing :mod:`typing` at run time.

``typing`` is half a megabyte and an extension module that every forked
child of every server would copy (docs/performance.md, "Drop-in servers"),
while netserver uses it only for annotations, which ``from __future__ import
annotations`` never evaluates.  The records netserver declares with
``class X(NamedTuple)`` are built here by :func:`collections.namedtuple`;
type checkers see ``typing.NamedTuple`` itself.
"""

from __future__ import annotations

import collections

__all__ = ["NamedTuple"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    class _RecordType(type):
        """Turn ``class X(NamedTuple): field: type = default`` into a namedtuple subclass with X's methods."""

        def __new__(mcls, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[field] for field in fields if field in namespace]
            record = collections.namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))
            body = {key: value for key, value in namespace.items() if key not in fields}
            body["__slots__"] = ()
            return type(name, (record,), body)

    class NamedTuple(metaclass=_RecordType):
        """Base of netserver's records (see the module docstring)."""
