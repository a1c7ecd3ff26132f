"""atheris harness: PROXY protocol v1 and v2 parsers fail only with ProxyError, and what they
accept is a real address and port.

    python fuzz/fuzz_proxy.py -max_total_time=60
"""

import ipaddress
import sys

import atheris

import _common  # noqa: F401  (repository root on sys.path)

with atheris.instrument_imports():
    from netserver import proxy


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 0:
        try:
            result = proxy.parse_v1(rest)
        except proxy.ProxyError:
            return
        if result is not None:
            ipaddress.ip_address(result[0])
            assert 0 <= result[1] <= 65535
    else:
        header = proxy.V2_SIGNATURE + rest if mode == 1 else rest
        try:
            address, total = proxy.parse_v2(header)
        except proxy.ProxyError:
            return
        assert 16 <= total <= len(header)
        if address is not None:
            ipaddress.ip_address(address[0])
            assert 0 <= address[1] <= 65535


def main(argv=None):
    atheris.Setup(argv or sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
