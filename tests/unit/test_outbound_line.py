"""The outbound line gate without a model: what reaches the model, when, and what is held."""

from __future__ import annotations

import numpy as np

from callbridge.bridge.amd import DetectorSettings
from callbridge.bridge.outbound_line import LinePolicy, OutboundLine
from callbridge.bridge.record import CallRecord
from callbridge.emulators.telcoflow.outbound import tone

RATE = 16000
FRAME = 640


def speech_frame() -> bytes:
    """A 20 ms frame that classifies as speech (noise well above the energy threshold)."""
    rng = np.random.default_rng(1)
    return (rng.normal(0, 4000, FRAME // 2)).astype("<i2").tobytes()


SILENCE, SPEECH = bytes(FRAME), speech_frame()


def line() -> OutboundLine:
    policy = LinePolicy(opening_prompt="open", opening_barge_in_s=1.0, detector=DetectorSettings())
    return OutboundLine(RATE, policy, CallRecord("c", "t", "", ""))


def feed(gate: OutboundLine, frame: bytes, seconds: float) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(round(seconds / 0.02)):
        out += gate.feed(frame)
    return out


def test_nothing_reaches_the_model_before_the_verdict() -> None:
    gate = line()
    assert feed(gate, SILENCE, 0.3) + feed(gate, SPEECH, 0.5) + feed(gate, SILENCE, 0.6) == []
    assert gate.detector.verdict.value == "listening"
    feed(gate, SILENCE, 0.2)
    assert gate.detector.verdict.value == "human"


def test_a_short_hello_over_the_opening_is_held_then_released_in_order() -> None:
    gate = line()
    gate.phase = "opening"  # what run() does once the opening prompt is sent
    held = feed(gate, SPEECH, 0.5) + feed(gate, SILENCE, 0.5)
    assert held == [] and len(gate.held) == 50
    gate.phase = "talk"  # the opening has played
    out = gate.feed(SILENCE)
    assert len(out) == 51 and out[:25] == [SPEECH] * 25  # held audio first, then the new frame


def test_long_speech_over_the_opening_is_a_barge_in() -> None:
    gate = line()
    gate.phase = "opening"
    out = feed(gate, SPEECH, 1.2)
    assert gate.phase == "talk"
    assert len(out) == 60  # released at 1.0 s with everything held, then passed through


def test_a_machine_line_never_reaches_the_model() -> None:
    gate = line()
    beep = tone(1000.0, 0.5, RATE)
    out = feed(gate, SPEECH, 4.0) + [
        f for i in range(0, len(beep), FRAME) for f in gate.feed(beep[i : i + FRAME])
    ]
    out += feed(gate, SILENCE, 1.0)
    assert out == []
    assert gate.detector.verdict.value == "leave_message"


def test_silence_over_the_opening_is_not_held() -> None:
    gate = line()
    gate.phase = "opening"
    assert feed(gate, SILENCE, 3.0) == [] and not gate.held
    feed(gate, SPEECH, 0.4)
    assert len(gate.held) == 20
