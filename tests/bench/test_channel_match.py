"""The recording bench's checks: cross-correlation finds a faithful recording and fails a
shifted, gapped or corrupted one; RSS is judged flat by max - min after warm-up.

The "call" is built from the committed voice assets: the caller asks and barges in, the
agent answers, as in ``callbridge.bench.record_hour_load``. The faithful recording is what the
bridge writes when all goes well: both channels a little later than the emulator's view, each
agent answer a few samples off the next (placed by the caller's clock as the bridge saw it).
"""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.bench.channel_match import best_lag, match_bursts, match_windows, speech_bursts
from callbridge.bench.record_hour import judge_channels, judge_rss
from callbridge.emulators.telcoflow import resample_pcm
from callbridge.emulators.voices import load_phrase

RATE = 16000
LAG = 437  # the recording starts a little after the emulator's first frame
WINDOW_S = 10.0


def phrase(name: str) -> np.ndarray:
    p = load_phrase(name)
    return np.frombuffer(resample_pcm(p.pcm, p.rate, RATE), dtype=np.int16)


def conversation(seconds: float = 34.0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(sent, played, agent answer starts): caller and agent taking turns."""
    n = int(seconds * RATE)
    sent = np.zeros(n, dtype=np.int16)
    played = np.zeros(n, dtype=np.int16)
    question, bargein, answer = (
        phrase("caller_question"),
        phrase("caller_bargein"),
        phrase("agent_answer_long"),
    )
    starts = []
    t = RATE // 2
    while t + 16 * RATE < n:
        sent[t : t + len(question)] = question
        a = t + len(question) + RATE // 2
        cut = 2 * RATE  # the barge-in cuts the first answer 2 s in
        played[a : a + cut] = answer[:cut]
        starts.append(a)
        b = a + int(1.5 * RATE)
        sent[b : b + len(bargein)] = bargein
        a = b + len(bargein) + RATE // 2
        played[a : a + len(answer)] = answer
        starts.append(a)
        t = a + len(answer) + RATE
    return sent, played, starts


def record(sent: np.ndarray, played: np.ndarray, starts: list[int], jitter: int = 40) -> np.ndarray:
    """The faithful recording: caller ``LAG`` later, each answer ``LAG`` ± a little later."""
    rng = np.random.default_rng(7)
    out = np.zeros((len(sent) + LAG + jitter, 2), dtype=np.int16)
    out[LAG : LAG + len(sent), 0] = sent
    ends = [*starts[1:], len(played)]
    for start, end in zip(starts, ends, strict=True):
        shift = LAG + int(rng.integers(-jitter, jitter + 1))
        out[start + shift : end + shift, 1] = played[start:end]
    return out


def problems(recorded: np.ndarray, sent: np.ndarray, played: np.ndarray) -> list[str]:
    _, windows, _ = judge_channels(recorded, sent, played, RATE, WINDOW_S)
    return [p for w in windows for p in w.problems]


def test_best_lag_finds_a_delayed_copy_exactly() -> None:
    sent = conversation()[0][: 12 * RATE]
    recorded = np.concatenate([np.zeros(LAG, np.int16), sent // 2])  # quieter is still a copy
    lag, peak = best_lag(recorded, sent, max_lag=RATE)
    assert lag == LAG and peak > 0.9999


def test_bursts_are_the_agent_answers() -> None:
    _, played, starts = conversation()
    bursts = speech_bursts(played, RATE)
    # An answer may hold more than one burst (a pause between its sentences).
    assert len(bursts) >= len(starts)
    for answer in starts:
        assert any(abs(start - answer) < RATE // 50 * 3 for start, _ in bursts), answer


def test_a_faithful_recording_matches_in_every_window() -> None:
    sent, played, starts = conversation()
    recorded = record(sent, played, starts)
    lag0, windows, bursts = judge_channels(recorded, sent, played, RATE, WINDOW_S)
    assert lag0 == LAG
    assert len(windows) == 3 and all(w.ok for w in windows), windows
    assert windows[-1].seconds == 14.0, "a short last window joins the one before"
    assert len(bursts) >= len(starts)
    assert all(abs(b.lag - LAG) <= 40 and b.peak > 0.999 for b in bursts), bursts


def test_a_gap_in_the_caller_channel_shows_as_a_lag_change_from_that_window_on() -> None:
    sent, played, starts = conversation()
    recorded = record(sent, played, starts)
    at = int(20 * RATE)  # 20 ms of caller audio lost at 20 s: the rest is 320 samples early
    recorded[at:-320, 0] = recorded[at + 320 :, 0]
    found = problems(recorded, sent, played)
    assert any("caller lag" in p for p in found), found
    windows = match_windows(recorded[:, 0], sent, window=int(WINDOW_S * RATE), max_lag=RATE)
    assert [w.lag for w in windows] == [LAG, LAG, LAG - 320]


def test_a_shifted_agent_channel_fails() -> None:
    sent, played, starts = conversation()
    recorded = record(sent, played, starts, jitter=0)
    recorded[:, 1] = np.roll(recorded[:, 1], int(0.2 * RATE))  # every answer 200 ms late
    found = problems(recorded, sent, played)
    assert any("agent burst" in p for p in found), found


def test_a_corrupted_stretch_of_either_channel_fails() -> None:
    sent, played, starts = conversation()
    rng = np.random.default_rng(3)
    for channel in (0, 1):
        recorded = record(sent, played, starts)
        lo, hi = int(12 * RATE), int(19 * RATE)
        recorded[lo:hi, channel] = (rng.standard_normal(hi - lo) * 3000).astype(np.int16)
        found = problems(recorded, sent, played)
        assert found, f"channel {channel} corrupted but nothing found"
        key = "caller peak" if channel == 0 else "agent"
        assert any(key in p for p in found), found


def test_agent_audio_that_was_cut_but_recorded_anyway_fails() -> None:
    """The barge-in cut: a recording holding the whole first answer (what was written to the
    platform, not what the phone played) has too much agent energy."""
    sent, played, starts = conversation()
    recorded = record(sent, played, starts, jitter=0)
    answer = phrase("agent_answer_long")
    first = starts[0] + LAG
    recorded[first : first + len(answer), 1] = answer
    found = problems(recorded, sent, played)
    assert any("agent" in p for p in found), found


def test_a_silent_agent_channel_fails() -> None:
    sent, played, starts = conversation()
    recorded = record(sent, played, starts)
    recorded[:, 1] = 0
    assert len(problems(recorded, sent, played)) >= 4


@pytest.mark.parametrize(
    ("samples", "flat"),
    [
        ([(0, 80.0), (30, 120.0), (60, 100.0), (120, 104.9), (3600, 101.0)], True),
        ([(0, 80.0), (60, 100.0), (1800, 103.0), (3600, 105.5)], False),
    ],
)
def test_rss_is_flat_when_max_minus_min_after_warm_up_is_within_5_mib(
    samples: list[tuple[float, float]], flat: bool
) -> None:
    low, high, ok = judge_rss(samples, warmup_s=60)
    assert ok is flat
    assert low == 100.0 and high == max(rss for t, rss in samples if t >= 60)


def test_match_bursts_reports_the_lag_of_each_answer() -> None:
    sent, played, starts = conversation()
    recorded = record(sent, played, starts, jitter=0)
    recorded[:, 1] = np.roll(recorded[:, 1], 100)
    bursts = match_bursts(recorded[:, 1], played, RATE, max_lag=RATE // 4, guess=LAG)
    assert {b.lag for b in bursts} == {LAG + 100}
