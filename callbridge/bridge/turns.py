"""The turn machine: the call's rules for turns, barge-in, playout gating and stalls.

A sans-I/O object in the manner of h11's ``_state.py``: no asyncio, no clock reads, no
sockets. ``callbridge.bridge.call.BridgedCall`` feeds it what happens (every model event, caller
speech
starting and stopping, a finished line clear, audio played, a watchdog tick), each with the
time it happened, and performs the actions it returns, in order.

Rule 1: every decision about turns lives here. The phase of the agent's turn is a literal
table (:data:`TRANSITIONS`); everything else the rules need (what the current turn has
produced, when the caller stopped, who was nudged for what) is state of :class:`TurnMachine`,
changed only by :meth:`TurnMachine.handle`. The machine also owns the pure detectors of what
the caller hears: :class:`~callbridge.bridge.line_watch.LineWatch` (silent failures of a model
turn, each with one bounded recovery) and the interrupted turn's words on its audio timeline
(:mod:`callbridge.bridge.heard`: what the caller really heard of it, and the correction the
model is told).

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
from typing import Any, Final, assert_never

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
from callbridge.bridge.heard import Role, Spoken, Telling, TurnText, correction, heard
from callbridge.bridge.line_watch import NUDGES, Finding, LineWatch, Recovery
from callbridge.bridge.warnings import WarningCode

WARN_NOTICES = frozenset({"reconnected", "resume_rejected"})
"""Session notices that mean the model connection failed (planned rotations do not warn)."""
NUDGE: Final = "(The caller is waiting for your spoken answer. Please answer now.)"
"""What a stalled model is told."""


# ── Call-side input events (model events are ``callbridge.bridge.events.ModelEvent``)
# ──────────────


@dataclass(frozen=True, slots=True)
class CallerStarted:
    """The caller started speaking (``CallerActivity`` turned on)."""


@dataclass(frozen=True, slots=True)
class CallerStopped:
    """The caller stopped speaking; the time given with the event is when.

    ``silence_s``: how long after that the detector declared it (its hangover), so a trace
    can show when speech really ended."""

    silence_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CallerVoiced:
    """A caller frame above the speech threshold arrived (even a blip too short to count as
    speaking): a model ``interrupted`` soon after it is a real barge-in, not a phantom."""


@dataclass(frozen=True, slots=True)
class ToldModel:
    """The bridge sent the model a text (greeting, nudge, injection, correction): a model
    ``interrupted`` soon after it is the bridge's own doing, not a phantom."""


@dataclass(frozen=True, slots=True)
class ClearDone:
    """The line clear after a barge-in finished: ``error_code`` set if the server refused.

    ``requested_at`` is from the :class:`ClearLine` the clear answered, so overlapping
    barge-ins still time each clear from its own request. ``heard_s`` is how much of the
    interrupted turn's audio the caller heard: what was written to the call before the
    barge-in, less what the clear dropped unplayed (all of it when the clear failed).
    """

    requested_at: float
    cleared_bytes: int = 0
    error_code: str | None = None
    heard_s: float = 0.0


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


CallSideEvent = (
    CallerStarted
    | CallerStopped
    | CallerVoiced
    | ToldModel
    | ClearDone
    | Played
    | AgentAudio
    | Tick
    | CallError
)
TurnEvent = ModelEvent | CallSideEvent
CALL_SIDE = (
    CallerStarted,
    CallerStopped,
    CallerVoiced,
    ToldModel,
    ClearDone,
    Played,
    AgentAudio,
    Tick,
    CallError,
)


