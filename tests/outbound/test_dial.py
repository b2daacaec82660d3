"""Placing calls through the unmodified telcoflow SDK and both emulators.

Every variant of the undocumented platform behaviour (when the phone rings, how a callee who
does not pick up is reported: ``emulators/telcoflow/outbound.py``) is run for a callee who
answers and for one who is busy; the bridge must give the same outcomes under each.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from callbridge.bridge.outbound import DialOutcome
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from callbridge.emulators.telcoflow.outbound import Callee, OutboundOptions, Report, RingStart
from callbridge.emulators.voices import load_phrase
from tests.e2e.scenarios import agent, caller_pcm
from tests.outbound.kit import TO, outbound_stack, person

FRAME = 640  # 20 ms at 16 kHz


def voiced_frames(pcm: bytes) -> list[int]:
    """Indexes of the 20 ms frames whose RMS is over 300."""
    samples = np.frombuffer(pcm[: len(pcm) // FRAME * FRAME], dtype="<i2").astype(np.float32)
    frames = samples.reshape(-1, FRAME // 2)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return [int(i) for i in np.flatnonzero(rms > 300)]


async def test_person_answers_and_the_opening_waits_for_their_hello() -> None:
    async with outbound_stack() as stack:
        stack.telco.expect_callee(TO, person())
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.ANSWERED, result
    assert record.dial_result == "answer"
    session = stack.gemini.sessions[0]
    assert "You call Ada to remind them" in str(session.setup)
    assert session.interrupted_at == []  # nothing cut the opening
    # The agent's first sound comes after the callee's "Hello?" ended, never over it.
    callee, heard = voiced_frames(record.caller_pcm), voiced_frames(record.playout)
    hello_end = max(i for i in callee if i < callee[0] + 40)
    assert heard and heard[0] > hello_end
    # The whole opening reached the callee, then the answer to their confirmation.
    opening = load_phrase("agent_reminder").duration_s + load_phrase("agent_confirmed").duration_s
    assert record.agent_audio_bytes >= 0.9 * opening * 32000


async def test_a_late_hello_over_the_opening_does_not_cut_it() -> None:
    """The callee waits in silence (the opening starts), then says "Hello?" over it."""
    callee = Callee.person(
        CallerScript(
            [
                Pause(2.6),
                Say(caller_pcm("callee_hello", 16000)),
                WaitForAgentAudio(min_s=4.5, timeout_s=20),
                Pause(0.5),
                HangUp(),
            ]
        )
    )
    async with outbound_stack() as stack:
        stack.telco.expect_callee(TO, callee)
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.ANSWERED
    session = stack.gemini.sessions[0]
    assert session.interrupted_at == []
    assert record.interrupts == []
    assert record.agent_audio_bytes >= 0.9 * load_phrase("agent_reminder").duration_s * 32000


async def test_real_interruption_of_the_opening_still_barges_in() -> None:
    """Speech longer than ``outbound.opening_barge_in_s`` over the opening is a barge-in."""
    callee = Callee.person(
        CallerScript(
            [
                Pause(0.2),
                Say(caller_pcm("callee_hello", 16000)),
                WaitForAgentAudio(min_s=1.0, timeout_s=20),
                Say(caller_pcm("caller_bargein", 16000)),
                Pause(2.0),
                HangUp(),
            ]
        )
    )
    async with outbound_stack() as stack:
        stack.telco.expect_callee(TO, callee)
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.ANSWERED
    assert stack.gemini.sessions[0].interrupted_at  # the model was interrupted
    assert record.interrupts  # and the platform's buffer cleared


SHORT_PERSON = Callee.person(
    CallerScript(
        [Pause(0.2), Say(caller_pcm("callee_hello", 16000)), WaitForAgentAudio(1.0), HangUp()]
    ),
    after_s=1.5,
)
VARIANTS: list[tuple[RingStart, Report]] = list(
    itertools.product(("create", "ready", "answer"), ("answer", "create", "terminate"))
)


@pytest.mark.parametrize(("ring_start", "report"), VARIANTS)
async def test_every_platform_variant_gives_the_same_outcomes(
    ring_start: RingStart, report: Report
) -> None:
    options = OutboundOptions(ring_start=ring_start, report=report, ring_timeout_s=3.0)
    busy, rejects, silent = "+15550000001", "+15550000002", "+15550000003"
    async with outbound_stack(
        Script(greeting=Turn([agent("agent_confirmed")])), options=options
    ) as stack:
        stack.telco.expect_callee(TO, SHORT_PERSON)
        stack.telco.expect_callee(busy, Callee.busy())
        stack.telco.expect_callee(rejects, Callee.reject())
        stack.telco.expect_callee(silent, Callee.no_answer())
        app = stack.app
        assert app is not None
        variables = {"name": "Ada"}
        answered = await app.dial(TO, variables=variables)
        got_busy = await app.dial(busy, variables=variables)
        got_reject = await app.dial(rejects, variables=variables)
        got_silent = await app.dial(silent, variables=variables)
    assert answered.outcome is DialOutcome.ANSWERED, answered
    assert (got_busy.outcome, got_busy.error_code) == (DialOutcome.BUSY, "BUSY")
    assert (got_reject.outcome, got_reject.error_code) == (DialOutcome.REJECTED, "CALL_REJECTED")
    assert (got_silent.outcome, got_silent.error_code) == (
        DialOutcome.NO_ANSWER,
        "CALL_UNANSWERED",
    )
    # Only the answered call opened a model session: a dial that fails costs no model.
    assert len(stack.gemini.sessions) == 1


async def test_a_ring_longer_than_the_sdk_command_timeout_is_waited_for() -> None:
    """telcoflow gives ``call.answer`` 10 s; a callee who picks up after 11 s still connects."""
    options = OutboundOptions(ring_start="answer", report="answer", ring_timeout_s=20)
    late = Callee.person(SHORT_PERSON.script, after_s=11.0)
    async with outbound_stack(
        Script(greeting=Turn([agent("agent_confirmed")])),
        options=options,
        overrides={"outbound": {"enabled": True, "ring_timeout_s": 20}},
    ) as stack:
        stack.telco.expect_callee(TO, late)
        assert stack.app is not None
        result = await stack.app.dial(TO)
        record = stack.telco.outbound_calls[0].record
    assert result.outcome is DialOutcome.ANSWERED
    answers = [c for c in record.commands if c.name == "call.answer"]
    assert [c.error_code for c in answers] == ["TIMEOUT", None]


@pytest.mark.parametrize("code", ["QUOTA_EXCEEDED", "OUTBOUND_OVERFLOW", "CHANNEL_NOT_CONFIGURED"])
async def test_a_platform_refusal_is_an_outcome_and_a_warning(code: str) -> None:
    warnings: list[BridgeWarning] = []
    async with outbound_stack(warning_handlers=[warnings.append]) as stack:
        stack.telco.refuse_next_create(code)
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        # The bridge goes on: the next dial works.
        stack.telco.expect_callee(TO, SHORT_PERSON)
        again = await stack.app.dial(TO, variables={"name": "Ada"})
    assert (result.outcome, result.error_code) == (DialOutcome.FAILED, code)
    assert [w.code for w in warnings if w.code is WarningCode.OUTBOUND_CALL_REFUSED] == [
        WarningCode.OUTBOUND_CALL_REFUSED
    ]
    assert warnings[0].details["error_code"] == code
    assert again.outcome is DialOutcome.ANSWERED


async def test_quota_and_overflow_come_from_the_emulators_own_limits() -> None:
    options = OutboundOptions(quota=1)
    async with outbound_stack(options=options) as stack:
        stack.telco.expect_callee(TO, SHORT_PERSON)
        assert stack.app is not None
        first = await stack.app.dial(TO, variables={"name": "Ada"})
        second = await stack.app.dial(TO, variables={"name": "Ada"})
    assert first.outcome is DialOutcome.ANSWERED
    assert (second.outcome, second.error_code) == (DialOutcome.FAILED, "QUOTA_EXCEEDED")
