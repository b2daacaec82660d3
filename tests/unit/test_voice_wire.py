"""The Telcoflow voice fast path (adapters/telcoflow/voice_wire.py) against the SDK it replaces.

The pull protocol (``buffer_request``, telcoflow-wire.md 4.3-4.5) is played over a real socket
to the unmodified SDK connection and to ours; the server must see the same frames from both.
The start-up check must fail loudly, naming what moved, when an SDK internal changes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import telcoflow
from telcoflow import voice_session as sdk_voice
from websockets.asyncio.server import ServerConnection, serve

from callbridge.adapters.telcoflow import voice_wire
from callbridge.adapters.telcoflow.sdk_fixes import SdkIncompatible

SETTLE_S = 0.05


class VoiceServer:
    """A minimal voice endpoint: records agent frames, sends what the test asks."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.texts: list[str] = []
        self.ws: ServerConnection | None = None
        self.connected = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.connected.set()
        async for message in ws:
            if isinstance(message, bytes):
                self.frames.append(message)
            else:
                self.texts.append(message)
                command = json.loads(message)["data"]
                reply = {"command_id": command["command_id"], "success": True, "result": None}
                await ws.send(json.dumps({"type": "command_response", "data": reply}))

    async def pull(self, requested: Any, prefer: Any = None, channel: int | None = None) -> None:
        data: dict[str, Any] = {"requested_bytes": requested}
        if prefer is not None:
            data["prefer_audio_frame_bytes"] = prefer
        if channel is not None:
            data["channelId"] = channel
        assert self.ws is not None
        await self.ws.send(json.dumps({"type": "buffer_request", "data": data}))
        await asyncio.sleep(SETTLE_S)


@asynccontextmanager
async def voice_pair(
    cls: type[sdk_voice._VoiceConnection], buffer_size: int = 1 << 20
) -> AsyncIterator[tuple[VoiceServer, sdk_voice._VoiceConnection]]:
    server = VoiceServer()
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        voice = cls(f"ws://127.0.0.1:{port}/v1/agent/voice/c1", "token", buffer_size)
        await voice.connect()  # type: ignore[no-untyped-call]
        await server.connected.wait()
        try:
            yield server, voice
        finally:
            await voice.close()  # type: ignore[no-untyped-call]


Scenario = Callable[[VoiceServer, sdk_voice._VoiceConnection], Awaitable[list[object]]]


async def _write(voice: sdk_voice._VoiceConnection, n: int, fill: int) -> None:
    await voice.send_audio(bytes([fill]) * n)  # type: ignore[no-untyped-call]
    await asyncio.sleep(SETTLE_S)


async def documented_pulls(server: VoiceServer, voice: sdk_voice._VoiceConnection) -> list[object]:
    """Every rule of telcoflow-wire.md 4.3 and 4.4, in one conversation."""
    seen: list[object] = []
    await server.pull(2000)  # no prefer: frames of at least 960 B
    await _write(voice, 500, 1)  # 500 < 960: nothing is sent
    seen.append(len(server.frames))
    await _write(voice, 500, 2)  # 1000 >= 960: one 1000 B frame
    await _write(voice, 1000, 3)  # the request's last 1000 B
    seen.append(len(server.frames))
    await _write(voice, 3200, 4)
    await server.pull(3200, 640)  # audio already there: one frame as large as the request
    await server.pull(640, 640, channel=1)  # another channel: skipped
    await server.pull(0, 640)  # nothing requested: ignored
    await server.pull("junk", 640)  # invalid: counts as 0
    await server.pull(1280, 640)  # owed while silent ...
    seen.append(await voice.get_send_audio_buffer_size())  # type: ignore[no-untyped-call]
    await _write(voice, 960, 5)
    seen.append(await voice.clear_send_audio_buffer())  # type: ignore[no-untyped-call]
    await _write(voice, 640, 6)  # ... and still owed after a clear: served from new audio
    await _write(voice, 700, 7)  # 320 B of the request left: one 320 B frame
    seen.append(await voice.get_send_audio_buffer_size())  # type: ignore[no-untyped-call]
    await server.pull(100)  # smaller than 960: min(960, 100) = 100 B is enough
    return seen


async def full_buffer(server: VoiceServer, voice: sdk_voice._VoiceConnection) -> list[object]:
    seen: list[object] = []
    await _write(voice, 3000, 1)
    try:
        await voice.send_audio(bytes(2000))  # type: ignore[no-untyped-call]
    except telcoflow.BufferFullError as exc:
        seen.append(type(exc).__name__)
    seen.append(await voice.get_send_audio_buffer_size())  # type: ignore[no-untyped-call]
    await server.pull(4096, 1024)
    seen.append(await voice.get_send_audio_buffer_size())  # type: ignore[no-untyped-call]
    return seen


