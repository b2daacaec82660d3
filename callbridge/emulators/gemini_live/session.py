"""One live connection: read client frames, detect speech, play script turns, inject faults.

Three kinds of task share the connection, all owned by one TaskGroup:

* the reader (the caller of `run`) parses frames, feeds the VAD and resolves tool calls; it never
  waits on anything but the socket, so barge-in is detected while the model is talking;
* the conductor turns "user turn ended" triggers into model turns, one at a time; each turn runs
  as its own child task so that a barge-in can cancel it mid-sentence;
* one timer task per timed fault.

Every frame goes out through `_send`, which records it in the `SessionLog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import OP_PONG, Frame

from callbridge.adapters import ws_send

from . import messages as msg
from .log import SessionLog
from .native_rate import NATIVE_INPUT_RATE, NativeRate
from .protocol import (
    ProtocolError,
    close_reason,
    decode_b64,
    encode_frame,
    normalize,
    parse_pcm_mime,
    snake,
    snake_keys,
)
from .resumption import Conversation, HandleStore
from .script import CallTool, Fault, Pause, Speak, Turn
from .setup import INVALID_ARGUMENT, SetupInfo
from .symptoms import Symptom, symptom_of
from .vad import EnergyVad

__all__ = ["LiveSession", "SessionConfig"]

_log = logging.getLogger(__name__)

TOKENS_PER_AUDIO_S = 25  # the Live API bills audio at 25 tokens per second
THOUGHT_TOKENS_PER_TURN_38 = 136
"""ASSUMPTION: 3.8 thinks before every turn; the count is the one public capture's
(discuss.ai.google.dev t/188765: 136 thinking tokens for a short reply), not a model of it."""
_DEADLINE = "Deadline expired before operation could complete."
_EMPTY_TURN = Turn()
_TRIGGER_QUEUE = 32


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Emulator-wide knobs every session reads."""

    burst_speed: float = 4.0
    vad_threshold_rms: float = 500.0
    vad_hangover_s: float = 0.4
    binary_frames: bool = True
    strict_blocking: bool = True
    blocking_grace_s: float = 0.25
    log_audio_frames: bool = True  # per-chunk entries in audio_in / sent (off for long soaks)


@dataclass(frozen=True, slots=True)
class _Trigger:
    """A user turn ended: by VAD ("speech"), by text, or by a manual activityEnd."""

    kind: Literal["speech", "text", "activity"]


@dataclass(slots=True)
class _PendingCall:
    call_id: str
    name: str
    blocking: bool
    answered: asyncio.Future[dict[str, Any]]
    sent_at: float = 0.0


@dataclass(slots=True)
class _TurnProgress:
    """What a turn has done so far; read by the conductor when the turn is interrupted."""

    pending_ids: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    play_end: float = 0.0
    first_audio: float | None = None
    completing: bool = False  # turnComplete is going out: too late to interrupt


