"""What the HTTP request reader makes of some bytes, as a comparable value.

Shared by the hypothesis tests (tests/reliability/test_fuzz.py) and the atheris
harness (fuzz/fuzz_http.py): both check that the answer is the same however the
bytes are split into reads.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from netserver.http.errors import HTTPError
from netserver.http.parser import Limits, RequestReader


def outcome(chunks: Iterable[bytes], limits: Optional[Limits] = None) -> Tuple[List[tuple], Optional[int]]:
    """Feed ``chunks`` to a fresh reader: (requests as tuples, error status or None)."""
    reader = RequestReader(limits if limits is not None else Limits())
    requests = []
    try:
        for chunk in chunks:
            requests.extend(reader.feed(chunk))
        reader.check()
        error = None
    except HTTPError as exc:
        error = exc.status
    return [describe(r) for r in requests], error


def describe(request) -> tuple:
    return (request.method, request.target, request.version, tuple(request.headers), b"".join(request.body),
            request.chunked, request.content_length, request.keep_alive, request.expect_continue)
