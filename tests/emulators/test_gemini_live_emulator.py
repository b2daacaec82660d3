"""The Gemini Live emulator, driven by the unmodified google-genai client and an ADK Runner.

Every test talks real TLS WebSockets on 127.0.0.1 (port 0). Caller audio is the committed
espeak-ng speech; the emulator's VAD runs on audio time, so tests send faster than real time.
Assertions are on message order, counts and content, never on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import soxr
import websockets
from google import genai
from google.genai import errors, types
from google.genai.live import AsyncSession

from callbridge.emulators.gemini_live import (
    CallTool,
    Fault,
    GeminiLiveEmulator,
    Script,
    Speak,
    Turn,
)
from callbridge.emulators.gemini_live.protocol import ProtocolError, decode_b64
from callbridge.emulators.voices import load_phrase

MODEL_25 = "gemini-2.5-flash-native-audio-preview-12-2025"
MODEL_3X = "gemini-3.1-flash-live-preview"
CHUNK = 640  # 20 ms at 16 kHz
SILENCE_1S = bytes(32000)


@pytest.fixture(autouse=True)
def _no_google_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the developer's Google settings (Vertex mode, real keys, base URLs) out."""
    import os

    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "GEMINI_")) or name == "SSL_CERT_FILE":
            monkeypatch.delenv(name)
    yield


def caller(name: str) -> bytes:
    """A caller phrase as 16 kHz s16le (resampled if the asset had another rate)."""
    phrase = load_phrase(name)
    if phrase.rate == 16000:
        return phrase.pcm
    samples = np.frombuffer(phrase.pcm, dtype="<i2").astype(np.float32)
    out = soxr.resample(samples, phrase.rate, 16000)
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


def short_speech(seconds: float, text: str) -> Speak:
    """The first `seconds` of the agent greeting: real speech, short playback hold."""
    pcm = load_phrase("agent_greeting").pcm
    return Speak(pcm=pcm[: int(seconds * 24000) * 2], text=text)


def client_for(emu: GeminiLiveEmulator) -> genai.Client:
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=emu.base_url, async_client_args={"ssl": emu.client_ssl_context()}
        ),
    )


def live_config(**extra: Any) -> types.LiveConnectConfig:
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        **extra,
    )


class Inbox:
    """Collects every server message, looping over `receive()` (it stops at each turnComplete)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.messages: list[types.LiveServerMessage] = []
        self.error: Exception | None = None
        self._changed = asyncio.Condition()

    async def pump(self) -> None:
        try:
            while True:
                async for message in self.session.receive():
                    async with self._changed:
                        self.messages.append(message)
                        self._changed.notify_all()
        except errors.APIError as exc:
            async with self._changed:
                self.error = exc
                self._changed.notify_all()

    def said(self) -> list[str]:
        """The model's output transcription pieces, in arrival order."""
        return [
            m.server_content.output_transcription.text or ""
            for m in self.messages
            if m.server_content and m.server_content.output_transcription
        ]

    async def wait_for(
        self, predicate: Callable[[types.LiveServerMessage], object], timeout: float = 20.0
    ) -> types.LiveServerMessage:
        def found() -> types.LiveServerMessage | None:
            return next((m for m in self.messages if predicate(m)), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None or self.error is not None)
        message = found()
        if message is None:
            raise AssertionError(f"connection ended first: {self.error!r}")
        return message

    async def wait_count(
        self,
        predicate: Callable[[types.LiveServerMessage], object],
        count: int,
        timeout: float = 20.0,
    ) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: self.count(predicate) >= count or self.error is not None
            )
        if self.count(predicate) < count:
            raise AssertionError(f"connection ended first: {self.error!r}")

    async def wait_error(self, timeout: float = 20.0) -> errors.APIError:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.error is not None)
        assert isinstance(self.error, errors.APIError)
        return self.error

    def count(self, predicate: Callable[[types.LiveServerMessage], object]) -> int:
        return sum(1 for m in self.messages if predicate(m))


