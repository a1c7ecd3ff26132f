"""Render option declarations: ``--help`` text and the Markdown reference.

Both come from the same declarations, so the help, the docs and the parser
cannot disagree (a test regenerates docs/options.md and fails on a diff).
Both list the options in the same groups, in the order a user configures a
server: personality, binding, access, process pool, daemon, logging, TLS,
HTTP; options declared by an application come last.
"""

from __future__ import annotations

import shutil
import textwrap

from .option import Option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional

__all__ = ["GROUPS", "format_help", "format_markdown", "grouped", "shown_value", "wrap_paragraph"]

#: Help group → the declaration sections it gathers, in display order.
GROUPS = (
    ("Personality and configuration", ("MultiType", "Configuration")),
    ("Binding", ("Binding", "UDP")),
    ("Access control", ("Access control", "Proxy protocol")),
    ("Process pool", ("Fork", "PreForkSimple", "PreFork", "Thread", "Multiplex", "INET", "Processes")),
    ("Daemon", ("Daemon",)),
    ("Logging", ("Logging",)),
    ("TLS", ("SSL",)),
    ("HTTP", ("HTTP",)),
)
_BY_NAME = {"server_type": "Personality and configuration"}  # HTTP declares its own server_type in section HTTP


def shown_value(option: Option, value: Any) -> str:
    """A value as the user would type it (``none`` for ``CERT_NONE``, ``on``/``off`` for flags)."""
    if option.multi:
        items = [option.show(v) if option.show else str(v) for v in (value or ())]
        return ", ".join(items) if items else "none"
    if option.show is not None:
        return option.show(value)
    if value is None:
        return "none"
    if option.flag and isinstance(value, bool):
        return "on" if value else "off"
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return str(value)


def _default_text(option: Option) -> str:
    return shown_value(option, option.default)


def grouped(template: Mapping[str, Option]) -> Dict[str, List[Option]]:
    """The options by help group, groups in :data:`GROUPS` order, then any others (``Application``…)."""
    place = {section: (group, position) for group, sections in GROUPS
             for position, section in enumerate(sections)}
    found: Dict[str, List[tuple]] = {group: [] for group, _ in GROUPS}
    for index, option in enumerate(template.values()):
        group, position = place.get(option.section, (option.section, 0))
        if option.name in _BY_NAME:
            group, position = _BY_NAME[option.name], -1
        found.setdefault(group, []).append(((position, index), option))
    return {group: [option for _, option in sorted(items, key=lambda item: item[0])]
            for group, items in found.items() if items}


def _doc(option: Option) -> str:
    doc = option.doc.rstrip()
    if doc and not doc.endswith("."):
        doc += "."
    repeat = "repeatable; " if option.multi else ""
    tail = f"[{repeat}default: {_default_text(option)}]".replace(" ", "\xa0")  # wrapped as one word
    return f"{doc} {tail}".strip()


def format_help(template: Mapping[str, Option], width: Optional[int] = None, column: int = 26) -> str:
    """The options part of ``--help``, wrapped to ``width`` (the terminal's by default)."""
    if width is None:
        width = shutil.get_terminal_size((80, 24)).columns
    width = max(min(width, 120), 40)
    narrow = width < 72
    lines: List[str] = []
    for group, options in grouped(template).items():
        lines.append(f"{group}:")
        for option in options:
            left = f"  --{option.name} {option.metavar}"
            indent = " " * (8 if narrow else column)
            if narrow or len(left) > column - 2:
                lines.append(left)
                lines.extend(textwrap.wrap(_doc(option), width, initial_indent=indent,
                                           subsequent_indent=indent, break_on_hyphens=False))
            else:
                lines.extend(textwrap.wrap(_doc(option), width, initial_indent=left.ljust(column),
                                           subsequent_indent=indent, break_on_hyphens=False))
        lines.append("")
    return "\n".join(lines).rstrip().replace("\xa0", " ") + "\n"


def wrap_paragraph(text: str, width: Optional[int] = None) -> str:
    """``text`` wrapped to the terminal's width (for headings of the help)."""
    if width is None:
        width = shutil.get_terminal_size((80, 24)).columns
    return textwrap.fill(text, max(min(width, 120), 40)) + "\n"


def format_markdown(sections: Mapping[str, Mapping[str, Option]], volatile: Any = ("listen",)) -> str:
    """The option reference: one part per class, in the order given, grouped as ``--help`` groups them.

    ``volatile`` options have machine-dependent defaults, shown by description.
    """
    out = [
        "# Option reference",
        "",
        "Generated from the option declarations by `python -m netserver.docgen docs/options.md`; do not edit by hand.",
        "Every option can be given in any of the five sources: constructor keyword arguments,",
        "the command line (`--name value`, `--name=value`, `name=value`), `run()` keyword arguments,",
        "the `conf_file` (`name value` lines) and `default_values()`; the first one wins.",
        "`netserver PERSONALITY --help` lists the same options with the defaults of that personality;",
        "`netserver ... --print-config` shows the values a configuration gives and where each came from.",
        "",
    ]
    seen = set()
    for title, template in sections.items():
        rows = [o for o in template.values() if id(o) not in seen]  # a redeclared default is listed again
        if not rows:
            continue
        out.append(f"## {title}")
        out.append("")
        for group, options in grouped({o.name: o for o in rows}).items():
            out.append(f"### {group}")
            out.append("")
            out.append("| option | value | default | meaning |")
            out.append("| --- | --- | --- | --- |")
            for option in options:
                seen.add(id(option))
                default = "kernel maximum" if option.name in volatile else _default_text(option)
                repeat = " Repeatable." if option.multi else ""
                metavar = option.metavar.replace("|", "\\|")
                doc = option.doc.replace("|", "\\|")
                out.append(f"| `{option.name}` | {metavar} | {default.replace('|', chr(92) + '|')} | {doc}{repeat} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
