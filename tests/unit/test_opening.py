"""The opening guard, frame by frame: what reaches the model during the greeting."""

from __future__ import annotations

import pytest

from callbridge.bridge.opening import OpeningGuard, OpeningSettings

RATE = 8000
FRAME = 320  # 20 ms
LOUD = b"\x00\x40" * (FRAME // 2)  # int16 16384
QUIET = bytes(FRAME)


def _run(guard: OpeningGuard, frames: str, start: float = 0.0) -> str:
    """Feed frames ('v' voiced, '.' quiet, 20 ms each); return what was sent, in the same
    alphabet ('s' for silence that stood in for held speech)."""
    out = []
    for i, kind in enumerate(frames):
        pcm = LOUD if kind == "v" else QUIET
        for sent in guard.caller_frame(pcm, start + i * 0.02):
            out.append("v" if sent == LOUD else ("." if sent is pcm or sent == QUIET else "?"))
    return "".join(out)


def _guard(**kw: float) -> OpeningGuard:
    guard = OpeningGuard(OpeningSettings(**kw), RATE)
    guard.agent_started(0.0)
    return guard


@pytest.mark.parametrize(
    ("frames", "sent", "state"),
    [
        ("....", "....", "protecting"),  # quiet passes at once
        ("vvvvv" + "." * 20, "." * 25, "protecting"),  # a 0.1 s click: replaced by silence
        ("v" * 40 + "." * 20, "v" * 40 + "." * 20, "open"),  # 0.8 s of speech: a barge-in
        ("vv.vv.vv" + "." * 20, "." * 28, "protecting"),  # short run with gaps: one blip
    ],
)
def test_frames_during_the_window(frames: str, sent: str, state: str) -> None:
    guard = _guard(protect_s=5.0)
    assert _run(guard, frames) == sent
    assert guard.state == state


def test_speech_is_held_until_it_proves_a_barge_in() -> None:
    guard = _guard(protect_s=5.0, min_barge_in_s=0.8)
    held = [guard.caller_frame(LOUD, i * 0.02) for i in range(39)]
    assert all(out == [] for out in held), "held while it may still be a blip"
    released = guard.caller_frame(LOUD, 0.8)
    assert len(released) == 40 and guard.state == "open", "all of it, at once"


def test_the_window_closes_after_protect_s_and_releases_what_is_held() -> None:
    guard = _guard(protect_s=1.0)
    assert guard.caller_frame(LOUD, 0.98) == []
    assert guard.caller_frame(LOUD, 1.0) == [LOUD, LOUD]
    assert guard.caller_frame(LOUD, 1.02) == [LOUD]


def test_the_end_of_the_first_agent_turn_opens_it() -> None:
    guard = _guard(protect_s=10.0)
    guard.agent_turn_ended()
    assert guard.caller_frame(LOUD, 0.1) == [LOUD]


def test_protects_before_the_greeting_audio_arrives() -> None:
    guard = OpeningGuard(OpeningSettings(protect_s=2.0), RATE)
    assert guard.caller_frame(LOUD, 100.0) == [], "no agent audio yet: still the opening"
    guard.agent_turn_ended()
    assert guard.state == "protecting", "a turn end before any agent audio is not the opening's"


def test_disabled() -> None:
    guard = OpeningGuard(OpeningSettings(protect_s=0.0), RATE)
    assert guard.state == "open" and guard.caller_frame(LOUD, 0.0) == [LOUD]