class LiveSession:
    """The emulated model side of one accepted, set-up connection."""

    def __init__(
        self,
        ws: ServerConnection,
        log: SessionLog,
        config: SessionConfig,
        info: SetupInfo,
        conversation: Conversation,
        handles: HandleStore,
    ) -> None:
        ws_send.check_connection(ws, "Gemini Live emulator session")
        self._ws = ws
        self._log = log
        self._config = config
        self._info = info
        self._conv = conversation
        self._handles = handles
        self._vad = EnergyVad(config.vad_threshold_rms, config.vad_hangover_s)
        self._native = NativeRate()
        self._triggers: asyncio.Queue[_Trigger] = asyncio.Queue(maxsize=_TRIGGER_QUEUE)
        self._pending: dict[str, _PendingCall] = {}
        self._turn_task: asyncio.Task[None] | None = None
        self._progress: _TurnProgress | None = None
        self._interrupting = False
        self._tg: asyncio.TaskGroup | None = None
        self._audio_in_s = 0.0  # caller audio not yet added to the token context
        self._closing = False
        self._started_at = time.monotonic()
        self._client_messages = 0  # after setup; Vertex's lastConsumedClientMessageIndex

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until it closes; returns with every child task finished."""
        script = self._conv.script
        if self._info.resumption:
            await self._issue_handle()  # resumable straight away, before any turn
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            helpers = [tg.create_task(self._conduct(), name="gemini-emu-conductor")]
            for fault in script.faults:
                timed = ("go_away", "close", "stop_pongs", "raw_frame", "oversized")
                if fault.kind in timed and self._applies(fault):
                    helpers.append(tg.create_task(self._fire(fault), name=f"fault-{fault.kind}"))
            try:
                await self._read()
            finally:
                for task in helpers:
                    task.cancel()
                if self._turn_task is not None:
                    self._turn_task.cancel()

    def _applies(self, fault: Fault) -> bool:
        return fault.on_connection is None or fault.on_connection == self._log.connection_index

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                try:
                    self._on_frame(frame)
                except ProtocolError as exc:
                    self._log.notes.append(f"rejected client frame: {exc.code} {exc.reason}")
                    await self._close(exc.code, exc.reason)
                    return
        except ConnectionClosed:
            pass

    async def _close(self, code: int, reason: str) -> None:
        self._closing = True
        with contextlib.suppress(ConnectionClosed):
            await self._ws.close(code, close_reason(reason))

    async def _send(self, message: Mapping[str, Any], kind: str) -> None:
        await self._send_frame(encode_frame(message, self._config.binary_frames), kind)

    async def _send_frame(self, frame: str | bytes, kind: str) -> None:
        if self._closing:
            return
        try:
            await ws_send.send(self._ws, frame)
        except ConnectionClosed:
            self._closing = True
            return
        if kind == "audio":
            self._log.audio_chunks_out += 1
            if not self._config.log_audio_frames:
                return
        self._log.sent.append((time.monotonic(), kind))

    # ------------------------------------------------------------------ client frames

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError(1007, "Invalid JSON payload received.") from None
        if not isinstance(message, dict):
            raise ProtocolError(1007, "Invalid JSON payload received.")
        self._client_messages += 1
        for key, body in message.items():
            name = snake(key)
            if not isinstance(body, dict):
                raise ProtocolError(1007, f"Invalid JSON payload received. Bad value for {key!r}.")
            if name == "realtime_input":
                self._on_realtime_input(body)
            elif name == "tool_response":
                self._on_tool_response(normalize(body))
            elif name == "client_content":
                self._on_client_content(normalize(body))
            elif name == "context_update":
                self._log.notes.append("context_update received (ignored)")
            elif name == "setup":
                raise ProtocolError(1007, f"{INVALID_ARGUMENT} setup may only be sent once.")
            else:
                raise ProtocolError(
                    1007, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
                )

    def _on_realtime_input(self, body: dict[str, Any]) -> None:
        fields = snake_keys(body)
        audio = fields.get("audio")
        if isinstance(audio, dict):
            self._on_blob(audio)
        chunks = fields.get("media_chunks")
        if isinstance(chunks, list):
            for blob in chunks:
                if isinstance(blob, dict):
                    self._on_blob(blob)
        text = fields.get("text")
        if isinstance(text, str) and text:
            self._log.texts_in.append(text)
            self._conv.state.transcript.append(("user", text))
            self._conv.state.context_text_tokens += max(1, len(text) // 4)
            self._user_turn_ended(_Trigger("text"), interrupt=True)
        start = fields.get("activity_start")
        end = fields.get("activity_end")
        if (start is not None or end is not None) and not self._info.manual_activity:
            raise ProtocolError(
                1007,
                f"{INVALID_ARGUMENT} activityStart/activityEnd require automatic activity "
                "detection to be disabled.",
            )
        if start is not None:
            self._log.speech_started_at.append(time.monotonic())
            self._barge_in()
        if end is not None:
            self._log.speech_ended_at.append(time.monotonic())
            self._user_turn_ended(_Trigger("activity"), interrupt=False)
        if fields.get("audio_stream_end") and self._vad.flush():
            self._log.speech_ended_at.append(time.monotonic())
            self._user_turn_ended(_Trigger("speech"), interrupt=False)

    def _on_blob(self, blob: dict[str, Any]) -> None:
        fields = snake_keys(blob)
        rate = parse_pcm_mime(fields.get("mime_type"))
        if rate is None:
            return  # an image/video frame: accepted, not interpreted
        # Audio already on the wire when the toolCall went out cannot be helped by any
        # client; only audio sent after it had time to arrive (a round trip) is a violation.
        now = time.monotonic()
        late = [
            p
            for p in self._pending.values()
            if p.blocking and now - p.sent_at > self._config.blocking_grace_s
        ]
        if self._config.strict_blocking and late:
            names = ", ".join(sorted({p.name for p in self._pending.values() if p.blocking}))
            raise ProtocolError(
                1008,
                f"Policy violation: realtime audio input received while a BLOCKING function "
                f"call is pending ({names}).",
            )
        data = fields.get("data")
        if not isinstance(data, str):
            raise ProtocolError(1007, f"{INVALID_ARGUMENT} Blob data must be a base64 string.")
        pcm = decode_b64(data)
        now = time.monotonic()
        log = self._log
        if self._config.log_audio_frames:
            log.audio_in.append((now, len(pcm)))
        log.audio_in_chunks += 1
        log.audio_in_bytes += len(pcm)
        log.audio_in_rate = rate
        self._audio_in_s += len(pcm) / (2 * rate)
        if self._info.manual_activity:
            return
        events = self._vad.feed(self._native.to_native(pcm, rate), NATIVE_INPUT_RATE)
        if events.started:
            log.speech_started_at.append(now)
        if events.started or events.in_speech:
            self._barge_in()
        if events.ended:
            log.speech_ended_at.append(now)
            self._user_turn_ended(_Trigger("speech"), interrupt=False)

    def _on_client_content(self, body: dict[str, Any]) -> None:
        """Ordered turns. 3.8 (docs): roles `user` and `model` at any point of the session;
        `turnComplete: true` interrupts an active generation and starts the model's turn;
        without it the server waits for more. Earlier families: the same handling (the docs
        only advise against mixing clientContent with realtime input)."""
        complete = bool(body.get("turn_complete"))
        for turn in body.get("turns") or []:
            role = str((turn or {}).get("role") or "user")
            if role not in ("user", "model"):
                raise ProtocolError(
                    1007,
                    f"{INVALID_ARGUMENT} Content role must be 'user' or 'model', not {role!r}.",
                )
            for part in (turn or {}).get("parts") or []:
                text = (part or {}).get("text")
                if isinstance(text, str) and text:
                    self._log.client_turns.append((role, text, complete))
                    if role == "user":
                        self._log.texts_in.append(text)
                    self._conv.state.transcript.append((role, text))
                    self._conv.state.context_text_tokens += max(1, len(text) // 4)
        if complete:
            self._user_turn_ended(_Trigger("text"), interrupt=True)

    def _on_tool_response(self, body: dict[str, Any]) -> None:
        for response in body.get("function_responses") or []:
            if not isinstance(response, dict):
                continue
            self._log.tool_responses.append(response)
            call_id = response.get("id")
            pending = self._pending.pop(call_id, None) if isinstance(call_id, str) else None
            if pending is None:
                self._log.notes.append(f"toolResponse for unknown or cancelled id {call_id!r}")
                continue
            if not pending.answered.done():
                pending.answered.set_result(response)

    # ------------------------------------------------------------------ turn control

    def _user_turn_ended(self, trigger: _Trigger, *, interrupt: bool) -> None:
        if interrupt:
            self._barge_in()
        try:
            self._triggers.put_nowait(trigger)
        except asyncio.QueueFull:
            self._log.notes.append(f"dropped user turn end ({trigger.kind}): queue full")

    def _barge_in(self) -> None:
        """Cancel the running turn (if any): caller activity while the model talks or waits."""
        task, progress = self._turn_task, self._progress
        if task is None or task.done() or progress is None or progress.completing:
            return
        if self._interrupting or not self._info.barge_in:
            return
        self._interrupting = True
        task.cancel()

    def _choose(self, trigger: _Trigger) -> tuple[Turn, int | None]:
        state, script = self._conv.state, self._conv.script
        if trigger.kind == "text" and state.greeting_pending and script.greeting is not None:
            state.greeting_pending = False
            return script.greeting, None
        state.greeting_pending = False
        if state.next_turn < len(script.turns):
            index = state.next_turn
            state.next_turn += 1
            return script.turns[index], index
        return script.fallback or _EMPTY_TURN, None

    async def _conduct(self) -> None:
        state, script = self._conv.state, self._conv.script
        if script.greet_on_connect and script.greeting is not None and state.greeting_pending:
            state.greeting_pending = False
            await self._play(script.greeting, None)
        while True:
            trigger = await self._triggers.get()
            turn, index = self._choose(trigger)
            await self._play(turn, index)

    async def _play(self, turn: Turn, index: int | None) -> None:
        """Run one turn as a cancellable child task; on barge-in, send the interruption."""
        assert self._tg is not None
        progress = _TurnProgress()
        task = self._tg.create_task(self._perform(turn, index, progress), name="gemini-emu-turn")
        self._turn_task, self._progress = task, progress
        try:
            await asyncio.wait([task])
        finally:
            if not task.done():
                task.cancel()
        self._turn_task = self._progress = None
        interrupted, self._interrupting = task.cancelled() and self._interrupting, False
        if interrupted:
            await self._send_interruption(progress)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            raise exc

    async def _perform(self, turn: Turn, index: int | None, progress: _TurnProgress) -> None:
        self._log.turn_started_at.append(time.monotonic())
        if self._info.resumption:
            await self._send(msg.resumption_update(None), "sessionResumptionUpdate")
        if turn.input_transcript:
            self._conv.state.transcript.append(("user", turn.input_transcript))
            heard = {"text": turn.input_transcript, "finished": True}
            await self._send(msg.server_content(inputTranscription=heard), "inputTranscription")
        muted = index is not None and any(
            f.turn_index == index for f in self._conv.script.faults_of("turn_without_audio")
        )
        if muted:
            self._log.notes.append(f"fault: turn {index} without audio")
        symptom = symptom_of(self._conv.script, index)
        steps = tuple(turn.steps)
        if symptom is not None:
            self._log.notes.append(f"fault: turn {index} {symptom.fault.kind}")
            steps = symptom.rewrite(steps)
        for step in () if muted else steps:
            if isinstance(step, Speak):
                await self._speak(step, progress)
            elif isinstance(step, CallTool):
                if await self._call_tool(step, progress) == "SILENT":
                    self._log.notes.append(f"{step.name}: SILENT result, rest of turn skipped")
                    break
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
        if symptom is not None and symptom.ending != "normal":
            await self._end_with_symptom(symptom, progress)
            return
        await self._send(msg.server_content(generationComplete=True), "generationComplete")
        # The real model holds turnComplete until its audio has had time to play out.
        hold = progress.play_end - time.monotonic()
        if hold > 0:
            await asyncio.sleep(hold)
        progress.completing = True
        await self._send(msg.server_content(turnComplete=True), "turnComplete")
        await self._finish_turn(progress)

    async def _speak(self, step: Speak, progress: _TurnProgress) -> None:
        frames = msg.audio_frames(step.pcm, self._config.binary_frames)
        pieces = msg.split_words(step.text, len(frames))
        speed = self._config.burst_speed
        interval = msg.AUDIO_CHUNK_S / speed if speed > 0 else 0.0
        start = time.monotonic()
        remaining = len(step.pcm)
        if not frames:
            progress.spoken.extend(pieces[0])
            for piece in pieces[0]:
                content = msg.server_content(outputTranscription={"text": piece})
                await self._send(content, "outputTranscription")
        for i, frame in enumerate(frames):
            delay = start + i * interval - time.monotonic()
            # Always yield, so the reader sees barge-in even at unlimited burst speed.
            await asyncio.sleep(delay if delay > 0.001 else 0)
            await self._send_frame(frame, "audio")
            now = time.monotonic()
            if progress.first_audio is None:
                progress.first_audio = now
                self._log.turn_audio_first_sent.append(now)
            chunk_s = min(remaining, msg.AUDIO_CHUNK_BYTES) / (2 * 24000)
            remaining -= msg.AUDIO_CHUNK_BYTES
            progress.play_end = max(progress.play_end, now) + chunk_s
            progress.audio_s += chunk_s
            for piece in pieces[i]:
                progress.spoken.append(piece)
                content = msg.server_content(outputTranscription={"text": piece})
                await self._send(content, "outputTranscription")

    async def _end_with_symptom(self, symptom: Symptom, progress: _TurnProgress) -> None:
        """End a turn the broken way its symptom says (see ``symptoms.py``)."""
        if symptom.ending == "phantom":
            progress.completing = True  # from here on a real barge-in cannot cancel it
            await self._send_interruption(progress)
            return
        if symptom.ending == "cut":
            hold = progress.play_end - time.monotonic()
            if hold > 0:
                await asyncio.sleep(hold)
            content = msg.server_content(turnComplete=True)
        else:
            content = msg.server_content(turnComplete=True, turnCompleteReason="RESPONSE_REJECTED")
        progress.completing = True
        await self._send(content, "turnComplete")
        await self._finish_turn(progress)

    async def _call_tool(self, step: CallTool, progress: _TurnProgress) -> str | None:
        """Call a function and wait for its response; returns the scheduling that applies.

        The rest of the turn is the model's reaction to the result. For a NON_BLOCKING call
        whose response asks for `SILENT` it is skipped; `WHEN_IDLE` and `INTERRUPT` both react
        at once here, because the scripted turn has nothing else to say meanwhile. BLOCKING
        calls ignore `scheduling`, and so does Vertex AI (LiveKit warns about it).
        """
        blocking = self._info.tools.get(step.name)
        if blocking is None:
            self._log.notes.append(f"skipped CallTool {step.name!r}: not declared in setup")
            return None
        call_id = f"function-call-{secrets.randbelow(10**19):019d}"
        call = {"id": call_id, "name": step.name, "args": dict(step.args)}
        pending = _PendingCall(
            call_id,
            step.name,
            blocking,
            asyncio.get_running_loop().create_future(),
            time.monotonic(),
        )
        self._pending[call_id] = pending
        progress.pending_ids.append(call_id)
        self._log.tool_calls.append(call)
        await self._send(msg.tool_call([call]), "toolCall")
        if self._info.profile.turn_complete_after_tool_call:
            # 2.5 family: a separate frame (ADK drops a toolCall co-framed with turnComplete).
            await self._send(msg.server_content(turnComplete=True), "turnComplete")
        response = await pending.answered
        progress.pending_ids.remove(call_id)
        if blocking or not self._info.profile.caps.response_scheduling:
            return None
        return str(response.get("scheduling") or "WHEN_IDLE").upper()

    async def _send_interruption(self, progress: _TurnProgress) -> None:
        self._log.interrupted_at.append(time.monotonic())
        await self._send(msg.server_content(interrupted=True), "interrupted")
        if progress.pending_ids:
            for call_id in progress.pending_ids:
                pending = self._pending.pop(call_id, None)
                if pending is not None:
                    pending.answered.cancel()
            cancellation = msg.tool_call_cancellation(progress.pending_ids)
            await self._send(cancellation, "toolCallCancellation")
        await self._send(msg.server_content(turnComplete=True), "turnComplete")
        await self._finish_turn(progress)

    async def _finish_turn(self, progress: _TurnProgress) -> None:
        state = self._conv.state
        if progress.spoken:
            state.transcript.append(("model", "".join(progress.spoken)))
        state.context_audio_tokens += round(self._audio_in_s * TOKENS_PER_AUDIO_S)
        self._audio_in_s = 0.0
        response = round(progress.audio_s * TOKENS_PER_AUDIO_S)
        usage = msg.usage_metadata(
            state.context_text_tokens,
            state.context_audio_tokens,
            response,
            vertex=self._info.profile.provider == "vertex",
            thoughts=THOUGHT_TOKENS_PER_TURN_38
            if self._info.profile.caps.family.startswith("3.8")
            else 0,
        )
        await self._send(usage, "usageMetadata")
        state.context_audio_tokens += response
        if self._info.resumption:
            await self._issue_handle()

    async def _issue_handle(self) -> None:
        if self._pending:
            return  # not resumable while a function call is outstanding
        handle = self._handles.issue(self._conv)
        self._log.handles_issued.append(handle)
        consumed = self._client_messages if self._info.transparent else None
        await self._send(msg.resumption_update(handle, consumed), "sessionResumptionUpdate")

    # ------------------------------------------------------------------ faults

    async def _fire(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.after_s - (time.monotonic() - self._started_at)))
        self._log.notes.append(f"fault: {fault.kind}")
        if fault.kind == "go_away":
            await self._send(msg.go_away(fault.time_left_s), "goAway")
            await asyncio.sleep(fault.time_left_s)
            await self._close(1011, _DEADLINE)
        elif fault.kind == "close":
            if fault.code == 1006:
                self._closing = True
                self._ws.transport.abort()  # no close frame: the client sees 1006
            else:
                await self._close(fault.code, fault.reason)
        elif fault.kind == "stop_pongs":
            self._stop_pongs()
        elif fault.kind == "raw_frame":
            raw = fault.payload
            await self._send_frame(raw.encode() if self._config.binary_frames else raw, "raw")
        elif fault.kind == "oversized":
            await self._send(msg.padded_transcription(fault.size_bytes), "oversized")

    def _stop_pongs(self) -> None:
        """Drop every outgoing Pong frame (websockets answers pings inside its protocol)."""
        protocol = self._ws.protocol
        send_frame = protocol.send_frame

        def send_frame_without_pongs(frame: Frame) -> None:
            if frame.opcode is not OP_PONG:
                send_frame(frame)

        setattr(protocol, "send_frame", send_frame_without_pongs)  # noqa: B010
