"""goAway: the connection is about to end; the call must not notice.

Each scenario checks that the bridge left the old connection itself (close 1000, before the
server's 1011 deadline), resumed from the *latest* handle the old connection issued (an older
one would make the model forget the last turn), warned nobody (a planned rotation is not a
failure), delivered every caller frame exactly once, and that the conversation went on.
"""

from __future__ import annotations

import itertools
from typing import Any

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.faults.kit import (
    NO_GREETING,
    agent_lines,
    agent_says,
    answered_turns,
    fault_stack,
    notice_details,
    notices,
)
from tests.kit import caller_says

FRAME = 640
"""20 ms at 16 kHz: the bridge holds back at most one partial frame of caller audio."""


def assert_exactly_once(sent: int, received: int) -> None:
    assert sent - FRAME <= received <= sent, f"caller sent {sent} B, model got {received} B"


def one_question(first_wait_s: float, pause_s: float) -> CallerScript:
    """Wait for the greeting, ask one short question, hear the answer, hang up."""
    return CallerScript(
        [
            WaitForAgentAudio(min_s=first_wait_s, timeout_s=10),
            Pause(pause_s),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.6, timeout_s=10),
            HangUp(),
        ]
    )


async def rotated_once(script: Script, caller: CallerScript) -> tuple[Any, Any, Any, Any]:
    """Run the call; check what every planned rotation must do; return both connections."""
    async with fault_stack(script) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    first, second = fs.sessions
    assert notices(record) == ["go_away", "rotated"]
    assert first.close_code == 1000, "the bridge left before the server's deadline"
    assert second.resumed_from == first.handles_issued[-1], "resumed from the latest handle"
    assert second.turn_audio_first_sent, "the next answer came on the new connection"
    assert not fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"
    assert_exactly_once(len(emu.caller_pcm), first.audio_in_bytes + second.audio_in_bytes)
    return first, second, record, emu


async def test_go_away_mid_turn_rotates_after_the_turn_without_cutting_it() -> None:
    script = Script(
        greeting=Turn([agent_says(3.0, "Hello, this is Acme support, how can I help?")]),
        turns=[Turn([agent_says(0.8, "It ships on Thursday.")], input_transcript="When?")],
        faults=[Fault.go_away(after_s=1.0, time_left_s=6.0, on_connection=0)],
    )
    first, _, _, _ = await rotated_once(script, one_question(2.8, 0.5))
    kinds = first.kinds()
    # The goAway really arrived mid-turn: after the greeting's audio began, before its end.
    assert kinds.index("audio") < kinds.index("goAway") < kinds.index("turnComplete")
    assert not first.interrupted_at, "the greeting was not cut"


async def test_go_away_between_turns_rotates_at_once() -> None:
    script = Script(
        greeting=Turn([agent_says(1.0, "Hello, Acme support.")]),
        turns=[Turn([agent_says(0.8, "It ships on Thursday.")], input_transcript="When?")],
        faults=[Fault.go_away(after_s=2.0, time_left_s=6.0, on_connection=0)],
    )
    first, second, record, _ = await rotated_once(script, one_question(0.8, 2.5))
    kinds = first.kinds()
    assert kinds.index("turnComplete") < kinds.index("goAway"), "goAway came between turns"
    assert "quiet point" in notice_details(record, "rotated")[0]
    assert not second.texts_in, "no second greeting nudge after a rotation"


