"""Option declarations, converters and the five configuration sources."""

from .option import Option, OptionError, Source, declared_options, normalize_template
from .sources import Config, merge, parse_argv, parse_conf_text, read_conf_file

__all__ = [
    "Config",
    "Option",
    "OptionError",
    "Source",
    "declared_options",
    "merge",
    "normalize_template",
    "parse_argv",
    "parse_conf_text",
    "read_conf_file",
]
