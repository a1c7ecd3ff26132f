"""atheris harness: the HTTP request reader fails only with HTTPError, and gives the same
answer whether the bytes arrive whole, one at a time or in fuzzer-chosen pieces.

    python fuzz/fuzz_http.py -max_total_time=60
"""

import sys

import atheris

import _common  # noqa: F401  (repository root and tests/support on sys.path)

with atheris.instrument_imports():
    from netserver.http.parser import Limits
    import reader_outcome  # tests/support (on sys.path by _common): the reader, fed and described


LIMITS = Limits(max_header_size=4096, max_uri_size=512, max_headers=20, max_body_size=4096)


def outcome(chunks):
    return reader_outcome.outcome(chunks, LIMITS)


SEEDS = [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
         b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", b""]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    prefix = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    step = fdp.ConsumeIntInRange(1, 64)
    body = prefix + fdp.ConsumeBytes(fdp.remaining_bytes())
    whole = outcome([body])
    pieces = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    bytewise = [body[i:i + 1] for i in range(len(body))]
    if outcome(pieces) != whole or outcome(bytewise) != whole:
        raise AssertionError(f"split changes the answer for {body!r}")




def main(argv=None):
    atheris.Setup(argv or sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
