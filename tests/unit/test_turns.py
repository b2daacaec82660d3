"""The turn machine, row by row: events in (each with its time), actions and phase out.

No event loop, no sockets, no clock: each row is a script of ``(time, event)`` and the actions
the machine must return for its last event. The edge cases come from what the end-to-end
suites found (``tests/e2e/test_barge_in.py``, ``tests/faults/test_stalls.py``,
``tests/warnings/test_codes_model.py``, ``tests/control/test_transfer.py``): stale audio after
a barge-in, an empty turn after a tool call, a stall measured from the end of playout, one
nudge per caller utterance.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from callbridge.bridge.events import (
    GenerationComplete,
    Interrupted,
    ModelAudio,
    SessionNotice,
    ToolCall,
    ToolCallCancelled,
    ToolRunByModelSide,
    Transcript,
    TurnComplete,
    Usage,
)
from callbridge.bridge.heard import Telling
from callbridge.bridge.line_watch import NUDGES, LineWatch, WatchSettings
from callbridge.bridge.turns import (
    DISCARDING,
    IDLE,
    NUDGE,
    SPEAKING,
    TRANSITIONS,
    Action,
    AgentAudio,
    CallerStarted,
    CallerStopped,
    CallerVoiced,
    CancelTools,
    ClearDone,
    Cleared,
    ClearLine,
    DropAudio,
    FlushAudio,
    Note,
    Phase,
    Played,
    QueueAudio,
    RecordCommand,
    RecordUsage,
    SubmitTool,
    TellModel,
    Tick,
    ToldModel,
    Transcribe,
    TurnEnded,
    TurnEvent,
    TurnMachine,
    TurnStarted,
    Warn,
)
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.voices import load_phrase

STALL_S = 2.0
SLOW_S = 3.0
PCM = b"\x01\x00" * 160
TOOL = ToolCall("c1", "lookup", {"order": "42"})
QUIET = Tick(audio_queued=False)
QUEUED = Tick(audio_queued=True)
NUDGED = [Note("model_nudged"), TellModel(NUDGE, nudge=True)]
"""The one nudge to a stalled model: on the record, counted, and sent."""

Script = Sequence[tuple[float, TurnEvent]]


def machine() -> TurnMachine:
    return TurnMachine(now=0.0, model_turn_stall_s=STALL_S, slow_model_response_s=SLOW_S)


def play(script: Script, m: TurnMachine | None = None) -> tuple[TurnMachine, list[Action]]:
    """Feed the script; returns the machine and the actions of the last event."""
    m = m or machine()
    actions: list[Action] = []
    for now, event in script:
        actions = m.handle(event, now)
    return m, actions


def codes(actions: Sequence[Action]) -> list[object]:
    """Actions with warnings reduced to their code (messages are for people)."""
    return [a.code if isinstance(a, Warn) else a for a in actions]


SPEAKING_AT_1: Script = [(1.0, ModelAudio(PCM))]
BARGED_IN: Script = [*SPEAKING_AT_1, (1.5, Interrupted())]
CALLER_ASKED: Script = [(1.0, CallerStarted()), (2.0, CallerStopped())]


@dataclass(frozen=True)
class Row:
    name: str
    script: Script
    actions: Sequence[object]
    phase: Phase


ROWS = [
    # ── Agent audio and turns ───────────────────────────────────────────────────────────
    Row("first audio starts a turn", SPEAKING_AT_1, [TurnStarted(), QueueAudio(PCM)], SPEAKING),
    Row(
        "more audio is only queued",
        [*SPEAKING_AT_1, (1.1, ModelAudio(PCM))],
        [QueueAudio(PCM)],
        SPEAKING,
    ),
    Row(
        "generation complete flushes the resampler tail",
        [*SPEAKING_AT_1, (2.0, GenerationComplete())],
        [FlushAudio(play=True)],
        SPEAKING,
    ),
    Row(
        "turn complete flushes and ends the turn",
        [*SPEAKING_AT_1, (2.0, TurnComplete())],
        [FlushAudio(play=True), TurnEnded()],
        IDLE,
    ),
    Row(
        "the caller's line is written before the agent's turn starts",
        [(0.5, Transcript("caller", "Is it shipped?")), (1.0, ModelAudio(PCM))],
        [Transcribe("caller", "Is it shipped?"), TurnStarted(), QueueAudio(PCM)],
        SPEAKING,
    ),
    Row(
        "the agent's line is written when its turn ends",
        [
            *SPEAKING_AT_1,
            (1.2, Transcript("agent", "Yes, ")),
            (1.3, Transcript("agent", "it is.")),
            (2.0, TurnComplete()),
        ],
        [FlushAudio(play=True), TurnEnded(), Transcribe("agent", "Yes, it is.")],
        IDLE,
    ),
    Row(
        "a finished caller transcript is written at once",
        [(0.5, Transcript("caller", "Hello")), (0.6, Transcript("caller", "?", finished=True))],
        [Transcribe("caller", "Hello?")],
        IDLE,
    ),
    # ── Barge-in ────────────────────────────────────────────────────────────────────────
    Row(
        "barge-in drops queued audio and clears the line",
        BARGED_IN,
        [DropAudio(barge_in=True), ClearLine(requested_at=1.5)],
        DISCARDING,
    ),
    Row(
        "barge-in marks the agent's unfinished line",
        [*SPEAKING_AT_1, (1.2, Transcript("agent", "Your refund")), (1.5, Interrupted())],
        [
            DropAudio(barge_in=True),
            Transcribe("agent", "Your refund [interrupted]"),
            ClearLine(1.5),
        ],
        DISCARDING,
    ),
    Row(
        "audio after a barge-in is stale until the turn ends",
        [*BARGED_IN, (1.6, ModelAudio(PCM))],
        [],
        DISCARDING,
    ),
    Row(
        "no tail is flushed from a barged-in turn",
        [*BARGED_IN, (1.6, GenerationComplete())],
        [],
        DISCARDING,
    ),
    Row(
        "the barged-in turn ends without a flush, a turn-end note or a stall warning",
        [*BARGED_IN, (1.7, TurnComplete())],
        [],
        IDLE,
    ),
    Row(
        "the next turn plays again",
        [*BARGED_IN, (1.7, TurnComplete()), (3.0, ModelAudio(PCM))],
        [TurnStarted(), QueueAudio(PCM)],
        SPEAKING,
    ),
    Row(
        "a second barge-in clears again",
        [*BARGED_IN, (1.8, Interrupted())],
        [DropAudio(barge_in=True), ClearLine(1.8)],
        DISCARDING,
    ),
    Row(
        "a barge-in between turns still clears the line",
        [(1.0, Interrupted())],
        [DropAudio(barge_in=True), ClearLine(1.0)],
        DISCARDING,
    ),
    Row(
        "the clear is timed from its own barge-in",
        [*BARGED_IN, (1.8, ClearDone(requested_at=1.5, cleared_bytes=640))],
        [Cleared(640, pytest.approx(0.3))],
        DISCARDING,
    ),
    Row(
        "a refused clear is a warning and a failed command, never fatal",
        [*BARGED_IN, (1.8, ClearDone(requested_at=1.5, error_code="TIMEOUT"))],
        [WarningCode.CALL_COMMAND_FAILED, RecordCommand("agent.interrupt", False, "TIMEOUT")],
        DISCARDING,
    ),
    # ── Agent muted (spy) ───────────────────────────────────────────────────────────────
    Row(
        "muting drops what is queued",
        [*SPEAKING_AT_1, (1.2, AgentAudio(enabled=False))],
        [DropAudio(barge_in=False), Note("agent_audio", {"enabled": False})],
        SPEAKING,
    ),
    Row(
        "a muted agent's turn still starts but nothing is queued",
        [(0.5, AgentAudio(enabled=False)), (1.0, ModelAudio(PCM))],
        [TurnStarted()],
        SPEAKING,
    ),
    Row(
        "a muted agent's tail is flushed but not played",
        [(0.5, AgentAudio(enabled=False)), (1.0, ModelAudio(PCM)), (2.0, TurnComplete())],
        [FlushAudio(play=False), TurnEnded()],
        IDLE,
    ),
    Row(
        "unmuting plays the next audio",
        [(0.5, AgentAudio(False)), (0.6, AgentAudio(True)), (1.0, ModelAudio(PCM))],
        [TurnStarted(), QueueAudio(PCM)],
        SPEAKING,
    ),
    # ── Tools ───────────────────────────────────────────────────────────────────────────
    Row(
        "a tool call is noted, flushes transcripts and is submitted",
        [(0.5, Transcript("caller", "Where is 42?")), (1.0, TOOL)],
        [
            Note("tool_call", {"name": "lookup"}),
            Transcribe("caller", "Where is 42?"),
            SubmitTool(TOOL),
        ],
        IDLE,
    ),
    Row(
        "a tool run by the model side is only noted",
        [(1.0, ToolRunByModelSide("c1", "lookup"))],
        [Note("tool_call", {"name": "lookup", "run_by": "model_side"})],
        IDLE,
    ),
    Row(
        "a cancellation reaches the dispatcher",
        [(1.0, ToolCallCancelled(("c1", "c2")))],
        [Note("tool_call_cancelled", {"ids": ["c1", "c2"]}), CancelTools(("c1", "c2"))],
        IDLE,
    ),
    Row(
        "a turn with only a tool call is not empty",
        [(1.0, TOOL), (1.1, TurnComplete())],
        [FlushAudio(play=True)],
        IDLE,
    ),
    Row(
        "the empty turn answering a tool result is not a stall (2.5 after end_call)",
        [(1.0, TOOL), (1.1, TurnComplete()), (2.0, TurnComplete())],
        [FlushAudio(play=True)],
        IDLE,
    ),
    Row(
        "the turn after that must speak again",
        [(1.0, TOOL), (1.1, TurnComplete()), (2.0, TurnComplete()), (3.0, TurnComplete())],
        [WarningCode.MODEL_TURN_INCOMPLETE, FlushAudio(play=True)],
        IDLE,
    ),
    # ── Stalls, slow answers and nudges (ticks) ─────────────────────────────────────────
    Row(
        "an empty turn warns at once and nudges on the next tick",
        [(1.0, TurnComplete())],
        [WarningCode.MODEL_TURN_INCOMPLETE, FlushAudio(play=True)],
        IDLE,
    ),
    Row("the nudge comes with the tick", [(1.0, TurnComplete()), (1.25, QUIET)], NUDGED, IDLE),
    Row(
        "one nudge per caller utterance: never a loop",
        [(1.0, TurnComplete()), (1.25, QUIET), (2.0, TurnComplete()), (2.25, QUIET)],
        [],
        IDLE,
    ),
    Row(
        "a new utterance may be nudged again",
        [
            (1.0, TurnComplete()),
            (1.25, QUIET),
            (2.0, CallerStarted()),
            (3.0, CallerStopped()),
            (3.5, TurnComplete()),
            (3.75, QUIET),
        ],
        NUDGED,
        IDLE,
    ),
    Row(
        "no slow-answer warning before the threshold",
        [*CALLER_ASKED, (2.0 + SLOW_S - 0.1, QUIET)],
        [],
        IDLE,
    ),
    Row(
        "a slow answer warns once the threshold passes (no nudge)",
        [*CALLER_ASKED, (2.0 + SLOW_S, QUIET)],
        [WarningCode.SLOW_MODEL_RESPONSE],
        IDLE,
    ),
    Row(
        "a slow answer warns once per utterance",
        [*CALLER_ASKED, (2.0 + SLOW_S, QUIET), (2.0 + SLOW_S + 1, QUIET)],
        [],
        IDLE,
    ),
    Row(
        "any model event after the caller stopped means it is answering",
        [*CALLER_ASKED, (2.1, Transcript("caller", "Is it")), (2.0 + SLOW_S, QUIET)],
        [],
        IDLE,
    ),
    Row(
        "no slow-answer warning while the caller speaks again",
        [*CALLER_ASKED, (4.0, CallerStarted()), (2.0 + SLOW_S + 1, QUIET)],
        [],
        IDLE,
    ),
    Row(
        "silence after a barge-in is a stall: warn and nudge at the stall threshold",
        [*BARGED_IN, (1.7, TurnComplete()), (2.0, CallerStopped()), (2.0 + STALL_S, QUIET)],
        [WarningCode.MODEL_TURN_INCOMPLETE, *NUDGED],
        IDLE,
    ),
    Row(
        "a turn that goes quiet mid-answer stalls",
        [*SPEAKING_AT_1, (1.0 + STALL_S, QUIET)],
        [WarningCode.MODEL_TURN_INCOMPLETE, *NUDGED],
        SPEAKING,
    ),
    Row(
        "no stall while audio still waits for playout",
        [*SPEAKING_AT_1, (1.0 + STALL_S, QUEUED)],
        [],
        SPEAKING,
    ),
    Row(
        "the stall is measured from the end of playout",
        [*SPEAKING_AT_1, (1.1, Played(seconds=3.0)), (1.0 + STALL_S, QUIET)],
        [],
        SPEAKING,
    ),
    Row(
        "... and fires once playout has been quiet that long",
        [*SPEAKING_AT_1, (1.1, Played(seconds=3.0)), (4.1 + STALL_S, QUIET)],
        [WarningCode.MODEL_TURN_INCOMPLETE, *NUDGED],
        SPEAKING,
    ),
    Row(
        "a stalled turn warns again only after another quiet spell",
        [*SPEAKING_AT_1, (1.0 + STALL_S, QUIET), (1.5 + STALL_S, QUIET)],
        [],
        SPEAKING,
    ),
    Row(
        "a barge-in cuts playout short: the stall counts from it",
        [
            *SPEAKING_AT_1,
            (1.1, Played(9.0)),
            (1.5, Interrupted()),
            (1.6, TurnComplete()),
            (1.7, ModelAudio(PCM)),
            (1.7 + STALL_S, QUIET),
        ],
        [WarningCode.MODEL_TURN_INCOMPLETE, *NUDGED],
        SPEAKING,
    ),
    # ── Records ─────────────────────────────────────────────────────────────────────────
    Row(
        "caller speech ending is on the timeline",
        CALLER_ASKED,
        [Note("caller_stopped_speaking", {"silence_ms": 0})],
        IDLE,
    ),
    Row(
        "...with the detector's hangover, so a trace shows when speech really ended",
        [(1.0, CallerStarted()), (2.5, CallerStopped(silence_s=0.5))],
        [Note("caller_stopped_speaking", {"silence_ms": 500})],
        IDLE,
    ),
    Row(
        "a barge-in tells the line how much written audio is still buffered, by real time",
        [*SPEAKING_AT_1, (1.0, Played(2.0)), (1.0, Played(1.0)), (2.5, Interrupted())],
        [DropAudio(barge_in=True, buffered_s=1.5), ClearLine(2.5)],
        DISCARDING,
    ),
    Row(
        "...the call's buffer, whichever turn wrote it (the line knows what was this turn's)",
        [
            *SPEAKING_AT_1,
            (1.0, Played(2.0)),
            (1.5, TurnComplete()),
            (5.0, ModelAudio(PCM)),
            (5.0, Played(1.0)),
            (5.5, Interrupted()),
        ],
        [DropAudio(barge_in=True, buffered_s=0.5), ClearLine(5.5)],
        DISCARDING,
    ),
    Row(
        "usage is recorded per modality",
        [(1.0, Usage(10, 20, 30, {"AUDIO": 25}))],
        [
            RecordUsage(
                {"prompt_tokens": 10, "response_tokens": 20, "total_tokens": 30, "tokens_audio": 25}
            )
        ],
        IDLE,
    ),
    Row(
        "a planned rotation is only noted",
        [(1.0, SessionNotice("go_away", "rotating"))],
        [Note("model_session", {"kind": "go_away", "detail": "rotating", "close_code": None})],
        IDLE,
    ),
    Row(
        "a reconnect is a warning",
        [(1.0, SessionNotice("reconnected", "1011 ping timeout", 1011))],
        [
            Note(
                "model_session",
                {"kind": "reconnected", "detail": "1011 ping timeout", "close_code": 1011},
            ),
            WarningCode.MODEL_REQUEST_FAILED,
        ],
        IDLE,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_row(row: Row) -> None:
    m, actions = play(row.script)
    assert codes(actions) == list(row.actions)
    assert m.phase is row.phase


def test_reconnect_warning_names_the_action() -> None:
    _, actions = play([(1.0, SessionNotice("resume_rejected", "handle expired", 1008))])
    [warn] = [a for a in actions if isinstance(a, Warn)]
    assert warn.details == {"close_code": 1008, "action": "resume_rejected"}
    assert warn.message == "handle expired"


def test_the_phase_table_is_what_the_machine_does() -> None:
    """Every listed transition happens from its phase, and unlisted events keep the phase."""
    reach: dict[Phase, Script] = {IDLE: [], SPEAKING: SPEAKING_AT_1, DISCARDING: BARGED_IN}
    samples: list[TurnEvent] = [
        ModelAudio(PCM), Interrupted(), GenerationComplete(), TurnComplete(), TOOL,
        Transcript("agent", "x"), CallerStarted(), CallerStopped(), QUIET, Played(0.1),
        AgentAudio(True), ClearDone(1.0), CallerVoiced(), ToldModel(),
    ]  # fmt: skip
    for phase, script in reach.items():
        for event in samples:
            m, _ = play([*script, (9.0, event)])
            expected = TRANSITIONS.get((phase, type(event)), phase)
            assert m.phase is expected, (phase, event)


SEQUENCE_ALPHABET: list[TurnEvent] = [
    ModelAudio(PCM),
    Interrupted(),
    GenerationComplete(),
    TurnComplete(),
    TOOL,
    AgentAudio(False),
    AgentAudio(True),
]


def test_no_audio_is_queued_between_a_barge_in_and_the_end_of_its_turn() -> None:
    """Every sequence of up to five events: after Interrupted nothing plays until TurnComplete."""
    for length in range(1, 6):
        for sequence in itertools.product(SEQUENCE_ALPHABET, repeat=length):
            m = machine()
            stale = False
            for i, event in enumerate(sequence):
                actions = m.handle(event, float(i))
                if stale:
                    assert not any(isinstance(a, QueueAudio | FlushAudio) for a in actions)
                if isinstance(event, Interrupted):
                    stale = True
                elif isinstance(event, TurnComplete):
                    stale = False


def test_every_barge_in_drops_before_it_clears() -> None:
    """The local drop comes first: the clear waits on the server, the drop must not."""
    for prefix in ([], SPEAKING_AT_1, BARGED_IN):
        _, actions = play([*prefix, (5.0, Interrupted())])
        kinds = [type(a) for a in actions]
        assert kinds[0] is DropAudio and kinds[-1] is ClearLine


def test_flushing_at_call_end_writes_both_lines_caller_first() -> None:
    m, _ = play([(0.5, Transcript("agent", "Bye")), (0.6, Transcript("caller", "Thanks"))])
    assert m.flush_transcripts() == [Transcribe("caller", "Thanks"), Transcribe("agent", "Bye")]
    assert m.flush_transcripts() == []


def test_a_stall_before_any_model_audio_counts_from_the_call_start() -> None:
    m = TurnMachine(now=100.0, model_turn_stall_s=STALL_S, slow_model_response_s=SLOW_S)
    m.handle(ModelAudio(PCM), 100.5)
    assert codes(m.handle(QUIET, 100.5 + STALL_S)) == [WarningCode.MODEL_TURN_INCOMPLETE, *NUDGED]


# ── What the caller hears: silent failures and truthful barge-in ────────────────────────
# The detectors themselves are table-tested in test_line_watch.py and test_heard.py; these
# rows are the machine's part: what it does with a finding, when a recovery is due, what an
# interrupted turn's clear turns into.

RATE = 24000


def _tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 1000.0 * t) * 6000).astype("<i2").tobytes()


def _chunks(pcm: bytes, size: int = 1920) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


SPEECH = load_phrase("agent_transfer").pcm[:1920]  # one 40 ms chunk of a real voice
HALF_S = b"\x01\x00" * (RATE // 2)  # 0.5 s of (quiet) agent audio


def watched(**settings: Any) -> TurnMachine:
    return TurnMachine(
        now=0.0,
        model_turn_stall_s=STALL_S,
        slow_model_response_s=SLOW_S,
        line_watch=LineWatch(WatchSettings(**settings), RATE),
    )


def truthful(how: Telling) -> TurnMachine:
    return TurnMachine(
        now=0.0, model_turn_stall_s=STALL_S, slow_model_response_s=SLOW_S, truthful=how
    )


def test_a_rejected_response_is_reported_and_asked_again_on_the_next_tick() -> None:
    m = watched()
    actions = m.handle(TurnComplete("RESPONSE_REJECTED"), 1.0)
    assert codes(actions) == [
        WarningCode.MODEL_RESPONSE_REJECTED,
        Note("silent_failure", {"code": "MODEL_RESPONSE_REJECTED", "recovery": "repeat"}),
        FlushAudio(play=True),
    ], "no MODEL_TURN_INCOMPLETE and no stall nudge: the finding is the whole story"
    assert m.handle(QUIET, 1.25) == [
        Note("model_recovery", {"recovery": "repeat"}),
        TellModel(NUDGES["repeat"], nudge=True),
    ]
    assert m.handle(QUIET, 1.5) == [], "one recovery per finding"


@pytest.mark.parametrize(
    ("before", "phantom"),
    [
        ([], True),  # nobody spoke, the bridge sent nothing
        ([(2.5, CallerVoiced())], False),  # the caller's voice 0.5 s before: a real barge-in
        ([(2.8, ToldModel())], False),  # the bridge's own text interrupted the model
        ([(1.0, CallerVoiced())], True),  # voice long before does not count
    ],
)
def test_a_phantom_interruption_is_told_from_a_real_one(
    before: list[tuple[float, TurnEvent]], phantom: bool
) -> None:
    m = watched()
    m.handle(ModelAudio(SPEECH), 2.0)
    for now, event in before:
        m.handle(event, now)
    actions = m.handle(Interrupted(), 3.0)
    found = [a.code for a in actions if isinstance(a, Warn)]
    assert found == ([WarningCode.MODEL_PHANTOM_INTERRUPTION] if phantom else [])
    assert [type(a) for a in actions][-2:] == [DropAudio, ClearLine], "still a barge-in"
    assert m.phase is DISCARDING


def test_after_a_phantom_the_model_is_asked_to_continue_only_if_it_stays_silent() -> None:
    m = watched()
    m.handle(ModelAudio(SPEECH), 2.0)
    m.handle(Interrupted(), 3.0)
    m.handle(TurnComplete(), 3.1)
    assert m.handle(QUIET, 4.9) == [], "not due yet (phantom_resume_after_s = 2 s)"
    assert m.handle(QUIET, 5.0) == [
        Note("model_recovery", {"recovery": "continue"}),
        TellModel(NUDGES["continue"], nudge=True),
    ]
    resumed = watched()
    resumed.handle(ModelAudio(SPEECH), 2.0)
    resumed.handle(Interrupted(), 3.0)
    resumed.handle(TurnComplete(), 3.1)
    resumed.handle(ModelAudio(SPEECH), 4.0)  # it went on by itself
    assert resumed.handle(QUIET, 5.0) == []


def test_a_sustained_tone_is_cut_like_a_barge_in_and_repeated() -> None:
    m = watched()
    found: list[Action] = []
    t = 1.0
    for chunk in _chunks(_tone(3.2)):
        t += 0.04
        found = m.handle(ModelAudio(chunk), t)
        if any(isinstance(a, Warn) for a in found):
            break
    assert codes(found) == [
        WarningCode.AGENT_AUDIO_TONE,
        Note("silent_failure", {"code": "AGENT_AUDIO_TONE", "recovery": "cut_and_repeat"}),
        DropAudio(barge_in=False, cut=True),
        ClearLine(pytest.approx(t)),
    ], "nothing more of the turn is queued, and the line is cleared"
    assert m.phase is DISCARDING
    assert m.handle(ModelAudio(_tone(0.1)), t + 0.1) == [], "the rest of the tone is dropped"
    assert m.handle(TurnComplete(), t + 0.2) == [], "no flush, no turn end, no stall warning"
    assert m.phase is IDLE
    assert m.handle(QUIET, t + 0.25)[-1] == TellModel(NUDGES["cut_and_repeat"], nudge=True)


def test_a_mid_sentence_turn_end_is_continued_once_the_back_end_reports_generation() -> None:
    m = watched()
    m.handle(ModelAudio(SPEECH), 1.0)
    m.handle(GenerationComplete(), 1.5)
    m.handle(TurnComplete(), 1.6)  # a normal turn: this back end sends generationComplete
    m.handle(ModelAudio(SPEECH), 2.0)
    m.handle(Transcript("agent", "Your order shipped and"), 2.1)
    found = [a.code for a in m.handle(TurnComplete(), 2.5) if isinstance(a, Warn)]
    assert found == [WarningCode.MODEL_TURN_CUT_MID_SENTENCE]
    assert m.handle(QUIET, 2.75)[-1] == TellModel(NUDGES["continue"], nudge=True)


def test_recoveries_stop_at_the_call_budget_warnings_do_not() -> None:
    m = watched(max_recoveries=1)
    tells, warned = [], []
    for i in range(3):
        now = 1.0 + i
        warned += [
            a for a in m.handle(TurnComplete("RESPONSE_REJECTED"), now) if isinstance(a, Warn)
        ]
        tells += [a for a in m.handle(QUIET, now + 0.25) if isinstance(a, TellModel)]
    assert len(warned) == 3 and len(tells) == 1


def _interrupted_turn(m: TurnMachine) -> list[Action]:
    """0.5 s "Your order", 0.5 s " shipped", 0.5 s " yesterday.", then the caller cuts in."""
    now = 1.0
    for words in ("Your order", " shipped", " yesterday."):
        m.handle(ModelAudio(HALF_S), now)
        m.handle(Transcript("agent", words), now + 0.01)
        now += 0.5
    return m.handle(Interrupted(), now)


def test_truthful_barge_in_waits_for_the_clear_then_tells_the_model_what_was_heard() -> None:
    m = truthful("model_role")
    assert _interrupted_turn(m) == [DropAudio(barge_in=True), ClearLine(2.5)], (
        "the agent's line waits for the clear"
    )
    actions = m.handle(ClearDone(2.5, cleared_bytes=640, heard_s=0.6), 2.6)
    words = {"heard": "Your order", "generated": "Your order shipped yesterday."}
    assert actions == [
        Cleared(640, pytest.approx(0.1)),
        Transcribe("agent", "Your order [interrupted]", words),
        Note("barge_in_heard", {**words, "heard_s": 0.6, "generated_s": 1.5}),
        TellModel("Your order...", role="model"),
    ]
    assert m.handle(ClearDone(2.5, heard_s=0.6), 2.7) == [Cleared(0, pytest.approx(0.2))], (
        "one report per barge-in"
    )


def test_a_failed_clear_counts_everything_written_as_heard() -> None:
    m = truthful("note")
    _interrupted_turn(m)
    actions = m.handle(ClearDone(2.5, error_code="TIMEOUT", heard_s=1.5), 2.6)
    assert codes(actions)[:2] == [
        WarningCode.CALL_COMMAND_FAILED,
        RecordCommand("agent.interrupt", False, "TIMEOUT"),
    ]
    line = actions[2]
    assert isinstance(line, Transcribe) and line.data["heard"] == line.data["generated"]
    assert not any(isinstance(a, TellModel) for a in actions), "all of it was heard: no note"


def test_a_note_names_what_was_not_heard() -> None:
    m = truthful("note")
    _interrupted_turn(m)
    [tell] = [a for a in m.handle(ClearDone(2.5, heard_s=1.0), 2.6) if isinstance(a, TellModel)]
    assert tell.role == "user" and 'They did not hear: "yesterday."' in tell.text


def test_an_interrupted_line_is_not_lost_when_the_call_ends_before_its_clear() -> None:
    m = truthful("model_role")
    _interrupted_turn(m)
    assert m.flush_transcripts() == [
        Transcribe("agent", "Your order shipped yesterday. [interrupted]")
    ]
    assert m.handle(ClearDone(2.5, heard_s=0.6), 3.0) == [Cleared(0, pytest.approx(0.5))]


def test_without_truthful_barge_in_the_line_is_written_at_the_barge_in() -> None:
    _, actions = play(
        [(1.0, ModelAudio(HALF_S)), (1.1, Transcript("agent", "Your order")), (1.5, Interrupted())]
    )
    assert Transcribe("agent", "Your order [interrupted]") in actions