@asynccontextmanager
async def live(
    emu: GeminiLiveEmulator, model: str = MODEL_25, **config: Any
) -> AsyncIterator[tuple[AsyncSession, Inbox]]:
    """Connect the unmodified client and pump its messages until the block exits."""
    async with client_for(emu).aio.live.connect(model=model, config=live_config(**config)) as s:
        inbox = Inbox(s)
        pump = asyncio.create_task(inbox.pump())
        try:
            yield s, inbox
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def send_audio(session: AsyncSession, pcm: bytes, pace_s: float = 0.002) -> None:
    for i in range(0, len(pcm), CHUNK):
        blob = types.Blob(data=pcm[i : i + CHUNK], mime_type="audio/pcm;rate=16000")
        await session.send_realtime_input(audio=blob)
        await asyncio.sleep(pace_s)


def is_turn_complete(m: types.LiveServerMessage) -> bool:
    return bool(m.server_content and m.server_content.turn_complete)


def kinds_between(kinds: list[str], first: str, last: str) -> list[str]:
    start = kinds.index(first)
    return kinds[start : kinds.index(last, start) + 1]


# ---------------------------------------------------------------------------- handshake


async def feed_adk(queue: Any, pcm: bytes, *, pace_s: float = 0.01) -> None:
    """Send 16 kHz caller PCM into an ADK LiveRequestQueue in 100 ms blobs."""
    for i in range(0, len(pcm), 3200):
        queue.send_realtime(types.Blob(data=pcm[i : i + 3200], mime_type="audio/pcm;rate=16000"))
        if pace_s:
            await asyncio.sleep(pace_s)


async def collect_adk_audio(events: AsyncIterator[Any], audio: bytearray) -> None:
    """Append the model audio of ADK ``events`` to ``audio`` until a turn with audio ends."""
    async for event in events:
        parts = event.content.parts if event.content and event.content.parts else []
        for part in parts:
            if part.inline_data and part.inline_data.data:
                audio.extend(part.inline_data.data)
        if event.turn_complete and audio:
            return


async def test_setup_gets_setup_complete_and_is_logged() -> None:
    async with GeminiLiveEmulator() as emu, live(emu) as (session, _inbox):
        assert session.setup_complete is not None
    log = (await emu.wait_sessions(1))[0]
    await log.wait_closed()
    assert log.path.endswith("v1beta.GenerativeService.BidiGenerateContent")
    assert log.headers["x-goog-api-key"].startswith("<redacted")
    assert log.api_key_source == "header"
    assert log.model == f"models/{MODEL_25}"
    assert log.profile == "2.5"
    assert log.setup["generation_config"]["response_modalities"] == ["AUDIO"]
    assert log.kinds()[0] == "setupComplete"
    assert log.close_code == 1000


async def test_unknown_model_is_closed_1008() -> None:
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(errors.APIError) as caught:
            async with client_for(emu).aio.live.connect(model="gpt-4o", config=live_config()):
                pass
    assert caught.value.code == 1008
    assert "not found for API version v1beta" in str(caught.value)


async def test_setup_without_audio_modality_is_closed_1007() -> None:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(errors.APIError) as caught:
            async with client_for(emu).aio.live.connect(model=MODEL_25, config=config):
                pass
    assert caught.value.code == 1007


# ---------------------------------------------------------------------------- conversation