@dataclass(frozen=True, slots=True)
class TurnCut:
    """The machine's own event, never fed from outside: a silent failure
    (``AGENT_AUDIO_TONE``) cut the agent's turn, which is then discarded like a barged-in one.
    :meth:`TurnMachine.handle` applies its row of :data:`TRANSITIONS` after the event that
    found it."""


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
    """Drop queued agent audio. On a barge-in also reset the resampler and record it, with
    ``buffered_s``: how much of the audio written to the call was still in its send buffer by
    the machine's real-time estimate (the line knows what of it was this turn's, so it records
    how much of the interrupted turn had played: this turn's written audio less this); on a
    ``cut`` (a silent failure ended the turn) reset it the same way, not counted as a
    barge-in."""

    barge_in: bool
    cut: bool = False
    buffered_s: float = 0.0


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
class TurnEnded:
    """The agent's turn (one that played, not a barged-in one) has ended: record it."""


@dataclass(frozen=True, slots=True)
class TellModel:
    """Send the model a text: with ``role`` unset a user text turn it answers (a nudge, a
    recovery); with ``role`` set a turn added to its context without ending the user's turn
    (the correction after a barge-in). ``nudge``: count it in the call's nudges."""

    text: str
    role: Role | None = None
    nudge: bool = False


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
    """One finished line of the transcript; ``data`` goes with it (an interrupted agent line:
    ``heard`` and ``generated``)."""

    speaker: Speaker
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


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
    | TurnEnded
    | TellModel
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

TRANSITIONS: Mapping[tuple[Phase, type[TurnEvent | TurnCut]], Phase] = {
    (IDLE, ModelAudio): SPEAKING,
    (IDLE, Interrupted): DISCARDING,
    (IDLE, TurnComplete): IDLE,
    (SPEAKING, Interrupted): DISCARDING,
    (SPEAKING, TurnComplete): IDLE,
    (DISCARDING, Interrupted): DISCARDING,
    (DISCARDING, TurnComplete): IDLE,
    (SPEAKING, TurnCut): DISCARDING,
}
"""Phase changes; an event not listed for a phase leaves the phase as it is."""


_NEVER = object()


