"""The turn machine: the call's rules for turns, barge-in, playout gating and stalls.

A sans-I/O object in the manner of h11's ``_state.py``: no asyncio, no clock reads, no
sockets. ``callbridge.bridge.call.BridgedCall`` feeds it what happens (every model event, caller
speech
starting and stopping, a finished line clear, audio played, a watchdog tick), each with the
time it happened, and performs the actions it returns, in order.

Rule 1: every decision about turns lives here. The phase of the agent's turn is a literal
table (:data:`TRANSITIONS`); everything else the rules need (what the current turn has
produced, when the caller stopped, who was nudged for what) is state of :class:`TurnMachine`,
changed only by :meth:`TurnMachine.handle`.

Rule 2: actions are values. The machine never touches audio bytes beyond passing them on,
never awaits and never measures time; the runner resamples, queues, writes and clears.

Adding a rule: add an input event (a frozen dataclass in the "call side" section, then to
:data:`TurnEvent`), the state it needs to :class:`TurnMachine`, its case in ``handle``, and any
new action type to :data:`Action` (the runner's ``match`` then tells mypy what it must do).
Test it in ``tests/core/test_turns.py`` by adding rows, not sockets.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

from callbridge.bridge.events import (
    GenerationComplete,
    Interrupted,
    ModelAudio,
    ModelEvent,
    SessionNotice,
    Speaker,
    ToolCall,
    ToolCallCancelled,
    ToolRunByModelSide,
    Transcript,
    TurnComplete,
    Usage,
)
from callbridge.bridge.warnings import WarningCode

WARN_NOTICES = frozenset({"reconnected", "resume_rejected"})
"""Session notices that mean the model connection failed (planned rotations do not warn)."""


# ── Call-side input events (model events are ``callbridge.bridge.events.ModelEvent``)
# ──────────────


@dataclass(frozen=True, slots=True)
class CallerStarted:
    """The caller started speaking (``CallerActivity`` turned on)."""


@dataclass(frozen=True, slots=True)
class CallerStopped:
    """The caller stopped speaking; the time given with the event is when."""


@dataclass(frozen=True, slots=True)
class ClearDone:
    """The line clear after a barge-in finished: ``error_code`` set if the server refused.

    ``requested_at`` is from the :class:`ClearLine` the clear answered, so overlapping
    barge-ins still time each clear from its own request.
    """

    requested_at: float
    cleared_bytes: int = 0
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Played:
    """``seconds`` of agent audio were written to the call; the server pulls in real time."""

    seconds: float


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """The agent's voice was muted (spy mode) or unmuted."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """The watchdog's beat; ``audio_queued`` is whether agent audio still waits for playout."""

    audio_queued: bool


@dataclass(frozen=True, slots=True)
class CallError:
    """The telephony platform reported an error on the call (it may go on)."""

    error_code: str
    message: str


CallSideEvent = CallerStarted | CallerStopped | ClearDone | Played | AgentAudio | Tick | CallError
TurnEvent = ModelEvent | CallSideEvent
CALL_SIDE = (CallerStarted, CallerStopped, ClearDone, Played, AgentAudio, Tick, CallError)


# ── Actions ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class QueueAudio:
    """Resample this model audio and queue it for the caller."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class FlushAudio:
    """The model's audio for this turn is complete: release the resampler's tail and pad to
    a whole frame (queued only if ``play``; otherwise discarded)."""

    play: bool


@dataclass(frozen=True, slots=True)
class DropAudio:
    """Drop queued agent audio. On a barge-in also reset the resampler and record it."""

    barge_in: bool


@dataclass(frozen=True, slots=True)
class ClearLine:
    """Clear the call's send buffer (off the audio path: it waits for the server).

    ``requested_at`` is the barge-in's time; the clear's :class:`ClearDone` carries it back.
    """

    requested_at: float


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The agent's turn has started (record it; the first one times the first answer)."""


@dataclass(frozen=True, slots=True)
class Nudge:
    """Tell the stalled model to answer now (at most once per caller utterance)."""


@dataclass(frozen=True, slots=True)
class Warn:
    code: WarningCode
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Note:
    """A timeline entry for the call record."""

    event: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cleared:
    """The line was cleared ``took_s`` after the barge-in it answered."""

    cleared_bytes: int
    took_s: float


@dataclass(frozen=True, slots=True)
class RecordCommand:
    command: str
    ok: bool
    error_code: str | None


@dataclass(frozen=True, slots=True)
class Transcribe:
    """One finished line of the transcript."""

    speaker: Speaker
    text: str


@dataclass(frozen=True, slots=True)
class RecordUsage:
    usage: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class SubmitTool:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class CancelTools:
    call_ids: tuple[str, ...]


Action = (
    QueueAudio
    | FlushAudio
    | DropAudio
    | ClearLine
    | TurnStarted
    | Nudge
    | Warn
    | Note
    | Cleared
    | RecordCommand
    | Transcribe
    | RecordUsage
    | SubmitTool
    | CancelTools
)


# ── The phase table ─────────────────────────────────────────────────────────────────────