async def test_utterance_gets_transcripts_audio_and_turn_complete() -> None:
    speech = short_speech(0.6, "Hello, thanks for calling.")
    heard = load_phrase("caller_greeting").text
    script = Script([Turn([speech], input_transcript=heard)])
    async with GeminiLiveEmulator(script=script) as emu, live(emu) as (session, inbox):
        await send_audio(session, caller("caller_greeting") + SILENCE_1S)
        await inbox.wait_for(is_turn_complete)
    msgs = inbox.messages
    heard_msgs = [m.server_content.input_transcription for m in msgs if m.server_content]
    assert [t.text for t in heard_msgs if t] == [heard]
    audio = b"".join(m.data for m in msgs if m.data)
    assert audio == speech.pcm
    assert all(
        p.inline_data.mime_type == "audio/pcm;rate=24000"
        for m in msgs
        if m.server_content and m.server_content.model_turn
        for p in m.server_content.model_turn.parts or []
        if p.inline_data
    )
    assert "".join(inbox.said()) == "Hello, thanks for calling."
    log = emu.sessions[0]
    kinds = log.kinds()
    assert kinds.index("inputTranscription") < kinds.index("audio")
    assert kinds.index("generationComplete") < kinds.index("turnComplete")
    assert kinds.count("audio") == -(-len(speech.pcm) // 1920)  # 40 ms chunks
    assert len(log.speech_ended_at) == 1 and log.audio_in_rate == 16000
    assert log.audio_in_bytes == len(caller("caller_greeting")) + len(SILENCE_1S)
    # turnComplete is held until the audio could have played out in real time
    first_audio = log.turn_audio_first_sent[0]
    turn_complete_at = next(t for t, k in log.sent if k == "turnComplete")
    assert turn_complete_at - first_audio >= speech.duration_s * 0.9
    await inbox.wait_for(lambda m: m.usage_metadata is not None)
    usage = next(m.usage_metadata for m in msgs if m.usage_metadata)
    assert usage.response_token_count == round(speech.duration_s * 25)
    assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count


async def test_text_nudge_plays_greeting_then_turns_in_order() -> None:
    greeting = short_speech(0.3, "Hello.")
    answer = short_speech(0.3, "Thursday.")
    script = Script([Turn([answer], input_transcript="When?")], greeting=Turn([greeting]))
    async with GeminiLiveEmulator(script=script) as emu, live(emu) as (session, inbox):
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="(call connected)")])
        )
        await inbox.wait_for(is_turn_complete)
        await send_audio(session, caller("caller_question") + SILENCE_1S)
        await inbox.wait_count(is_turn_complete, 2)
    assert inbox.said() == ["Hello.", "Thursday."]
    assert emu.sessions[0].texts_in == ["(call connected)"]


async def test_barge_in_interrupts_the_model() -> None:
    long_answer = Speak.phrase(load_phrase("agent_answer_long"))
    followup = short_speech(0.3, "Connecting you.")
    script = Script(
        [
            Turn([long_answer], input_transcript="When will it arrive?"),
            Turn([followup], input_transcript="I need a person."),
        ]
    )
    async with (
        GeminiLiveEmulator(script=script, burst_speed=1.0) as emu,
        live(emu) as (session, inbox),
    ):
        await send_audio(session, caller("caller_question") + SILENCE_1S)
        await inbox.wait_for(lambda m: m.data is not None)
        await send_audio(session, caller("caller_bargein") + SILENCE_1S)
        interrupted = await inbox.wait_for(
            lambda m: bool(m.server_content and m.server_content.interrupted)
        )
        assert interrupted.server_content is not None
        await inbox.wait_for(
            lambda m: bool(
                m.server_content
                and m.server_content.output_transcription
                and m.server_content.output_transcription.text == "Connecting"
            )
        )
    kinds = emu.sessions[0].kinds()
    after = kinds[kinds.index("interrupted") :]
    assert after[1] == "turnComplete"  # interrupted, then turnComplete, no generationComplete
    assert "generationComplete" not in kinds_between(kinds, "setupComplete", "interrupted")
    first_turn_audio = [m.data for m in inbox.messages[: inbox.messages.index(interrupted)]]
    assert 0 < len(b"".join(d for d in first_turn_audio if d)) < len(long_answer.pcm)
    assert len(emu.sessions[0].interrupted_at) == 1


# ---------------------------------------------------------------------------- tools

DECLARATION = types.FunctionDeclaration(
    name="escalate_to_human",
    description="Hand the call to a person.",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"reason": types.Schema(type=types.Type.STRING)}
    ),
)


