"""The shared-memory scoreboard (netserver.process.scoreboard): slots, totals, the file form, fork."""

from __future__ import annotations

import os

import pytest

from forked import run_forked
from netserver.process.scoreboard import (
    BUSY, EXITING, FREE, HEADER_SIZE, IDLE, KEEPALIVE, SLOT_SIZE, STARTING, STATE_NAMES, Header, Scoreboard,
    SlotView, client_text, read_scoreboard,
)


@pytest.fixture
def board():
    b = Scoreboard(4, now=1000.0)
    yield b
    b.close()


def test_a_new_board_is_empty(board):
    assert list(board.slots()) == []
    assert board.header() == Header(os.getpid(), 4, 1000.0, 0)
    assert all(board.state(slot) == FREE for slot in range(4))
    assert len(board.memory) == HEADER_SIZE + 4 * SLOT_SIZE


def test_a_child_life_in_its_slot(board):
    board.claim(2, now=1001.0)
    assert board.read(2) == SlotView(2, STARTING, 0, 0, 1001.0, 1001.0, "")
    board.assign_pid(2, 4242)
    board.set_state(2, IDLE)
    board.serving(2, 1, b"127.0.0.1:5555", now=1002.5)
    assert board.read(2) == SlotView(2, BUSY, 1, 4242, 1001.0, 1002.5, "127.0.0.1:5555")
    board.count_request(2, 2)
    board.set_state(2, EXITING)
    assert [s.slot for s in board.slots()] == [2]
    assert board.read(2).requests == 2 and board.read(2).state == EXITING
    board.release(2)
    assert board.state(2) == FREE and list(board.slots()) == []
    assert board.header().retired_requests == 2, "an exited child's requests stay in the total"


def test_released_requests_add_up(board):
    for slot, requests in ((0, 3), (1, 4), (0, 5)):
        board.claim(slot)
        board.count_request(slot, requests)
        board.release(slot)
    assert board.header().retired_requests == 12


def test_claim_clears_what_the_last_child_left(board):
    board.claim(1)
    board.serving(1, 7, b"[::1]:1")
    board.release(1)
    board.claim(1, now=5.0)
    assert board.read(1) == SlotView(1, STARTING, 0, 0, 5.0, 5.0, "")


def test_client_text_is_cut_to_the_field(board):
    board.claim(0)
    board.serving(0, 1, b"x" * 60)
    assert board.read(0).client == "x" * 48


def test_state_names_cover_every_state():
    assert sorted(STATE_NAMES) == sorted([FREE, STARTING, IDLE, BUSY, EXITING, KEEPALIVE])


def test_children_write_the_parent_reads(board):
    """The mapping is shared across fork: a child's stores are the parent's reads."""
    def child():
        board.claim(3, now=1.0)
        board.assign_pid(3, os.getpid())
        board.serving(3, 9, b"peer", now=2.0)
        return os.getpid()

    pid = run_forked(child)
    assert board.read(3) == SlotView(3, BUSY, 9, pid, 1.0, 2.0, "peer")


def test_file_backed_board_is_readable_from_outside(tmp_path):
    path = str(tmp_path / "scoreboard")
    board = Scoreboard(3, path, now=50.0)
    try:
        board.claim(1, now=51.0)
        board.assign_pid(1, 77)
        board.serving(1, 4, b"10.0.0.1:9", now=52.0)
        board.claim(2)
        board.count_request(2, 1)
        board.release(2)
        header, slots = read_scoreboard(path)
        assert header == Header(os.getpid(), 3, 50.0, 1)
        assert slots == [SlotView(1, BUSY, 4, 77, 51.0, 52.0, "10.0.0.1:9")]
    finally:
        board.close()
    assert not os.path.exists(path), "the owner removes the file when it closes the board"


def test_only_the_owner_removes_the_file(tmp_path):
    path = str(tmp_path / "scoreboard")
    board = Scoreboard(1, path)

    def child():
        board.close()  # a child closing its copy
        return os.path.exists(path)

    assert run_forked(child) is True
    assert os.path.exists(path)
    board.close()
    assert not os.path.exists(path)


@pytest.mark.parametrize("content", [b"", b"NSSB0001", b"not a scoreboard" * 10])
def test_read_scoreboard_refuses_other_files(tmp_path, content):
    path = tmp_path / "other"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a netserver scoreboard"):
        read_scoreboard(str(path))


def test_read_scoreboard_of_a_truncated_file(tmp_path):
    """A file cut short (written while being read) yields the whole slots it holds."""
    path = str(tmp_path / "scoreboard")
    board = Scoreboard(3, path)
    try:
        for slot in range(3):
            board.claim(slot)
        with open(path, "rb") as f:
            data = f.read()
    finally:
        board.close()
    cut = tmp_path / "cut"
    cut.write_bytes(data[:HEADER_SIZE + 2 * SLOT_SIZE + 10])
    _, slots = read_scoreboard(str(cut))
    assert [s.slot for s in slots] == [0, 1]


