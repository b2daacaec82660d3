"""The silent-failure decisions, one table row per situation (no I/O, no clock)."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.bridge.line_watch import ROTATION_CUT, LineWatch, WatchSettings, is_tonal
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.voices import load_phrase

RATE = 24000
CHUNK = 960  # 40 ms, the Live API's chunk size


def _sine(seconds: float, freq: float = 1000.0, amp: float = 6000.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2").tobytes()


def _chunks(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + CHUNK * 2] for i in range(0, len(pcm), CHUNK * 2)]


def _feed(watch: LineWatch, pcm: bytes, text: str = "") -> list[WarningCode]:
    found = []
    for i, chunk in enumerate(_chunks(pcm)):
        finding = watch.agent_audio(chunk)
        if i == 0 and text:
            watch.agent_text(text)
        if finding is not None:
            found.append(finding.code)
    return found


def test_speech_is_not_tonal_a_beep_is() -> None:
    speech = load_phrase("agent_answer_long").pcm
    tonal = [is_tonal(c) for c in _chunks(speech)]
    assert sum(tonal) / len(tonal) < 0.1
    assert all(is_tonal(c) for c in _chunks(_sine(1.0)))


@pytest.mark.parametrize(
    ("audio", "text", "expected"),
    [
        (_sine(4.0), "", [WarningCode.AGENT_AUDIO_TONE]),  # a tone, no words
        (_sine(2.0), "", []),  # shorter than agent_tone_s
        (_sine(4.0, amp=6000), "Hello there.", []),  # transcribed: the emulators' test voices
        (_sine(2.0, amp=5), "Hello there.", [WarningCode.AGENT_AUDIO_NEAR_SILENT]),
        (_sine(1.0, amp=5), "Hi.", []),  # shorter than quiet_agent_audio_s
        (load_phrase("agent_answer_long").pcm, "Your order shipped.", []),
    ],
)
def test_audio_findings(audio: bytes, text: str, expected: list[WarningCode]) -> None:
    assert _feed(LineWatch(WatchSettings(), RATE), audio, text) == expected


@pytest.mark.parametrize(
    ("text", "generated", "tool", "reason", "audio", "expected"),
    [
        ("", False, False, "RESPONSE_REJECTED", False, WarningCode.MODEL_RESPONSE_REJECTED),
        ("Sure.", True, False, "RESPONSE_REJECTED", True, None),  # it did speak
        ("Your order shipped and", False, False, "", True, WarningCode.MODEL_TURN_CUT_MID_SENTENCE),
        ("Your order shipped and", True, False, "", True, None),  # generationComplete came
        ("Your order shipped.", False, False, "", True, None),  # a whole sentence
        ("Let me check", False, True, "", True, None),  # a tool call ends the turn
        ("Your order shipped and", False, False, ROTATION_CUT, True, None),  # our own cut
        ("", True, False, "", False, None),  # empty turn: MODEL_TURN_INCOMPLETE's business
    ],
)
def test_turn_end_findings(
    text: str,
    generated: bool,
    tool: bool,
    reason: str,
    audio: bool,
    expected: WarningCode | None,
) -> None:
    watch = LineWatch(WatchSettings(), RATE)
    watch.generation_complete()  # an earlier turn: this back end reports generationComplete
    assert watch.turn_complete("") is None
    if audio:
        watch.agent_audio(load_phrase("agent_transfer").pcm[: CHUNK * 2])
    if text:
        watch.agent_text(text)
    if tool:
        watch.tool_call()
    if generated:
        watch.generation_complete()
    finding = watch.turn_complete(reason)
    assert (finding.code if finding else None) == expected


@pytest.mark.parametrize(
    ("caller_s", "bridge_s", "audio", "expected"),
    [
        (5.0, 5.0, True, WarningCode.MODEL_PHANTOM_INTERRUPTION),
        (0.3, 5.0, True, None),  # the caller spoke: a real barge-in
        (5.0, 0.2, True, None),  # our own text interrupted the model
        (5.0, 5.0, False, None),  # nothing was said yet
    ],
)
def test_phantom_interruption(
    caller_s: float, bridge_s: float, audio: bool, expected: WarningCode | None
) -> None:
    watch = LineWatch(WatchSettings(), RATE)
    if audio:
        watch.agent_audio(load_phrase("agent_transfer").pcm[: CHUNK * 2])
    finding = watch.interrupted(caller_s, bridge_s)
    assert (finding.code if finding else None) == expected
    if finding is not None:
        assert (finding.recovery, finding.after_s) == ("continue", 2.0)


def test_no_mid_sentence_finding_from_a_back_end_without_generation_complete() -> None:
    """ADK does not pass generationComplete on: every turn would look cut."""
    watch = LineWatch(WatchSettings(), RATE)
    watch.agent_audio(load_phrase("agent_transfer").pcm[: CHUNK * 2])
    watch.agent_text("Your order shipped and")
    assert watch.turn_complete("") is None


def test_recoveries_are_bounded_and_one_per_turn() -> None:
    watch = LineWatch(WatchSettings(max_recoveries=2), RATE)
    got = [watch.turn_complete("RESPONSE_REJECTED") for _ in range(4)]
    assert [f.recovery if f else "none" for f in got] == ["repeat", "repeat", None, None]
    assert all(f is not None for f in got), "still reported once the budget is spent"
    quiet = LineWatch(WatchSettings(), RATE)
    assert len(_feed(quiet, _sine(5.0, amp=5), "Hi.")) == 1, "one finding per turn"