@pytest.mark.parametrize(
    ("model", "turn_complete_after_call"), [(MODEL_25, True), (MODEL_3X, False)]
)
async def test_tool_call_round_trip_by_model_family(
    model: str, turn_complete_after_call: bool
) -> None:
    decl = DECLARATION.model_copy(update={"behavior": types.Behavior.NON_BLOCKING})
    after = short_speech(0.3, "Connecting you now.")
    script = Script(
        [
            Turn(
                [CallTool("escalate_to_human", {"reason": "caller asked"}), after],
                input_transcript="I need a person.",
            )
        ]
    )
    async with (
        GeminiLiveEmulator(script=script) as emu,
        live(emu, model, tools=[types.Tool(function_declarations=[decl])]) as (session, inbox),
    ):
        await send_audio(session, caller("caller_bargein") + SILENCE_1S)
        call_msg = await inbox.wait_for(lambda m: m.tool_call is not None)
        assert call_msg.tool_call is not None and call_msg.tool_call.function_calls
        call = call_msg.tool_call.function_calls[0]
        assert call.name == "escalate_to_human" and call.args == {"reason": "caller asked"}
        assert call.id
        if turn_complete_after_call:
            await inbox.wait_count(is_turn_complete, 1)
        else:
            await asyncio.sleep(0.3)  # give a wrong-profile turnComplete time to show up
        early = inbox.count(is_turn_complete)
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(id=call.id, name=call.name, response={"status": "ok"})
            ]
        )
        await inbox.wait_count(is_turn_complete, early + 1)
    assert early == (1 if turn_complete_after_call else 0)
    log = emu.sessions[0]
    assert log.profile == ("2.5" if turn_complete_after_call else "3.1")
    assert log.tool_calls[0]["id"] == call.id
    assert log.tool_responses[0]["id"] == call.id
    assert log.tool_responses[0]["response"] == {"status": "ok"}
    kinds = log.kinds()
    next_kind = kinds[kinds.index("toolCall") + 1]
    assert next_kind == ("turnComplete" if turn_complete_after_call else "audio")


async def test_audio_while_blocking_tool_pending_is_closed_1008() -> None:
    script = Script([Turn([CallTool("escalate_to_human", {"reason": "x"})])])
    tools = [types.Tool(function_declarations=[DECLARATION])]  # no behavior: BLOCKING
    async with (
        GeminiLiveEmulator(script=script) as emu,
        live(emu, tools=tools) as (session, inbox),
    ):
        await session.send_realtime_input(text="get me a person")
        await inbox.wait_for(lambda m: m.tool_call is not None)
        # Audio in flight as the toolCall went out is tolerated (a quarter second)...
        await send_audio(session, bytes(CHUNK))
        await asyncio.sleep(0.35)
        assert emu.sessions[0].close_code is None
        # ...audio sent after that is refused, even silence.
        await send_audio(session, bytes(CHUNK))
        error = await inbox.wait_error()
    assert error.code == 1008
    assert "BLOCKING" in str(error)
    await emu.sessions[0].wait_closed()
    assert emu.sessions[0].close_code == 1008


async def test_barge_in_cancels_pending_tool_call() -> None:
    decl = DECLARATION.model_copy(update={"behavior": types.Behavior.NON_BLOCKING})
    script = Script([Turn([CallTool("escalate_to_human", {"reason": "x"})])])
    async with (
        GeminiLiveEmulator(script=script) as emu,
        live(emu, tools=[types.Tool(function_declarations=[decl])]) as (session, inbox),
    ):
        await send_audio(session, caller("caller_bargein") + SILENCE_1S)
        call_msg = await inbox.wait_for(lambda m: m.tool_call is not None)
        await send_audio(session, caller("caller_bye"))
        cancel = await inbox.wait_for(lambda m: m.tool_call_cancellation is not None)
    assert call_msg.tool_call and call_msg.tool_call.function_calls
    assert cancel.tool_call_cancellation is not None
    assert cancel.tool_call_cancellation.ids == [call_msg.tool_call.function_calls[0].id]


# ---------------------------------------------------------------------------- sessions


