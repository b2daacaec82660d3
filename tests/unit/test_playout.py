"""The playout queue and the held caller audio: bounds, generations, frames, pacing.

Pure objects, so every rule is checked with bytes and numbers, no call and no clock. The
rules come from what the line tests found (``tests/control/test_line.py``): a send buffer
smaller than the high-water mark, audio taken before a barge-in and put back after it, a
turn whose length is not a whole frame.
"""

from __future__ import annotations

import pytest

from callbridge.bridge.gate import HeldAudio
from callbridge.bridge.playout import PACE_S, PlayoutQueue

RATE = 8000
FRAME = 320  # 20 ms at 8 kHz, s16le
SECOND = RATE * 2


def queue(high_water_s: float = 1.0, max_pending_s: float = 5.0) -> PlayoutQueue:
    return PlayoutQueue(rate=RATE, high_water_s=high_water_s, max_pending_s=max_pending_s)


def test_push_is_bounded_and_drops_the_oldest() -> None:
    q = queue(max_pending_s=5.0)
    assert q.push(bytes(3 * SECOND)) == 0
    assert q.push(b"\x01" * (3 * SECOND)) == 3 * SECOND, "the oldest 3 s went"
    assert q.pending_bytes == 3 * SECOND
    assert q.take(10 * SECOND, q.head_generation()) == b"\x01" * (3 * SECOND)


def test_a_single_chunk_over_the_bound_is_kept() -> None:
    q = queue(max_pending_s=5.0)
    assert q.push(bytes(6 * SECOND)) == 0
    assert q.pending_bytes == 6 * SECOND


@pytest.mark.parametrize(
    ("turn_bytes", "padding"), [(FRAME, 0), (FRAME + 2, FRAME - 2), (1000, 4 * FRAME - 1000)]
)
def test_a_turn_is_padded_to_a_whole_frame(turn_bytes: int, padding: int) -> None:
    q = queue()
    q.push(b"\x01" * turn_bytes)
    q.end_turn(b"", play=True)
    assert q.pending_bytes == turn_bytes + padding
    assert q.pending_bytes % FRAME == 0


def test_the_tail_counts_toward_the_turn_and_a_muted_turn_queues_nothing() -> None:
    q = queue()
    q.push(b"\x01" * 100)
    q.end_turn(b"\x02" * 100, play=True)
    assert q.pending_bytes == FRAME
    q.push(b"\x01" * 100)
    q.drop()
    q.end_turn(b"\x02" * 100, play=False)
    assert not q and q.pending_bytes == 0


def test_a_barge_in_forgets_the_turn_so_the_next_is_padded_alone() -> None:
    q = queue()
    q.push(b"\x01" * 100)
    q.drop(new_turn=True)
    q.push(b"\x01" * FRAME)
    q.end_turn(b"", play=True)
    assert q.pending_bytes == FRAME


def test_take_pops_whole_chunks_up_to_room_but_always_one() -> None:
    q = queue()
    for _ in range(3):
        q.push(bytes(FRAME))
    generation = q.head_generation()
    assert len(q.take(2 * FRAME + 1, generation)) == 2 * FRAME
    q.push(bytes(4 * FRAME))
    assert len(q.take(1, generation)) == FRAME, "one chunk even when room is smaller"
    assert len(q.take(1, generation)) == 4 * FRAME
    assert not q and q.pending_bytes == 0


def test_audio_taken_before_a_drop_is_never_written_after_it() -> None:
    q = queue()
    q.push(bytes(FRAME))
    stale = q.head_generation()
    chunk = q.take(SECOND, stale)
    q.drop(new_turn=True)  # barge-in while the write was in flight
    q.push(b"\x01" * FRAME)  # the next turn
    q.requeue(chunk, stale, buffered=0)  # the write failed: put back
    assert q.take(SECOND, stale) == b"", "the stale generation is refused"
    assert q.take(SECOND, q.head_generation()) == b"\x01" * FRAME
    assert q.pending_bytes == 0


def test_a_refused_write_is_put_back_as_frames_and_the_mark_lowered() -> None:
    q = queue(high_water_s=1.0)
    q.push(bytes(10 * FRAME))
    generation = q.head_generation()
    chunk = q.take(SECOND, generation)
    q.requeue(chunk, generation, buffered=2 * FRAME)
    assert q.pending_bytes == 10 * FRAME
    assert q.high_water == (2 * FRAME + 10 * FRAME) // 2
    assert len(q.take(FRAME, generation)) == FRAME, "now writable a frame at a time"


@pytest.mark.parametrize(
    ("pending", "room", "wait"),
    [
        (10 * SECOND, SECOND // 4, 0.0),  # a quarter of the mark fits: write now
        (10 * SECOND, SECOND // 4 - 2, PACE_S),  # 2 bytes short: the shortest nap
        (10 * SECOND, 0, 0.25),  # empty room: sleep until a batch fits
        (FRAME, FRAME, 0.0),  # a short answer goes at once
        (FRAME // 2, 0, PACE_S),  # never less than one frame is waited for
    ],
)
def test_pacing(pending: int, room: int, wait: float) -> None:
    q = queue(high_water_s=1.0)
    q.push(bytes(pending))
    assert q.want(room) == pytest.approx(wait)


def test_held_audio_is_bounded_in_bytes_oldest_first_and_released_in_order() -> None:
    held = HeldAudio[bytes](3 * FRAME, len)
    frames = [bytes([i]) * FRAME for i in range(5)]
    assert [held.hold(f) for f in frames] == [0, 0, 0, FRAME, FRAME]
    released = []
    while held:
        released.append(held.pop())
    assert released == frames[2:]
    assert (held.held_bytes, held.total_bytes, held.dropped_bytes) == (0, 5 * FRAME, 2 * FRAME)


def test_held_audio_keeps_one_item_over_the_bound() -> None:
    held = HeldAudio[bytes](10, len)
    assert held.hold(bytes(50)) == 0
    assert held.hold(bytes(50)) == 50
    assert held.held_bytes == 50
