"""docs/options.md, generated from the option declarations: ``python -m netserver.docgen > docs/options.md``.

Documentation tooling sits with the command line at the top of the layers:
it loads every personality, which the option machinery below must not.
"""

from __future__ import annotations

import sys

from .options import Option, declared_options
from .options.reference import format_markdown
from .personalities import PERSONALITIES, LoadError, load
from .proto import protocol_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Mapping

__all__ = ["reference_sections", "main"]


def reference_sections() -> Dict[str, Mapping[str, Option]]:
    """Each personality's options, base first (with every protocol's), for the reference page.

    Every personality must load (LoadError names what is missing): a page made where one
    cannot (HTTP without httptools) would silently lose its options."""
    sections: Dict[str, Mapping[str, Option]] = {}
    for name in PERSONALITIES:
        cls = load(name)
        template: Dict[str, Option] = {}
        if name == "Single":
            template.update((option.name, option) for option in protocol_options())
        template.update(declared_options(cls))
        sections["Server (every personality)" if name == "Single" else name] = template
    return sections


def main() -> None:
    try:
        sections = reference_sections()
    except LoadError as exc:
        sys.exit(f"netserver.docgen: {exc}; docs/options.md documents every personality")
    sys.stdout.write(format_markdown(sections))


if __name__ == "__main__":
    main()