async def test_resumption_handle_continues_the_script() -> None:
    first = short_speech(0.3, "First answer.")
    second = short_speech(0.3, "Second answer.")
    script = Script([Turn([first]), Turn([second])])
    resumption = types.SessionResumptionConfig()
    async with GeminiLiveEmulator(script=script) as emu:
        async with live(emu, session_resumption=resumption) as (session, inbox):
            await session.send_realtime_input(text="first question")
            await inbox.wait_for(is_turn_complete)
            update = await inbox.wait_for(
                lambda m: bool(
                    m.session_resumption_update
                    and m.session_resumption_update.resumable
                    and len(emu.sessions[0].handles_issued) >= 2
                    and m.session_resumption_update.new_handle == emu.sessions[0].handles_issued[-1]
                )
            )
        assert update.session_resumption_update is not None
        handle = update.session_resumption_update.new_handle
        await emu.sessions[0].wait_closed()
        resume = types.SessionResumptionConfig(handle=handle)
        async with live(emu, session_resumption=resume) as (session, inbox):
            await session.send_realtime_input(text="second question")
            await inbox.wait_for(is_turn_complete)
        assert inbox.said() == ["Second", " answer."]
        assert emu.sessions[1].resumed_from == handle
        assert emu.sessions[1].conversation_id == emu.sessions[0].conversation_id
        # A handle nobody issued is refused.
        with pytest.raises(errors.APIError) as caught:
            bogus = types.SessionResumptionConfig(handle="no-such-handle")
            async with live(emu, session_resumption=bogus):
                pass
        assert caught.value.code == 1007


async def test_resume_while_old_socket_open_is_closed_1011() -> None:
    resumption = types.SessionResumptionConfig()
    async with GeminiLiveEmulator() as emu, live(emu, session_resumption=resumption) as (_, inbox):
        update = await inbox.wait_for(lambda m: m.session_resumption_update is not None)
        assert update.session_resumption_update is not None
        handle = update.session_resumption_update.new_handle
        resume = types.SessionResumptionConfig(handle=handle)
        with pytest.raises(errors.APIError) as caught:
            async with live(emu, session_resumption=resume):
                pass
    assert caught.value.code == 1011


async def test_go_away_fault_then_deadline_close() -> None:
    script = Script(faults=[Fault.go_away(after_s=0.2, time_left_s=0.5)])
    async with GeminiLiveEmulator(script=script) as emu, live(emu) as (_session, inbox):
        message = await inbox.wait_for(lambda m: m.go_away is not None)
        assert message.go_away is not None and message.go_away.time_left == "0.5s"
        error = await inbox.wait_error()
    assert error.code == 1011
    assert "Deadline expired" in str(error)


async def test_turn_without_audio_fault() -> None:
    script = Script(
        [Turn([short_speech(0.3, "Hi.")])], faults=[Fault.turn_without_audio(turn_index=0)]
    )
    async with GeminiLiveEmulator(script=script) as emu, live(emu) as (session, inbox):
        await session.send_realtime_input(text="hello")
        await inbox.wait_for(is_turn_complete)
    assert not any(m.data for m in inbox.messages)
    assert "generationComplete" in emu.sessions[0].kinds()


async def test_stop_pongs_fault_trips_client_keepalive() -> None:
    script = Script(faults=[Fault.stop_pongs(after_s=0.0)])
    async with GeminiLiveEmulator(script=script) as emu:
        client = genai.Client(
            api_key="test-key",
            http_options=types.HttpOptions(
                base_url=emu.base_url,
                async_client_args={
                    "ssl": emu.client_ssl_context(),
                    "ping_interval": 0.2,
                    "ping_timeout": 0.5,
                },
            ),
        )
        async with client.aio.live.connect(model=MODEL_25, config=live_config()) as session:
            with pytest.raises(errors.APIError) as caught:
                async with asyncio.timeout(20):
                    async for _ in session.receive():
                        pass
    # The client gives up with "keepalive ping timeout" (it sends 1011, receives no close frame).
    assert caught.value.code in (1006, 1011)
    log = emu.sessions[0]
    await log.wait_closed()
    assert "fault: stop_pongs" in log.notes
    assert log.close_code == 1011


async def test_close_fault_1006_drops_the_connection() -> None:
    script = Script(faults=[Fault.close(after_s=0.1, code=1006, on_connection=0)])
    async with GeminiLiveEmulator(script=script) as emu, live(emu) as (_session, inbox):
        error = await inbox.wait_error()
    assert error.code == 1006


