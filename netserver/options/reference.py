"""Render option declarations: ``--help`` text and the Markdown reference.

Both come from the same declarations, so the help, the docs and the parser
cannot disagree (a test regenerates docs/options.md and fails on a diff).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from .option import Option

__all__ = ["format_help", "format_markdown"]


def _default_text(option: Option) -> str:
    default = option.default
    if option.multi:
        return ", ".join(str(v) for v in default) if default else "none"
    if default is None:
        return "none"
    if option.flag:
        return "on" if default else "off"
    return str(default)


def _by_section(template: Mapping[str, Option]) -> Dict[str, List[Option]]:
    sections: Dict[str, List[Option]] = {}
    for option in template.values():
        sections.setdefault(option.section, []).append(option)
    return sections


def format_help(template: Mapping[str, Option], width: int = 24) -> str:
    lines: List[str] = []
    for section, options in _by_section(template).items():
        lines.append(f"{section}:")
        for option in options:
            left = f"  --{option.name} {option.metavar}"
            repeat = " (repeatable)" if option.multi else ""
            doc = f"{option.doc}{repeat} [default: {_default_text(option)}]"
            if len(left) >= width:
                lines.append(left)
                lines.append(" " * width + doc)
            else:
                lines.append(left.ljust(width) + doc)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def format_markdown(sections: Mapping[str, Mapping[str, Option]], volatile: Any = ("listen",)) -> str:
    """The option reference: one table per class, in the order given.

    ``volatile`` options have machine-dependent defaults, shown by description.
    """
    out = [
        "# Option reference",
        "",
        "Generated from the option declarations by `python -m netserver.options.reference > docs/options.md`; do not edit by hand.",
        "Every option can be given in any of the five sources: constructor keyword arguments,",
        "the command line (`--name value`, `--name=value`, `name=value`), `run()` keyword arguments,",
        "the `conf_file` (`name value` lines) and `default_values()`; the first one wins.",
        "",
    ]
    seen = set()
    for title, template in sections.items():
        rows = [o for o in template.values() if o.name not in seen]
        if not rows:
            continue
        out.append(f"## {title}")
        out.append("")
        for section, options in _by_section({o.name: o for o in rows}).items():
            out.append(f"### {section}")
            out.append("")
            out.append("| option | value | default | meaning |")
            out.append("| --- | --- | --- | --- |")
            for option in options:
                seen.add(option.name)
                default = "kernel maximum" if option.name in volatile else _default_text(option)
                repeat = " Repeatable." if option.multi else ""
                out.append(f"| `{option.name}` | {option.metavar} | {default} | {option.doc}{repeat} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def reference_sections() -> Dict[str, Mapping[str, Option]]:
    """Each personality's options, base first, for the reference page."""
    from ..personalities import PERSONALITIES, LoadError, load

    sections: Dict[str, Mapping[str, Option]] = {}
    for name in PERSONALITIES:
        try:
            cls = load(name)
        except LoadError:
            continue
        template: Dict[str, Option] = {}
        for klass in reversed(cls.__mro__):
            for option in klass.__dict__.get("OPTIONS", ()):
                template[option.name] = option
        sections["Server (every personality)" if name == "Single" else name] = template
    return sections


def main() -> None:
    import sys

    sys.stdout.write(format_markdown(reference_sections()))


if __name__ == "__main__":
    main()
