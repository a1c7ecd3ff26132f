"""A shared-memory scoreboard, in the spirit of Apache's.

Each child owns one slot and writes its state there with plain memory
stores — no system call on the request path; the parent reads every slot
when it plans the pool.  The mapping is shared and inherited by ``fork``.
With a file behind it (``scoreboard_file``, next to the pid file by
default) ``netserver status`` can read the live pool from another process,
like Apache's ScoreBoardFile.

Layout: a 64-byte header (magic, parent pid, start time, capacity, requests
of children that have exited), then ``capacity`` slots of 96 bytes (state;
three flags: holds the accept lock, retiring, brief requests; requests, pid,
start time, time of the last change, current client).
"""

from __future__ import annotations

import mmap
import os
import struct
import time

from ..records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Optional

__all__ = ["Scoreboard", "SlotView", "Header", "FREE", "STARTING", "IDLE", "BUSY", "EXITING", "KEEPALIVE",
           "STATE_NAMES", "client_text", "read_scoreboard"]

# KEEPALIVE: on a connection, between two requests (Apache's 'K'): not idle, and not busy for child_timeout.
FREE, STARTING, IDLE, BUSY, EXITING, KEEPALIVE = 0, 1, 2, 3, 4, 5
STATE_NAMES = {FREE: "free", STARTING: "starting", IDLE: "idle", BUSY: "busy", EXITING: "exiting",
               KEEPALIVE: "keepalive"}

MAGIC = b"NSSB0001"
_HEADER = struct.Struct("<8siidQ")      # magic, parent pid, capacity, started, retired requests
_RETIRED = _HEADER.size - 8             # offset of the last field, the retired requests
HEADER_SIZE = 64
_SLOT = struct.Struct("<B3xIidd48s")    # state, (lock flag, retiring flag, brief flag), requests, pid, started, changed, client
_LOCK_HELD = 1                          # byte offset of the accept-lock flag in a slot
_RETIRING = 2                           # byte offset of the retiring flag in a slot
_BRIEF = 3                              # byte offset of the brief-requests flag in a slot
_CHANGED = 20                           # byte offset of the time the current request (or state) began
SLOT_SIZE = 96
BRIEF = 0.01  # seconds: a request shorter than this, in a child that says its requests are brief, is no wait


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
            fd = _create_fresh(path)
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

    def spare(self, slot: int, now: float, saturated: bool = False) -> bool:
        """Whether the child can take a new connection soon: idle, starting, or — while the CPUs
        are ``saturated`` (another child would only take turns with it) — busy for less than
        ``BRIEF`` (``now`` is wall-clock time) in a child that says its requests are brief
        (``mark_brief``: a classic child whose last connection was that short, an event-driven HTTP
        child whose last request was, since it takes new connections between requests; one whose
        requests take long holds up the connections it has)."""
        offset = self._offset(slot)
        memory = self.memory
        state = memory[offset]
        if state == IDLE or state == STARTING:
            return True
        return (saturated and state == BUSY and memory[offset + _BRIEF] != 0
                and struct.unpack_from("<d", memory, offset + _CHANGED)[0] > now - BRIEF)

    def retiring(self, slot: int) -> bool:
        """Whether the child has announced that it is serving its last connection."""
        return bool(self.memory[self._offset(slot) + _RETIRING])

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
        """BUSY, the request count so far, and who is being served, in one store each.

        The time goes in before the state, so a parent that sees BUSY never
        reads the previous connection's start (child_timeout relies on it).
        """
        offset = self._offset(slot)
        struct.pack_into("<I", self.memory, offset + 4, requests)
        struct.pack_into("<d48s", self.memory, offset + _CHANGED, time.time() if now is None else now, client)
        self.memory[offset] = BUSY

    def request_state(self, slot: int, busy: bool) -> None:
        """A request began (BUSY, its start time) or ended with the connection kept open (KEEPALIVE).

        A kept-alive connection clears the brief flag: the child holds it, and each of its
        requests starts a new ``_CHANGED``, which must not read as a brief busy moment."""
        offset = self._offset(slot)
        if busy:
            struct.pack_into("<d", self.memory, offset + _CHANGED, time.time())
        else:
            self.memory[offset + _BRIEF] = 0
        self.memory[offset] = BUSY if busy else KEEPALIVE

    def idle_sibling(self, slot: int) -> bool:
        """Whether another child is idle or starting: one that a new connection wakes
        (``EPOLLEXCLUSIVE`` wakes a child waiting in ``epoll``) and that serves it at once."""
        states = self.memory[HEADER_SIZE::SLOT_SIZE]  # every slot's state byte, in one copy
        waiting = states.count(IDLE) + states.count(STARTING)
        return waiting > (states[slot] in (IDLE, STARTING))

    def mark_brief(self, slot: int, brief: bool) -> None:
        """Whether this child's requests are brief (see ``spare``; one memory store)."""
        self.memory[self._offset(slot) + _BRIEF] = brief

    def mark_retiring(self, slot: int) -> None:
        """This child takes no connection after the current one: its successor may start now."""
        self.memory[self._offset(slot) + _RETIRING] = 1

    def count_request(self, slot: int, requests: int) -> None:
        struct.pack_into("<I", self.memory, self._offset(slot) + 4, requests)

    def hold_lock(self, slot: int, holding: bool) -> None:
        """Whether this child holds the accept lock (the first pad byte; one memory store)."""
        self.memory[self._offset(slot) + _LOCK_HELD] = 1 if holding else 0

    def lock_holders(self) -> int:
        """Live slots that say they hold the accept lock (the parent's check after a death)."""
        memory, count = self.memory, 0
        for slot in range(self.capacity):
            offset = self._offset(slot)
            if memory[offset] != FREE and memory[offset + _LOCK_HELD]:
                count += 1
        return count


def _create_fresh(path: str) -> int:
    """A new file at ``path``: whatever is there (a stale board, a planted symlink) is unlinked,
    never followed or truncated, and the new file is made with ``O_EXCL`` (issue 14)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(10):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            return os.open(path, flags, 0o644)
        except FileExistsError:
            continue  # recreated meanwhile: remove it again
    raise OSError(f"scoreboard_file {path}: keeps reappearing; not using it")


def client_text(client_address: object) -> bytes:
    """What a slot records of the client: ``host:port``, or ``unix``."""
    if isinstance(client_address, tuple):
        return f"{client_address[0]}:{client_address[1]}".encode()[:48]
    return b"unix"


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
