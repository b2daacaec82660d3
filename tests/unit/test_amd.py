"""The answering-machine detector as a table: what the line does -> what the bridge decides."""

from __future__ import annotations

import pytest

from callbridge.bridge.amd import DetectorSettings, FrameKind, LineDetector, Verdict, classify_frame
from callbridge.emulators.telcoflow.outbound import tone
from callbridge.emulators.voices import load_phrase

S, V, T = FrameKind.SILENCE, FrameKind.SPEECH, FrameKind.TONE


def line(*parts: tuple[FrameKind, float]) -> list[FrameKind]:
    """Frames of 20 ms: ``(SPEECH, 0.5)`` is half a second of speech."""
    return [kind for kind, seconds in parts for _ in range(round(seconds / 0.02))]


def verdicts(frames: list[FrameKind]) -> list[tuple[float, Verdict]]:
    """Each change of verdict with the line time it happened at."""
    detector = LineDetector(DetectorSettings())
    changes: list[tuple[float, Verdict]] = []
    for kind in frames:
        before = detector.verdict
        if detector.feed(kind, 0.02) is not before:
            changes.append((round(detector.t, 2), detector.verdict))
    return changes


CASES = [
    # A person: "Hello?" then waits. Decided 0.7 s after their last word.
    ("hello", line((S, 0.3), (V, 0.5), (S, 2.0)), [(1.5, Verdict.HUMAN)]),
    # A person who says nothing: the opening starts after opening_silence_s.
    ("silent callee", line((S, 3.0)), [(2.0, Verdict.HUMAN)]),
    # A person with a longer greeting, still under machine_speech_s.
    ("two words", line((V, 0.8), (S, 0.2), (V, 1.5), (S, 1.0)), [(3.2, Verdict.HUMAN)]),
    # A mailbox: a long greeting with short pauses, a beep, then recording.
    (
        "mailbox",
        line((V, 2.0), (S, 0.3), (V, 4.0), (S, 0.3), (T, 0.5), (S, 1.0)),
        [(3.0, Verdict.MACHINE), (7.12, Verdict.LEAVE_MESSAGE)],
    ),
    # A mailbox without a beep: the message goes after no_beep_wait_s of quiet.
    (
        "mailbox, no beep",
        line((V, 5.0), (S, 4.0)),
        [(3.0, Verdict.MACHINE), (8.02, Verdict.LEAVE_MESSAGE)],
    ),
    # A beep before any decision (a mailbox with no greeting) is a machine at once.
    (
        "beep only",
        line((S, 0.5), (T, 0.4), (S, 0.5)),
        [(0.66, Verdict.MACHINE), (0.92, Verdict.LEAVE_MESSAGE)],
    ),
    # A tone blip inside speech (a vowel) is not a beep.
    ("blip", line((V, 0.4), (T, 0.06), (V, 0.3), (S, 1.0)), [(1.46, Verdict.HUMAN)]),
    # A pause shorter than end_silence_s neither ends the greeting nor restarts its clock.
    ("no early human", line((V, 2.0), (S, 0.6), (V, 1.5)), [(3.0, Verdict.MACHINE)]),
    # A pause longer than end_silence_s after a short greeting: a person.
    ("human after pause", line((V, 2.0), (S, 0.8), (V, 1.5)), [(2.7, Verdict.HUMAN)]),
]


@pytest.mark.parametrize(("name", "frames", "expected"), CASES, ids=[c[0] for c in CASES])
def test_detector_table(
    name: str, frames: list[FrameKind], expected: list[tuple[float, Verdict]]
) -> None:
    assert verdicts(frames) == expected


def test_classifier_on_real_audio() -> None:
    rate, frame = 16000, 640
    beep = tone(1000.0, 0.5, rate)
    kinds = {classify_frame(beep[i : i + frame], rate) for i in range(0, len(beep), frame)}
    assert kinds == {FrameKind.TONE}
    assert classify_frame(bytes(frame), rate) is FrameKind.SILENCE
    for name in ("callee_hello", "voicemail_greeting", "caller_bargein"):
        pcm = load_phrase(name).pcm
        kinds_run = [classify_frame(pcm[i : i + frame], rate) for i in range(0, len(pcm), frame)]
        longest_tone = max(
            (len(run) for run in "".join("t" if k is T else " " for k in kinds_run).split()),
            default=0,
        )
        assert longest_tone * 0.02 < DetectorSettings().min_beep_s, name
        assert kinds_run.count(FrameKind.SPEECH) > len(kinds_run) // 2
