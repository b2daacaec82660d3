"""CallerQueue: caller audio is bounded and never waits; held (in order) during BLOCKING calls."""

from __future__ import annotations

from google.adk.agents.live_request_queue import LiveRequest
from google.genai import types

from callbridge.adapters.adk.queue import CallerQueue


def _blob(tag: int, size: int = 640) -> types.Blob:
    return types.Blob(data=bytes([tag]) * size, mime_type="audio/pcm;rate=16000")


def _answer(call_id: str) -> types.Content:
    response = types.FunctionResponse(id=call_id, name="f", response={"ok": True})
    return types.Content(role="user", parts=[types.Part(function_response=response)])


def _tag(request: LiveRequest) -> object:
    if request.blob is not None and request.blob.data:
        return request.blob.data[0]
    assert request.content is not None and request.content.parts
    response = request.content.parts[0].function_response
    return response.id if response is not None else request.content.parts[0].text


async def test_audio_beyond_the_backlog_is_dropped_not_waited_for() -> None:
    queue = CallerQueue(max_pending_bytes=1280, max_held_bytes=10_000)
    assert queue.offer_audio(_blob(1)) and queue.offer_audio(_blob(2))
    assert not queue.offer_audio(_blob(3))
    assert queue.dropped_bytes == 640 and queue.pending_bytes == 1280
    assert _tag(await queue.get()) == 1
    assert queue.offer_audio(_blob(4))  # room again once ADK took a frame
    queue.close()
    assert not queue.offer_audio(_blob(5))


async def test_audio_is_held_until_the_blocking_call_is_answered() -> None:
    queue = CallerQueue(max_pending_bytes=100_000, max_held_bytes=100_000)
    queue.offer_audio(_blob(1))
    queue.expect_responses(["c1", "c2"])
    queue.offer_audio(_blob(2))
    queue.send_content(_answer("c1"))
    queue.offer_audio(_blob(3))
    queue.send_content(_answer("c2"))
    queue.offer_audio(_blob(4))
    # Frames queued before the call was known are held too; the answers pass first.
    got = [_tag(await queue.get()) for _ in range(6)]
    assert got == ["c1", "c2", 1, 2, 3, 4]
    assert not queue.holding and queue.held_total_bytes == 3 * 640


async def test_held_audio_is_bounded_oldest_first() -> None:
    drops: list[int] = []
    queue = CallerQueue(
        max_pending_bytes=100_000, max_held_bytes=1280, on_held_dropped=drops.append
    )
    queue.expect_responses(["c1"])
    for tag in (1, 2, 3, 4):
        queue.offer_audio(_blob(tag))
    queue.send_content(_answer("c1"))
    got = [_tag(await queue.get()) for _ in range(3)]
    assert got == ["c1", 3, 4] and queue.dropped_held_bytes == 1280
    assert drops == [640, 640]


async def test_an_answer_seen_before_its_call_does_not_hold_audio() -> None:
    queue = CallerQueue(max_pending_bytes=100_000, max_held_bytes=100_000)
    queue.send_content(_answer("c1"))
    assert _tag(await queue.get()) == "c1"
    queue.expect_responses(["c1"])
    assert not queue.holding
    queue.expect_responses(["c2"])
    queue.release()
    queue.offer_audio(_blob(7))
    assert _tag(await queue.get()) == 7