@pytest.mark.parametrize("scenario", [documented_pulls, full_buffer])
async def test_the_server_sees_the_same_frames_as_from_the_sdk(scenario: Scenario) -> None:
    results = []
    for cls in (sdk_voice._VoiceConnection, voice_wire.FastVoiceConnection):
        async with voice_pair(cls, buffer_size=4096) as (server, voice):
            seen = await scenario(server, voice)
        results.append((seen, server.frames))
    (sdk_seen, sdk_frames), (our_seen, our_frames) = results
    assert sdk_frames, "the scenario must make the SDK send something"
    assert [len(f) for f in our_frames] == [len(f) for f in sdk_frames]
    assert our_frames == sdk_frames
    assert our_seen == sdk_seen


async def test_frames_are_written_without_waiting_and_commands_still_work() -> None:
    async with voice_pair(voice_wire.FastVoiceConnection) as (server, voice):
        assert isinstance(voice, voice_wire.FastVoiceConnection)
        await voice.send_audio(bytes(6400))
        for _ in range(10):
            await server.pull(640, 640)
        assert voice.frames_sent == 10
        assert [len(f) for f in server.frames] == [641] * 10
        await voice.send_command(command="agent.interrupt", response_timeout_seconds=5)
        assert json.loads(server.texts[-1])["data"]["command"] == "agent.interrupt"
    assert voice._closed
    with pytest.raises(telcoflow.WSSSessionError):
        await voice.send_audio(b"\x00\x00")


async def test_caller_audio_reaches_the_stream_and_ends_with_the_socket() -> None:
    async with voice_pair(voice_wire.FastVoiceConnection) as (server, voice):
        stream = voice.audio_stream(0)
        assert server.ws is not None
        for i in range(3):
            await server.ws.send(bytes([0, i, i]))
        await server.ws.send(b"\x00")  # too short: dropped, as by the SDK
        await server.ws.send(bytes([1, 9, 9]))  # channel 1
        got = [await anext(stream) for _ in range(3)]
        assert got == [bytes([i, i]) for i in range(3)]
        assert await anext(voice.audio_stream(1)) == bytes([9, 9])
        await server.ws.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 5)


def test_send_buffer_is_all_or_nothing_and_closes() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        voice_wire.SendBuffer(1000)
    buffer = voice_wire.SendBuffer(8)
    buffer.put(b"abcdef")
    with pytest.raises(telcoflow.BufferFullError):
        buffer.put(b"xyz")
    assert len(buffer) == 6
    assert buffer.take_frame(b"\x00", 4) == b"\x00abcd"
    assert buffer.drop_all() == 2
    asyncio.run(buffer.close())
    with pytest.raises(telcoflow.BufferClosedError):
        buffer.put(b"a")


def test_the_start_up_check_passes_on_the_installed_sdk() -> None:
    voice_wire.check_sdk_internals()


def test_the_start_up_check_names_a_missing_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sdk_voice._VoiceConnection, "_handle_audio")
    with pytest.raises(SdkIncompatible, match=r"_VoiceConnection\._handle_audio is missing"):
        voice_wire.check_sdk_internals()


def test_the_start_up_check_notices_a_receive_loop_that_no_longer_calls_our_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def inlined(self: object) -> None:
        """A future SDK that decodes audio inline would bypass the override."""

    monkeypatch.setattr(sdk_voice._VoiceConnection, "_receive_loop", inlined)
    with pytest.raises(SdkIncompatible, match=r"_receive_loop no longer uses self\._handle_audio"):
        voice_wire.check_sdk_internals()


def test_the_start_up_check_notices_a_call_that_opens_another_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from telcoflow import call as sdk_call

    monkeypatch.setattr(sdk_call, "_VoiceConnection", type("Other", (), {}))
    with pytest.raises(SdkIncompatible, match="no longer opens"):
        voice_wire.check_sdk_internals()


async def test_frame_queue_keeps_order_wakes_its_reader_and_survives_a_cancelled_one() -> None:
    queue = voice_wire.FrameQueue()
    stream = voice_wire.FrameStream(queue)
    cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not reader.done(), "nothing queued yet: the reader waits"
    queue.put_nowait(b"a")
    queue.put_nowait(b"b")
    assert await reader == b"a", "the cancelled reader took nothing"
    await queue.put(b"c")
    await queue.put(None)
    assert [chunk async for chunk in stream] == [b"b", b"c"]
    assert queue.empty()