class TurnMachine:
    """Turn, barge-in and stall rules of one call (see the module docstring)."""

    def __init__(
        self,
        *,
        now: float,
        model_turn_stall_s: float,
        slow_model_response_s: float,
        line_watch: LineWatch | None = None,
        truthful: Telling = "off",
        model_rate: int = 24000,
    ) -> None:
        """``line_watch``: the silent-failure detector (``None``: none watched);
        ``truthful``: how the model is told what the caller heard of an interrupted turn
        (:func:`callbridge.bridge.heard.telling`); ``model_rate``: the model's audio rate."""
        self.stall_s = model_turn_stall_s
        self.slow_s = slow_model_response_s
        self.phase = IDLE
        self.agent_audio_enabled = True
        self.interrupted_at: float | None = None
        self.caller_speaking = False
        self.caller_stopped_at: float | None = None
        self.line_watch = line_watch
        self._truthful = truthful
        self._model_bytes_per_s = model_rate * 2
        self._caller_voiced_at = float("-inf")
        self._told_model_at = float("-inf")
        # A silent failure's recovery waits for its time: (what, due, agent chunks then).
        self._recovery: tuple[Recovery, float, int] | None = None
        self._cut = False
        # The current turn's words on its audio timeline, and an interrupted turn's words
        # waiting for its clear to say how much of it was heard.
        self._spoken = TurnText()
        self._pending_heard: Spoken | None = None
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
        if self._cut:  # a finding cut the turn while handling the event
            self._cut = False
            self.phase = TRANSITIONS.get((self.phase, TurnCut), self.phase)
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
        unheard: list[Action] = []
        if self._pending_heard is not None and self._pending_heard.generated:
            # The call ended before the clear said how much of it was heard.
            unheard = [Transcribe("agent", self._pending_heard.generated + " [interrupted]")]
        self._pending_heard = None
        return [*self._flush_caller(), *unheard, *self._flush_agent()]

    def _actions(self, event: TurnEvent, now: float) -> list[Action]:
        if isinstance(event, CALL_SIDE):
            return self._call_side(event, now)
        self._last_model_activity = now
        match event:
            case ModelAudio(pcm=pcm):
                return self._model_audio(pcm, now)
            case Interrupted():
                return self._interrupted(now)
            case GenerationComplete():
                if self.line_watch is not None:
                    self.line_watch.generation_complete()
                return [] if self.phase is DISCARDING else [FlushAudio(self.agent_audio_enabled)]
            case TurnComplete(reason=reason):
                found: list[Action] = []
                if self.line_watch is not None:
                    found = self._finding(self.line_watch.turn_complete(reason), now)
                return [*found, *self._turn_complete(silent_failure_handled=bool(found))]
            case Transcript(speaker=speaker, text=text, finished=finished):
                (self._agent_text if speaker == "agent" else self._caller_text).append(text)
                if speaker == "agent":
                    self._spoken.text(text)
                    if self.line_watch is not None:
                        self.line_watch.agent_text(text)
                # Real models finish the caller's transcript late; keep lines in order.
                return self._flush_caller() if finished and speaker == "caller" else []
            case ToolCall(name=name):
                self._turn_had_content = self._tool_in_turn = True
                if self.line_watch is not None:
                    self.line_watch.tool_call()
                note = Note("tool_call", {"name": name})
                return [note, *self._flush_caller(), *self._flush_agent(), SubmitTool(event)]
            case ToolRunByModelSide(name=name):
                self._turn_had_content = self._tool_in_turn = True
                if self.line_watch is not None:
                    self.line_watch.tool_call()
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
                facts = {"kind": kind, "detail": detail, "close_code": code, **event.facts}
                note = Note("model_session", facts)
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
            case CallerStopped(silence_s=silence):
                self.caller_speaking = False
                self.caller_stopped_at = now
                return [Note("caller_stopped_speaking", {"silence_ms": round(silence * 1000)})]
            case CallerVoiced():
                self._caller_voiced_at = now
                return []
            case ToldModel():
                self._told_model_at = now
                return []
            case ClearDone(requested_at=at, cleared_bytes=cleared, error_code=None, heard_s=h):
                return [Cleared(cleared, now - at), *self._report_heard(h)]
            case ClearDone(error_code=code, heard_s=h):
                message = (
                    f"agent.interrupt failed with {code}; the caller may hear up to the "
                    "server's prefetch of stale audio"
                )
                details = {"command": "agent.interrupt", "error_code": code}
                return [
                    Warn(WarningCode.CALL_COMMAND_FAILED, message, details),
                    RecordCommand("agent.interrupt", False, code),
                    *self._report_heard(h),
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

    def _model_audio(self, pcm: bytes, now: float) -> list[Action]:
        if self.phase is DISCARDING:
            return []
        actions: list[Action] = []
        if self.phase is IDLE:
            actions += [*self._flush_caller(), TurnStarted()]
        self._turn_had_content = True
        self._spoken.audio(len(pcm) / self._model_bytes_per_s)
        if self.line_watch is not None:
            actions += self._finding(self.line_watch.agent_audio(pcm), now)
            if self._cut:
                return actions  # the finding cut this turn's audio
        if self.agent_audio_enabled:
            actions.append(QueueAudio(pcm))
        return actions

    def _interrupted(self, now: float) -> list[Action]:
        """Barge-in: drop unplayed audio now; the line clear runs beside the audio path."""
        found: list[Action] = []
        if self.line_watch is not None:
            since_caller, since_told = now - self._caller_voiced_at, now - self._told_model_at
            found = self._finding(self.line_watch.interrupted(since_caller, since_told), now)
        self.interrupted_at = now
        buffered = max(0.0, self._playout_until - now)
        self._playout_until = now
        spoken = self._spoken.take()
        if self._truthful == "off":
            line = self._flush_agent(" [interrupted]")
        else:  # the line is written once the clear says how much was heard
            line = []
            self._agent_text.clear()
            self._pending_heard = spoken
        return [*found, DropAudio(barge_in=True, buffered_s=buffered), *line, ClearLine(now)]

    def _report_heard(self, heard_s: float) -> list[Action]:
        """The interrupted turn's line as the caller heard it, and the model's correction."""
        if self._pending_heard is None:
            return []
        turn = heard(self._pending_heard, heard_s)
        self._pending_heard = None
        words = {"heard": turn.heard, "generated": turn.generated}
        actions: list[Action] = [
            Transcribe("agent", turn.heard + " [interrupted]", words),
            Note(
                "barge_in_heard",
                {
                    **words,
                    "heard_s": round(turn.heard_s, 3),
                    "generated_s": round(turn.generated_s, 3),
                },
            ),
        ]
        fix = correction(self._truthful, turn)
        if fix is not None:
            role, text = fix
            actions.append(TellModel(text, role=role))
        return actions

    def _finding(self, finding: Finding | None, now: float) -> list[Action]:
        """A silent failure: warn, cut the turn if its recovery says so, schedule the recovery."""
        if finding is None:
            return []
        actions: list[Action] = [
            Warn(finding.code, finding.description, {"recovery": finding.recovery}),
            Note("silent_failure", {"code": finding.code.value, "recovery": finding.recovery}),
        ]
        if finding.recovery == "cut_and_repeat":
            self._cut = True
            self._playout_until = now
            actions += [DropAudio(barge_in=False, cut=True), ClearLine(now)]
        if finding.recovery is not None and self.line_watch is not None:
            chunks = self.line_watch.audio_chunks
            self._recovery = (finding.recovery, now + finding.after_s, chunks)
        return actions

    def _due_recovery(self, now: float) -> list[Action]:
        """A pending recovery once it is due; a "continue" is dropped if the model spoke
        again meanwhile (it recovered by itself)."""
        if self._recovery is None or self.line_watch is None:
            return []
        what, due, chunks_then = self._recovery
        if now < due:
            return []
        self._recovery = None
        if what == "continue" and self.line_watch.audio_chunks != chunks_then:
            return []
        return [Note("model_recovery", {"recovery": what}), TellModel(NUDGES[what], nudge=True)]

    def _turn_complete(self, *, silent_failure_handled: bool = False) -> list[Action]:
        actions: list[Action] = []
        if self.phase is not DISCARDING:
            if not self._turn_had_content and not silent_failure_handled:
                message = "model turn ended without any audio; nudging"
                actions.append(Warn(WarningCode.MODEL_TURN_INCOMPLETE, message))
                self._nudge_wanted = True
            actions.append(FlushAudio(self.agent_audio_enabled))
        # The turn after a tool call may be empty (2.5 models end the tool call's turn, then
        # answer the result with nothing to add, e.g. after end_call): not a stall.
        self._turn_had_content = self._tool_in_turn
        self._tool_in_turn = False
        if self.phase is SPEAKING:
            actions.append(TurnEnded())
        self._spoken.take()
        return [*actions, *self._flush_agent()]

    def _tick(self, now: float, audio_queued: bool) -> list[Action]:
        """Slow answers and stalled turns: warn, and nudge the model once per stall.

        - the caller stopped speaking and no model turn started (``SLOW_MODEL_RESPONSE``;
          after a barge-in this is a stall: ``MODEL_TURN_INCOMPLETE`` and a nudge);
        - a turn started but nothing came for the stall threshold after its audio played;
        - a turn ended without any audio (flagged by :meth:`_turn_complete`);
        - a silent failure's recovery is due (scheduled by :meth:`_finding`).
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
        actions += self._due_recovery(now)
        if self._nudge_wanted:
            self._nudge_wanted = False
            # One nudge per caller utterance: never a nudge loop.
            if self._nudged_for != stopped:
                self._nudged_for = stopped
                actions += [Note("model_nudged"), TellModel(NUDGE, nudge=True)]
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