def test_request_state_and_keepalive(board):
    board.claim(0)
    board.serving(0, 1, b"c", now=10.0)
    board.request_state(0, busy=False)
    assert board.state(0) == KEEPALIVE and board.read(0).changed == 10.0, "between requests: the time stays"
    board.request_state(0, busy=True)
    assert board.state(0) == BUSY and board.read(0).changed > 10.0, "a new request restarts the clock"


def test_flags_retiring_and_lock_holders(board):
    for slot in range(3):
        board.claim(slot)
    assert not board.retiring(1) and board.lock_holders() == 0
    board.mark_retiring(1)
    board.hold_lock(0, True)
    board.hold_lock(2, True)
    assert board.retiring(1) and not board.retiring(0)
    assert board.lock_holders() == 2
    board.hold_lock(2, False)
    board.release(0)  # a freed slot's flag does not count
    assert board.lock_holders() == 0
    assert board.read(1).state == STARTING, "the flags live beside the state, not in it"


def test_claim_clears_the_flags(board):
    board.claim(0)
    board.mark_retiring(0)
    board.hold_lock(0, True)
    board.release(0)
    board.claim(0)
    assert not board.retiring(0) and board.lock_holders() == 0


# state, request began at, brief flag, the CPUs saturated, now -> spare? (BRIEF is 10 ms)
@pytest.mark.parametrize("state, began, brief, saturated, now, spare", [
    (IDLE, 10.0, False, False, 99.0, True),
    (STARTING, 10.0, False, False, 99.0, True),
    (BUSY, 10.0, False, True, 10.001, False),   # a child that does not say its requests are brief: busy
    (BUSY, 10.0, True, True, 10.005, True),     # brief requests, this one began a moment ago
    (BUSY, 10.0, True, False, 10.005, False),   # ...but the CPUs have time to spare: another child helps
    (BUSY, 10.0, True, True, 10.02, False),     # ...and one that has gone on too long
    (IDLE, 10.0, True, False, 99.0, True),
    (KEEPALIVE, 10.0, True, True, 10.001, False),  # a classic child between requests still holds its connection
    (EXITING, 10.0, True, True, 10.001, False),
])
def test_what_counts_as_spare(board, state, began, brief, saturated, now, spare):
    board.claim(1)
    board.serving(1, 1, b"c", now=began)
    board.set_state(1, state)
    board.mark_brief(1, brief)
    assert board.spare(1, now, saturated) is spare


def test_a_new_child_is_not_brief(board):
    board.claim(0)
    board.mark_brief(0, True)
    board.release(0)
    board.claim(0)
    board.serving(0, 1, b"c", now=10.0)
    assert not board.spare(0, 10.001), "claim clears the flag a previous child left"


# states of slots 0..3 (FREE: unused), the asking child's slot -> another child waits for connections?
@pytest.mark.parametrize("states, slot, waiting", [
    ((IDLE, FREE, FREE, FREE), 0, False),        # only itself
    ((IDLE, IDLE, FREE, FREE), 0, True),
    ((BUSY, IDLE, FREE, FREE), 0, True),
    ((BUSY, STARTING, FREE, FREE), 0, True),     # a starting child accepts as soon as it is up
    ((IDLE, BUSY, BUSY, EXITING), 0, False),
    ((BUSY, BUSY, KEEPALIVE, FREE), 1, False),
    ((STARTING, BUSY, FREE, FREE), 1, True),
])
def test_idle_sibling(board, states, slot, waiting):
    for index, state in enumerate(states):
        if state != FREE:
            board.claim(index)
            board.set_state(index, state)
    assert board.idle_sibling(slot) is waiting


@pytest.mark.parametrize("address, text", [
    (("127.0.0.1", 5555), b"127.0.0.1:5555"),
    (("::1", 80, 0, 0), b"::1:80"),
    ("/tmp/sock", b"unix"),
    (("h" * 60, 1), (b"h" * 60 + b":1")[:48]),
])
def test_client_text(address, text):
    assert client_text(address) == text


def test_a_file_board_replaces_what_is_at_its_path(tmp_path):
    """A stale board or a planted symlink is unlinked, never followed or truncated."""
    target = tmp_path / "precious"
    target.write_text("keep me")
    path = tmp_path / "scoreboard"
    os.symlink(target, path)
    board = Scoreboard(1, str(path))
    try:
        assert not os.path.islink(path) and target.read_text() == "keep me"
    finally:
        board.close()
