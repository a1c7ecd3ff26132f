"""A shared-memory scoreboard, in the spirit of Apache's.

Each child owns one slot and writes its state there with plain memory
stores — no system call on the request path; the parent reads every slot
when it plans the pool, and ``netserver status`` can show it.  The mapping
is anonymous and shared, so it is inherited by ``fork`` and gone at ``exec``.
"""

from __future__ import annotations

import mmap
import struct
import time
from typing import Iterator, NamedTuple

__all__ = ["Scoreboard", "SlotView", "FREE", "STARTING", "IDLE", "BUSY", "EXITING", "STATE_NAMES"]

FREE, STARTING, IDLE, BUSY, EXITING = 0, 1, 2, 3, 4
STATE_NAMES = {FREE: "free", STARTING: "starting", IDLE: "idle", BUSY: "busy", EXITING: "exiting"}

# state, pad, requests, pid, started, last change
_SLOT = struct.Struct("<B3xIidd")
SLOT_SIZE = 32


class SlotView(NamedTuple):
    slot: int
    state: int
    requests: int
    pid: int
    started: float
    changed: float


class Scoreboard:
    """``capacity`` slots of child state in one shared anonymous mapping."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.memory = mmap.mmap(-1, capacity * SLOT_SIZE)

    # -- parent ----------------------------------------------------------------

    def claim(self, slot: int) -> None:
        """Mark a slot as taken by a child about to be forked."""
        now = time.time()
        _SLOT.pack_into(self.memory, slot * SLOT_SIZE, STARTING, 0, 0, now, now)

    def assign_pid(self, slot: int, pid: int) -> None:
        struct.pack_into("<i", self.memory, slot * SLOT_SIZE + 8, pid)

    def release(self, slot: int) -> None:
        self.memory[slot * SLOT_SIZE] = FREE

    def read(self, slot: int) -> SlotView:
        return SlotView(slot, *_SLOT.unpack_from(self.memory, slot * SLOT_SIZE))

    def state(self, slot: int) -> int:
        return self.memory[slot * SLOT_SIZE]

    def slots(self) -> Iterator[SlotView]:
        for slot in range(self.capacity):
            if self.memory[slot * SLOT_SIZE] != FREE:
                yield self.read(slot)

    def close(self) -> None:
        self.memory.close()

    # -- child (the hot path: memory stores only) --------------------------------

    def set_state(self, slot: int, state: int) -> None:
        self.memory[slot * SLOT_SIZE] = state

    def count_request(self, slot: int, requests: int) -> None:
        struct.pack_into("<I", self.memory, slot * SLOT_SIZE + 4, requests)