async def test_3x_setup_with_affective_dialog_never_completes() -> None:
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                config = live_config(enable_affective_dialog=True)
                async with client_for(emu).aio.live.connect(model=MODEL_3X, config=config):
                    pass
        log = (await emu.wait_sessions(1))[0]
        await log.wait_closed()
    assert "setupComplete" not in log.kinds()


async def test_manual_activity_signals_and_greet_on_connect() -> None:
    greeting = short_speech(0.2, "Hello.")
    answer = short_speech(0.2, "Sure.")
    script = Script([Turn([answer])], greeting=Turn([greeting]), greet_on_connect=True)
    manual = types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
    )
    async with (
        GeminiLiveEmulator(script=script) as emu,
        live(emu, realtime_input_config=manual) as (session, inbox),
    ):
        await inbox.wait_for(is_turn_complete)
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await send_audio(session, caller("caller_bye"))
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        await inbox.wait_count(is_turn_complete, 2)
    assert inbox.said() == ["Hello.", "Sure."]


# ---------------------------------------------------------------------------- raw wire


@asynccontextmanager
async def raw_socket(
    emu: GeminiLiveEmulator, path: str = "/ws/raw?key=secret"
) -> AsyncIterator[websockets.ClientConnection]:
    url = emu.base_url.replace("https://", "wss://") + path
    async with websockets.connect(url, ssl=emu.client_ssl_context()) as ws:
        yield ws


async def test_both_base64_alphabets_and_casings_decode() -> None:
    pcm = bytes(range(256)) * 8  # contains the bytes that encode to + / - _
    standard = base64.b64encode(pcm).decode()
    urlsafe = base64.urlsafe_b64encode(pcm).decode().rstrip("=")
    assert ("+" in standard or "/" in standard) and ("-" in urlsafe or "_" in urlsafe)
    async with GeminiLiveEmulator(binary_frames=False) as emu, raw_socket(emu) as ws:
        setup = {
            "setup": {
                "model": f"models/{MODEL_25}",
                "generation_config": {"response_modalities": ["AUDIO"]},
            }
        }
        await ws.send(json.dumps(setup))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        await ws.send(
            json.dumps(
                {"realtimeInput": {"audio": {"data": standard, "mimeType": "audio/pcm;rate=8000"}}}
            )
        )
        await ws.send(
            json.dumps(
                {
                    "realtime_input": {
                        "media_chunks": [{"data": urlsafe, "MIME_TYPE": "audio/pcm;rate=16000"}]
                    }
                }
            )
        )
        await ws.send(
            json.dumps({"realtime_input": {"audio": {"data": "!!", "mime_type": "audio/pcm"}}})
        )
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1007
    log = emu.sessions[0]
    assert [size for _, size in log.audio_in] == [len(pcm), len(pcm)]
    assert log.audio_in_rate == 16000
    assert log.api_key_source == "query" and "secret" not in log.path
    assert decode_b64(standard) == decode_b64(urlsafe) == pcm
    with pytest.raises(ProtocolError):
        decode_b64("abcde")


