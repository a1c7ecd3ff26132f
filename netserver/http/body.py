"""A request body as it arrives: in memory while small, in an anonymous memory file past ``SPOOL_AT``.

A large upload is written out chunk by chunk as it is read, so the
process never holds it as Python objects: no second copy when it is
joined, and nothing left behind in the allocator's per-thread arenas once
the request is done (20 concurrent 16 MiB uploads to Thread used to peak
at 663 MB RSS and keep 351 MB).  ``memfd_create`` needs no writable
directory (a chrooted or dropped server has none to spare); where it is
missing, an unlinked temporary file serves.
"""

from __future__ import annotations

import io
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator, List, Optional

__all__ = ["BodyBuffer", "SPOOL_AT"]

SPOOL_AT = 1024 * 1024  # bytes kept in memory before the body moves to a file


class BodyBuffer:
    """``append(bytes)`` while the body arrives; ``reader()`` for ``wsgi.input``; ``len()`` its size."""

    __slots__ = ("chunks", "size", "spool")

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.size = 0
        self.spool: Optional[Any] = None

    def append(self, data: bytes) -> None:
        self.size += len(data)
        if self.spool is not None:
            self.spool.write(data)
            return
        self.chunks.append(data)
        if self.size > SPOOL_AT:
            self.spool = _anonymous_file()
            for chunk in self.chunks:
                self.spool.write(chunk)
            self.chunks = []

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        """The body's bytes in pieces (``b"".join(body)`` is the whole body)."""
        if self.spool is None:
            yield from self.chunks
            return
        self.spool.seek(0)
        while True:
            block = self.spool.read(256 * 1024)
            if not block:
                return
            yield block

    def reader(self) -> Any:
        """A binary file positioned at the start of the body (``wsgi.input``)."""
        if self.spool is None:
            return io.BytesIO(b"".join(self.chunks))
        self.spool.seek(0)
        return self.spool

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        self.chunks = []


def _anonymous_file() -> Any:
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("netserver-request-body", os.MFD_CLOEXEC), "w+b")
    import tempfile

    return tempfile.TemporaryFile()
