"""docs/options.md, generated from the option declarations: ``python -m netserver.docgen docs/options.md``.

The file is replaced only once the page is whole (without a path: standard output).

Documentation tooling sits with the command line at the top of the layers:
it loads every personality, which the option machinery below must not.
"""

from __future__ import annotations

import os
import sys

from .options import Option, declared_options
from .options.reference import format_markdown
from .personalities import PERSONALITIES, LoadError, load
from .proto import protocol_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Mapping, Optional

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


def main(argv: Optional[List[str]] = None) -> None:
    paths = sys.argv[1:] if argv is None else argv
    try:
        page = format_markdown(reference_sections())
    except LoadError as exc:
        sys.exit(f"netserver.docgen: {exc}; docs/options.md documents every personality")
    if not paths:
        sys.stdout.write(page)
        return
    partial = paths[0] + ".partial"
    with open(partial, "w") as out:
        out.write(page)
    os.replace(partial, paths[0])


if __name__ == "__main__":
    main()
