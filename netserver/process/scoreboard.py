"""A shared-memory scoreboard, in the spirit of Apache's.

Each child owns one slot and writes its state there with plain memory
stores — no system call on the request path; the parent reads every slot
when it plans the pool.  The mapping is shared and inherited by ``fork``.
With a file behind it (``scoreboard_file``, next to the pid file by
default) ``netserver status`` can read the live pool from another process,
like Apache's ScoreBoardFile.

Layout: a 64-byte header (magic, parent pid, start time, capacity, requests
of children that have exited), then ``capacity`` slots of 96 bytes (state,
requests, pid, start time, time of the last change, current client).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from typing import Iterator, NamedTuple, Optional

__all__ = ["Scoreboard", "SlotView", "Header", "FREE", "STARTING", "IDLE", "BUSY", "EXITING", "STATE_NAMES",
           "read_scoreboard"]

FREE, STARTING, IDLE, BUSY, EXITING = 0, 1, 2, 3, 4
STATE_NAMES = {FREE: "free", STARTING: "starting", IDLE: "idle", BUSY: "busy", EXITING: "exiting"}

MAGIC = b"NSSB0001"
_HEADER = struct.Struct("<8siidQ")      # magic, parent pid, capacity, started, retired requests
_RETIRED = _HEADER.size - 8             # offset of the last field, the retired requests
HEADER_SIZE = 64
_SLOT = struct.Struct("<B3xIidd48s")    # state, requests, pid, started, changed, client
SLOT_SIZE = 96


class SlotView(NamedTuple):
    slot: int
    state: int
    requests: int
    pid: int
    started: float
    changed: float
    client: str


class Header(NamedTuple):
    parent: int
    capacity: int
    started: float
    retired_requests: int


class Scoreboard:
    """``capacity`` slots of child state in one shared mapping (anonymous, or ``path``)."""

    def __init__(self, capacity: int, path: Optional[str] = None, now: Optional[float] = None):
        self.capacity = capacity
        self.path = path
        size = HEADER_SIZE + capacity * SLOT_SIZE
        if path is None:
            self.memory = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.ftruncate(fd, size)
                self.memory = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        _HEADER.pack_into(self.memory, 0, MAGIC, os.getpid(), capacity, time.time() if now is None else now, 0)
        self.owner = os.getpid()

    @staticmethod
    def _offset(slot: int) -> int:
        return HEADER_SIZE + slot * SLOT_SIZE

    # -- parent ----------------------------------------------------------------

    def claim(self, slot: int, now: Optional[float] = None) -> None:
        """Mark a slot as taken by a child about to be forked (times are wall-clock, for ``status``)."""
        if now is None:
            now = time.time()
        _SLOT.pack_into(self.memory, self._offset(slot), STARTING, 0, 0, now, now, b"")

    def assign_pid(self, slot: int, pid: int) -> None:
        struct.pack_into("<i", self.memory, self._offset(slot) + 8, pid)

    def release(self, slot: int) -> None:
        """The child has exited: keep its count in the totals, free the slot."""
        requests = struct.unpack_from("<I", self.memory, self._offset(slot) + 4)[0]
        retired = struct.unpack_from("<Q", self.memory, _RETIRED)[0]
        struct.pack_into("<Q", self.memory, _RETIRED, retired + requests)
        self.memory[self._offset(slot)] = FREE

    def read(self, slot: int) -> SlotView:
        state, requests, pid, started, changed, client = _SLOT.unpack_from(self.memory, self._offset(slot))
        return SlotView(slot, state, requests, pid, started, changed, client.rstrip(b"\0").decode("ascii", "replace"))

    def state(self, slot: int) -> int:
        return self.memory[self._offset(slot)]

    def slots(self) -> Iterator[SlotView]:
        for slot in range(self.capacity):
            if self.memory[self._offset(slot)] != FREE:
                yield self.read(slot)

    def header(self) -> Header:
        _, parent, capacity, started, retired = _HEADER.unpack_from(self.memory, 0)
        return Header(parent, capacity, started, retired)

    def close(self) -> None:
        self.memory.close()
        if self.path is not None and os.getpid() == self.owner:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    # -- child (the hot path: memory stores only) --------------------------------

    def set_state(self, slot: int, state: int) -> None:
        self.memory[self._offset(slot)] = state

    def serving(self, slot: int, requests: int, client: bytes, now: Optional[float] = None) -> None:
        """BUSY, the request count so far, and who is being served, in one store each."""
        offset = self._offset(slot)
        self.memory[offset] = BUSY
        struct.pack_into("<I", self.memory, offset + 4, requests)
        struct.pack_into("<d48s", self.memory, offset + 20, time.time() if now is None else now, client)

    def count_request(self, slot: int, requests: int) -> None:
        struct.pack_into("<I", self.memory, self._offset(slot) + 4, requests)


def read_scoreboard(path: str) -> "tuple[Header, list]":
    """Read a file-backed scoreboard from outside the server (``netserver status``)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a netserver scoreboard")
    _, parent, capacity, started, retired = _HEADER.unpack_from(data, 0)
    slots = []
    for slot in range(capacity):
        offset = HEADER_SIZE + slot * SLOT_SIZE
        if offset + SLOT_SIZE > len(data) or data[offset] == FREE:
            continue
        state, requests, pid, slot_started, changed, client = _SLOT.unpack_from(data, offset)
        slots.append(SlotView(slot, state, requests, pid, slot_started, changed,
                              client.rstrip(b"\0").decode("ascii", "replace")))
    return Header(parent, capacity, started, retired), slots
