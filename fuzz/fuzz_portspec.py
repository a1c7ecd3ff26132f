"""atheris harness: port specifications fail only with PortSpecError; conf-file text and
command lines (core option template) fail only with OptionError.

    python fuzz/fuzz_portspec.py -max_total_time=60
"""

import sys

import atheris

import _common  # noqa: F401  (repository root on sys.path)

with atheris.instrument_imports():
    from netserver.options import OptionError, parse_argv, parse_conf_text
    from netserver.options.core import OPTIONS
    from netserver.proto.spec import PortSpecError, parse_port

TEMPLATE = {option.name: option for option in OPTIONS}


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 2)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    if which == 0:
        try:
            parse_port(text)
        except PortSpecError:
            pass
    elif which == 1:
        try:
            for key, value, _ in parse_conf_text(text, "fuzz.conf", TEMPLATE):
                TEMPLATE[key].parse(value, "fuzz")
        except OptionError:
            pass
    else:
        try:
            parse_argv(text.split(" "), TEMPLATE)
        except OptionError:
            pass


def main(argv=None):
    atheris.Setup(argv or sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