async def test_several_rotations_in_one_call_lose_no_turn() -> None:
    turns = 3
    script = Script(
        turns=[
            Turn([agent_says(0.6, f"answer {i}.")], input_transcript=f"question {i}")
            for i in range(turns)
        ],
        # Every connection gets a goAway 1 s in, with 3 s to leave.
        faults=[Fault.go_away(after_s=1.0, time_left_s=3.0)],
    )
    steps: list[object] = [Pause(0.5)]
    for _ in range(turns):
        steps += [Say(caller_says(0.6)), WaitForAgentAudio(min_s=0.5, timeout_s=10), Pause(0.8)]
    caller = CallerScript([*steps, HangUp()])  # type: ignore[list-item]
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=40)
        record = await fs.finished(call)
    sessions = fs.sessions
    assert len(sessions) >= 3, f"only {len(sessions)} connections"
    assert set(notices(record)) == {"go_away", "rotated"}
    for before, after in itertools.pairwise(sessions):
        assert before.close_code == 1000
        assert after.resumed_from == before.handles_issued[-1]
    # Each question was answered exactly once, in order, across the connections.
    assert answered_turns(sessions) == turns
    assert agent_lines(record) == [f"answer {i}." for i in range(turns)]
    assert not fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert record.outcome == "caller_hangup"
    assert_exactly_once(len(emu.caller_pcm), sum(s.audio_in_bytes for s in sessions))


async def test_rotation_forced_mid_answer_recalls_the_exchange_the_handle_lacks() -> None:
    # A 24 s answer is generated over ~6 s (4x burst) from ~1.5 s on; the goAway at 3.5 s
    # leaves 1.2 s, so the bridge must rotate mid-generation, from the handle issued before
    # the question was asked. (The turn may start up to 2 s late and still be cut.)
    question, answer = "When does my order ship?", "It ships on Thursday, by courier."
    script = Script(
        turns=[Turn([agent_says(24.0, answer)], input_transcript=question)],
        faults=[Fault.go_away(after_s=3.5, time_left_s=1.2, on_connection=0)],
    )
    caller = CallerScript(
        [Pause(0.3), Say(caller_says(0.6)), WaitForAgentAudio(min_s=4.0, timeout_s=10), HangUp()]
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        await call.ended(timeout=30)
        record = await fs.finished(call)
    first, second = fs.sessions[:2]
    kinds = first.kinds()
    assert kinds.index("audio") < kinds.index("goAway"), "the answer was under way"
    assert "generationComplete" not in kinds, "the rotation cut the generation short"
    assert second.resumed_from == first.handles_issued[0], "only the pre-question handle existed"
    detail = notice_details(record, "rotated")[0]
    assert "timeLeft nearly over" in detail and "recalled 2 transcript lines" in detail
    instruction = "".join(p["text"] for p in second.setup["system_instruction"]["parts"])
    assert f"caller: {question}" in instruction
    assert "agent: It ships" in instruction and instruction.endswith("[cut off]")
    first_instruction = "".join(p["text"] for p in first.setup["system_instruction"]["parts"])
    assert "renewed" not in first_instruction
    assert not fs.warned(WarningCode.MODEL_REQUEST_FAILED)


async def test_recalled_exchange_survives_later_rotations() -> None:
    # A drop mid-answer resumes from the pre-question handle (recall needed); a quiet-point
    # rotation later must carry the recalled lines again: they live in the setup, not in
    # the conversation state the handle restores.
    question, answer = "Can I change the address?", "Yes, tell me the new address."
    script = Script(
        turns=[Turn([agent_says(24.0, answer)], input_transcript=question)],
        faults=[
            Fault.close(3.5, code=1011, on_connection=0),
            Fault.go_away(after_s=1.0, time_left_s=3.0, on_connection=1),
        ],
    )
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=4.0, timeout_s=10),
            Pause(1.5),
            HangUp(),
        ]
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        await call.ended(timeout=30)
        record = await fs.finished(call)
    assert notices(record)[:3] == ["reconnected", "go_away", "rotated"]
    assert "recalled 2 transcript lines" in notice_details(record, "reconnected")[0]
    assert "recalled" not in notice_details(record, "rotated")[0], "nothing new to recall"
    for later in fs.sessions[1:3]:
        instruction = "".join(p["text"] for p in later.setup["system_instruction"]["parts"])
        assert f"caller: {question}" in instruction and instruction.endswith("[cut off]")