async def test_first_frame_must_be_setup_and_non_pcm_is_refused() -> None:
    async with GeminiLiveEmulator() as emu:
        async with raw_socket(emu) as ws:
            await ws.send(json.dumps({"realtime_input": {"text": "hi"}}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1007
        async with raw_socket(emu) as ws:
            await ws.send(
                json.dumps(
                    {
                        "setup": {
                            "model": f"models/{MODEL_3X}",
                            "generationConfig": {"responseModalities": ["AUDIO"]},
                        }
                    }
                )
            )
            frame = await ws.recv()
            assert isinstance(frame, bytes)  # binary frames by default
            await ws.send(
                json.dumps({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}})
            )
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1007


# ---------------------------------------------------------------------------- VAD


def test_vad_start_end_and_blips_in_audio_time() -> None:
    from callbridge.emulators.gemini_live.vad import EnergyVad

    vad = EnergyVad(threshold_rms=500, hangover_s=0.4)
    tone = (np.sin(np.arange(8000) / 3) * 3000).astype("<i2").tobytes()  # 1 s at 8 kHz
    blip = tone[: 2 * 8 * 40]  # 40 ms: below the 60 ms start threshold
    assert not vad.feed(blip + bytes(2 * 8 * 500), 8000).started
    events = [vad.feed(tone[i : i + 160], 8000) for i in range(0, len(tone), 160)]
    assert [e.started for e in events].count(True) == 1
    assert events[5].started  # 6 x 10 ms chunks = 60 ms voiced
    assert not any(e.ended for e in events)
    quiet = [vad.feed(bytes(320), 8000) for _ in range(25)]  # 25 x 20 ms of silence
    assert [e.ended for e in quiet].index(True) == 19  # ended after 400 ms
    assert vad.feed(tone[:3200], 8000).in_speech and vad.flush()  # 200 ms counts


# ---------------------------------------------------------------------------- ADK


async def test_adk_runner_gets_model_audio() -> None:
    from google.adk.agents import Agent
    from google.adk.agents.live_request_queue import LiveRequestQueue
    from google.adk.agents.run_config import RunConfig
    from google.adk.models.google_llm import Gemini
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService

    speech = short_speech(0.5, "Hello from the agent.")
    script = Script([Turn([speech], input_transcript="Hello.")])
    async with GeminiLiveEmulator(script=script) as emu:
        model = Gemini(
            model=MODEL_25,
            base_url=emu.base_url,
            client_kwargs={
                "api_key": "x",
                "http_options": {"async_client_args": {"ssl": emu.client_ssl_context()}},
            },
        )
        agent = Agent(name="phone_agent", model=model, instruction="Help the caller.")
        sessions = InMemorySessionService()
        runner = Runner(app_name="emu_test", agent=agent, session_service=sessions)
        adk_session = await sessions.create_session(app_name="emu_test", user_id="caller")
        queue = LiveRequestQueue()
        audio = bytearray()
        said: list[str] = []

        async def feed() -> None:
            await feed_adk(queue, caller("caller_greeting") + SILENCE_1S)

        async def consume() -> None:
            events = runner.run_live(
                user_id="caller",
                session_id=adk_session.id,
                live_request_queue=queue,
                run_config=RunConfig(response_modalities=["AUDIO"]),
            )
            async for event in events:
                parts = event.content.parts if event.content and event.content.parts else []
                for part in parts:
                    if part.inline_data and part.inline_data.data:
                        audio.extend(part.inline_data.data)
                if event.output_transcription and event.output_transcription.finished:
                    said.append(event.output_transcription.text or "")
                if event.turn_complete:
                    break
            queue.close()
            await events.aclose()

        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(feed())
            tg.create_task(consume())
        log = (await emu.wait_sessions(1))[0]
        assert "v1alpha" in log.path
        assert bytes(audio) == speech.pcm
        assert said == ["Hello from the agent."]
        assert log.setup["system_instruction"]["parts"][0]["text"].startswith("Help the caller.")
        assert log.audio_in_bytes > 0
        assert log.speech_ended_at


@pytest.mark.parametrize("model", [MODEL_25, MODEL_3X])
async def test_adk_executes_tool_once_in_both_model_families(model: str) -> None:
    """The profile must match ADK's expectation, or ADK never runs the tool (deadlock)."""
    from google.adk.agents import Agent
    from google.adk.agents.live_request_queue import LiveRequestQueue
    from google.adk.agents.run_config import RunConfig
    from google.adk.models.google_llm import Gemini
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService

    calls: list[str] = []

    async def escalate_to_human(reason: str) -> dict[str, str]:
        """Hand the call to a person."""
        calls.append(reason)
        return {"status": "queued"}

    after = short_speech(0.3, "Connecting you.")
    script = Script(
        [Turn([CallTool("escalate_to_human", {"reason": "asked"}), after], input_transcript="Hi")]
    )
    async with GeminiLiveEmulator(script=script) as emu:
        model_obj = Gemini(
            model=model,
            base_url=emu.base_url,
            client_kwargs={
                "api_key": "x",
                "http_options": {"async_client_args": {"ssl": emu.client_ssl_context()}},
            },
        )
        agent = Agent(name="phone_agent", model=model_obj, tools=[escalate_to_human])
        sessions = InMemorySessionService()
        runner = Runner(app_name="emu_test", agent=agent, session_service=sessions)
        adk_session = await sessions.create_session(app_name="emu_test", user_id="caller")
        queue = LiveRequestQueue()
        audio = bytearray()

        # Exactly speech + the 0.4 s hangover: no audio may follow while the BLOCKING call is
        # pending, or the emulator (like the real service) closes 1008.
        pcm = caller("caller_greeting") + bytes(int(0.4 * 32000))
        await feed_adk(queue, pcm, pace_s=0.0)
        events = runner.run_live(
            user_id="caller",
            session_id=adk_session.id,
            live_request_queue=queue,
            run_config=RunConfig(response_modalities=["AUDIO"]),
        )
        async with asyncio.timeout(30):
            await collect_adk_audio(events, audio)
        queue.close()
        await events.aclose()
        log = emu.sessions[0]
    assert calls == ["asked"]
    assert bytes(audio) == after.pcm
    assert [r["id"] for r in log.tool_responses] == [c["id"] for c in log.tool_calls]
    assert log.tool_responses[0]["response"] == {"status": "queued"}
    decl = log.setup["tools"][0]["function_declarations"][0]
    assert decl["name"] == "escalate_to_human"


async def test_reject_resume_fault_fails_once_then_resumes() -> None:
    script = Script(faults=[Fault.reject_resume()])
    resumption = types.SessionResumptionConfig()
    async with GeminiLiveEmulator(script=script) as emu:
        async with live(emu, session_resumption=resumption) as (_, inbox):
            update = await inbox.wait_for(lambda m: m.session_resumption_update is not None)
        assert update.session_resumption_update is not None
        resume = types.SessionResumptionConfig(handle=update.session_resumption_update.new_handle)
        with pytest.raises(errors.APIError) as caught:
            async with live(emu, session_resumption=resume):
                pass
        assert caught.value.code == 1007
        async with live(emu, session_resumption=resume) as (session, _):
            assert session.setup_complete is not None
        assert [s.resumed_from is not None for s in emu.sessions] == [False, False, True]


async def test_adk_reconnects_on_go_away_with_the_latest_handle() -> None:
    from google.adk.agents import Agent
    from google.adk.agents.live_request_queue import LiveRequestQueue
    from google.adk.agents.run_config import RunConfig
    from google.adk.models.google_llm import Gemini
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService

    speech = short_speech(0.3, "Still here.")
    script = Script(
        [Turn([speech], input_transcript="Hello?")],
        faults=[Fault.go_away(after_s=0.2, time_left_s=5.0, on_connection=0)],
    )
    async with GeminiLiveEmulator(script=script) as emu:
        model = Gemini(
            model=MODEL_25,
            base_url=emu.base_url,
            client_kwargs={
                "api_key": "x",
                "http_options": {"async_client_args": {"ssl": emu.client_ssl_context()}},
            },
        )
        agent = Agent(name="phone_agent", model=model)
        sessions = InMemorySessionService()
        runner = Runner(app_name="emu_test", agent=agent, session_service=sessions)
        adk_session = await sessions.create_session(app_name="emu_test", user_id="caller")
        queue = LiveRequestQueue()
        audio = bytearray()

        async def feed_after_reconnect() -> None:
            await emu.wait_sessions(2)
            await feed_adk(queue, caller("caller_greeting") + SILENCE_1S)

        async def consume() -> None:
            events = runner.run_live(
                user_id="caller",
                session_id=adk_session.id,
                live_request_queue=queue,
                run_config=RunConfig(
                    response_modalities=["AUDIO"],
                    session_resumption=types.SessionResumptionConfig(),
                ),
            )
            await collect_adk_audio(events, audio)
            queue.close()
            await events.aclose()

        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(feed_after_reconnect())
            tg.create_task(consume())
        first, second = emu.sessions[:2]
    assert "goAway" in first.kinds()
    assert second.resumed_from == first.handles_issued[-1]
    assert second.conversation_id == first.conversation_id
    assert bytes(audio) == speech.pcm