class Phase(enum.Enum):
    IDLE = "idle"
    """Between agent turns."""
    SPEAKING = "speaking"
    """The agent's turn started (its first audio arrived) and has not ended."""
    DISCARDING = "discarding"
    """The caller barged in: the rest of this turn's audio is dropped until it ends."""


IDLE, SPEAKING, DISCARDING = Phase.IDLE, Phase.SPEAKING, Phase.DISCARDING

TRANSITIONS: Mapping[tuple[Phase, type[TurnEvent]], Phase] = {
    (IDLE, ModelAudio): SPEAKING,
    (IDLE, Interrupted): DISCARDING,
    (IDLE, TurnComplete): IDLE,
    (SPEAKING, Interrupted): DISCARDING,
    (SPEAKING, TurnComplete): IDLE,
    (DISCARDING, Interrupted): DISCARDING,
    (DISCARDING, TurnComplete): IDLE,
}
"""Phase changes; an event not listed for a phase leaves the phase as it is."""


_NEVER = object()


class TurnMachine:
    """Turn, barge-in and stall rules of one call (see the module docstring)."""

    def __init__(
        self, *, now: float, model_turn_stall_s: float, slow_model_response_s: float
    ) -> None:
        self.stall_s = model_turn_stall_s
        self.slow_s = slow_model_response_s
        self.phase = IDLE
        self.agent_audio_enabled = True
        self.interrupted_at: float | None = None
        self.caller_speaking = False
        self.caller_stopped_at: float | None = None
        # A stall is measured from the call's start until the model first speaks.
        self._last_model_activity = now
        self._playout_until = now
        self._turn_had_content = False
        self._tool_in_turn = False
        self._nudge_wanted = False
        self._nudged_for: object = _NEVER
        self._handled_stop: float | None = None
        self._agent_text: list[str] = []
        self._caller_text: list[str] = []

    @property
    def turn_active(self) -> bool:
        return self.phase is SPEAKING

    def handle(self, event: TurnEvent, now: float) -> list[Action]:
        """Apply one event that happened at ``now``; returns the actions to perform, in order."""
        actions = self._actions(event, now)
        self.phase = TRANSITIONS.get((self.phase, type(event)), self.phase)
        return actions

    def refuse_inject(self, *, audio_queued: bool) -> Warn | None:
        """Why an injected agent message must wait (someone is speaking), or None."""
        if self.caller_speaking:
            return Warn(
                WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH,
                "injected message refused: the caller is speaking",
            )
        if self.turn_active or audio_queued:
            return Warn(
                WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH,
                "injected message refused: the agent is speaking",
            )
        return None

    def flush_transcripts(self) -> list[Action]:
        """Pending transcript text as finished lines (the call is ending)."""
        return [*self._flush_caller(), *self._flush_agent()]

    def _actions(self, event: TurnEvent, now: float) -> list[Action]:
        if isinstance(event, CALL_SIDE):
            return self._call_side(event, now)
        self._last_model_activity = now
        match event:
            case ModelAudio(pcm=pcm):
                return self._model_audio(pcm)
            case Interrupted():
                self.interrupted_at = now
                self._playout_until = now
                return [
                    DropAudio(barge_in=True),
                    *self._flush_agent(" [interrupted]"),
                    ClearLine(now),
                ]
            case GenerationComplete():
                return [] if self.phase is DISCARDING else [FlushAudio(self.agent_audio_enabled)]
            case TurnComplete():
                return self._turn_complete()
            case Transcript(speaker=speaker, text=text, finished=finished):
                (self._agent_text if speaker == "agent" else self._caller_text).append(text)
                # Real models finish the caller's transcript late; keep lines in order.
                return self._flush_caller() if finished and speaker == "caller" else []
            case ToolCall(name=name):
                self._turn_had_content = self._tool_in_turn = True
                note = Note("tool_call", {"name": name})
                return [note, *self.flush_transcripts(), SubmitTool(event)]
            case ToolRunByModelSide(name=name):
                self._turn_had_content = self._tool_in_turn = True
                return [Note("tool_call", {"name": name, "run_by": "model_side"})]
            case ToolCallCancelled(call_ids=ids):
                return [Note("tool_call_cancelled", {"ids": list(ids)}), CancelTools(ids)]
            case Usage():
                usage = {
                    "prompt_tokens": event.prompt_tokens,
                    "response_tokens": event.response_tokens,
                    "total_tokens": event.total_tokens,
                    **{f"tokens_{k.lower()}": v for k, v in event.by_modality.items()},
                }
                return [RecordUsage(usage)]
            case SessionNotice(kind=kind, detail=detail, close_code=code):
                note = Note("model_session", {"kind": kind, "detail": detail, "close_code": code})
                if kind not in WARN_NOTICES:
                    return [note]
                details = {"close_code": code, "action": kind}
                return [note, Warn(WarningCode.MODEL_REQUEST_FAILED, detail, details)]
            case _:
                assert_never(event)

    def _call_side(self, event: CallSideEvent, now: float) -> list[Action]:
        match event:
            case CallerStarted():
                self.caller_speaking = True
                return []
            case CallerStopped():
                self.caller_speaking = False
                self.caller_stopped_at = now
                return [Note("caller_stopped_speaking")]
            case ClearDone(requested_at=at, cleared_bytes=cleared, error_code=None):
                return [Cleared(cleared, now - at)]
            case ClearDone(error_code=code):
                message = (
                    f"agent.interrupt failed with {code}; the caller may hear up to the "
                    "server's prefetch of stale audio"
                )
                details = {"command": "agent.interrupt", "error_code": code}
                return [
                    Warn(WarningCode.CALL_COMMAND_FAILED, message, details),
                    RecordCommand("agent.interrupt", False, code),
                ]
            case Played(seconds=seconds):
                self._playout_until = max(now, self._playout_until) + seconds
                return []
            case AgentAudio(enabled=enabled):
                self.agent_audio_enabled = enabled
                drop: list[Action] = [] if enabled else [DropAudio(barge_in=False)]
                return [*drop, Note("agent_audio", {"enabled": enabled})]
            case Tick(audio_queued=queued):
                return self._tick(now, queued)
            case CallError(error_code=code, message=message):
                return [
                    Note("telephony_error", {"error_code": code, "message": message}),
                    Warn(
                        WarningCode.TELEPHONY_CALL_ERROR,
                        f"the telephony platform reported {code}: {message}",
                        {"error_code": code},
                    ),
                ]
            case _:
                assert_never(event)

    def _model_audio(self, pcm: bytes) -> list[Action]:
        if self.phase is DISCARDING:
            return []
        actions: list[Action] = []
        if self.phase is IDLE:
            actions += [*self._flush_caller(), TurnStarted()]
        self._turn_had_content = True
        if self.agent_audio_enabled:
            actions.append(QueueAudio(pcm))
        return actions

    def _turn_complete(self) -> list[Action]:
        actions: list[Action] = []
        if self.phase is not DISCARDING:
            if not self._turn_had_content:
                message = "model turn ended without any audio; nudging"
                actions.append(Warn(WarningCode.MODEL_TURN_INCOMPLETE, message))
                self._nudge_wanted = True
            actions.append(FlushAudio(self.agent_audio_enabled))
        # The turn after a tool call may be empty (2.5 models end the tool call's turn, then
        # answer the result with nothing to add, e.g. after end_call): not a stall.
        self._turn_had_content = self._tool_in_turn
        self._tool_in_turn = False
        if self.phase is SPEAKING:
            actions.append(Note("agent_turn_end"))
        return [*actions, *self._flush_agent()]

    def _tick(self, now: float, audio_queued: bool) -> list[Action]:
        """Slow answers and stalled turns: warn, and nudge the model once per stall.

        - the caller stopped speaking and no model turn started (``SLOW_MODEL_RESPONSE``;
          after a barge-in this is a stall: ``MODEL_TURN_INCOMPLETE`` and a nudge);
        - a turn started but nothing came for the stall threshold after its audio played;
        - a turn ended without any audio (flagged by :meth:`_turn_complete`).
        """
        actions: list[Action] = []
        stopped = self.caller_stopped_at
        if (
            stopped is not None
            and stopped != self._handled_stop
            and not self.caller_speaking
            and self.phase is not SPEAKING
            and self._last_model_activity < stopped
        ):
            waited = now - stopped
            after_barge_in = self.interrupted_at is not None and self.interrupted_at < stopped
            if after_barge_in and waited >= self.stall_s:
                self._handled_stop = stopped
                message = f"no answer {waited:.1f} s after the caller barged in; nudging the model"
                actions.append(Warn(WarningCode.MODEL_TURN_INCOMPLETE, message))
                self._nudge_wanted = True
            elif not after_barge_in and waited >= self.slow_s:
                self._handled_stop = stopped
                message = f"no model audio {waited:.1f} s after the caller stopped speaking"
                actions.append(Warn(WarningCode.SLOW_MODEL_RESPONSE, message))
        quiet_since = max(self._last_model_activity, self._playout_until)
        if self.phase is SPEAKING and not audio_queued and now - quiet_since >= self.stall_s:
            self._last_model_activity = now
            message = f"model turn stalled: nothing for {self.stall_s:.1f} s; nudging"
            actions.append(Warn(WarningCode.MODEL_TURN_INCOMPLETE, message))
            self._nudge_wanted = True
        if self._nudge_wanted:
            self._nudge_wanted = False
            # One nudge per caller utterance: never a nudge loop.
            if self._nudged_for != stopped:
                self._nudged_for = stopped
                actions.append(Nudge())
        return actions

    def _flush_caller(self) -> list[Action]:
        if not self._caller_text:
            return []
        text = "".join(self._caller_text).strip()
        self._caller_text.clear()
        return [Transcribe("caller", text)]

    def _flush_agent(self, suffix: str = "") -> list[Action]:
        if not self._agent_text:
            return []
        text = "".join(self._agent_text).strip() + suffix
        self._agent_text.clear()
        return [Transcribe("agent", text)]
