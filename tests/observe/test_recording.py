"""Call recording: stereo as the phone heard it, written as the call goes, purged by age."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import soundfile

from callbridge.adapters.recording import CallRecorder, purge_expired
from callbridge.bridge.config import RecordingSettings
from callbridge.bridge.recording import RecordingTap, StereoTimeline
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.e2e.scenarios import agent, caller_pcm
from tests.observe.test_tracing import Collect

RATE = 16000


def pcm(values: list[int]) -> bytes:
    return np.array(values, dtype=np.int16).tobytes()


def channels(stereo: bytes) -> tuple[list[int], list[int]]:
    both = np.frombuffer(stereo, dtype=np.int16).reshape(-1, 2)
    return both[:, 0].tolist(), both[:, 1].tolist()


# ── The timeline, as a table ──────────────────────────────────────────────────────


def test_agent_audio_plays_from_now_or_after_what_is_queued() -> None:
    line = StereoTimeline()
    assert line.caller(pcm([1, 2])) != b""
    line.agent(pcm([7, 8, 9]))  # written at t=2: plays at 2, 3, 4
    line.agent(pcm([5]))  # queued behind it: plays at 5
    out = line.caller(pcm([3, 4, 5, 6, 0, 0]))
    caller, heard = channels(out)
    assert caller == [3, 4, 5, 6, 0, 0]
    assert heard == [7, 8, 9, 5, 0, 0]


def test_a_clear_cuts_what_was_not_yet_heard() -> None:
    line = StereoTimeline()
    line.caller(pcm([0, 0]))
    line.agent(pcm([1, 2, 3, 4, 5, 6]))  # plays at 2..7
    first = line.caller(pcm([0, 0]))  # t=4: heard 1, 2
    line.clear()  # barge-in: 3..6 never reach the phone
    line.agent(pcm([9]))  # the next answer starts now
    rest = line.caller(pcm([0, 0, 0]))
    assert channels(first)[1] == [1, 2]
    assert channels(rest)[1] == [9, 0, 0]


def test_agent_audio_is_placed_by_the_wall_clock_when_caller_audio_is_read_late() -> None:
    line = StereoTimeline(rate=100)  # one sample = 10 ms; the wall clock counts past 60 ms
    line.caller(pcm([1, 1]), at=0.02)  # samples 0-1 by 20 ms: sample 0 was at t=0
    line.agent(pcm([7]), at=0.05)  # 30 ms behind the wall clock, within the slack: at 20 ms
    line.agent(pcm([8]), at=0.15)  # 130 ms late: it is 150 - 60 = 90 ms at least
    out = line.caller(pcm([2] * 10), at=0.16)  # read late (due by 30 to 120 ms)
    assert channels(out) == ([2] * 10, [7, 0, 0, 0, 0, 0, 0, 8, 0, 0])
    line.agent(pcm([5, 5, 5, 5]), at=0.17)  # plays from 120 ms (caller samples)
    line.clear(at=0.20)  # cleared at 200 - 60 = 140 ms: 120 and 130 were heard
    out = line.caller(pcm([0, 0, 0, 0]), at=0.21)
    assert channels(out) == ([0, 0, 0, 0], [5, 5, 0, 0])


def test_caller_audio_the_platform_never_sent_does_not_shift_the_agent_for_good() -> None:
    """A platform stall skips 0.5 s of caller frames: they never come. Briefly the wall clock
    runs ahead of the caller samples (as when the loop reads late), but once the anchor window
    has passed the loss, agent audio is placed by the caller samples again (it used to stay
    0.44 s late for the rest of the call)."""
    line = StereoTimeline(rate=100)  # one sample = 10 ms; the anchor window is 200 samples
    sent = 0  # caller samples the platform sent (the phone's clock)
    t = 0.0
    for _ in range(50):  # 1 s, on time
        sent += 2
        t = sent / 100
        line.caller(pcm([1, 1]), at=t)
    t += 0.5  # the stall: 0.5 s of wall clock, no caller audio ever
    for _ in range(150):  # 3 s more, on time after the stall
        sent += 2
        t += 0.02
        line.caller(pcm([1, 1]), at=t)
    line.agent(pcm([9]), at=t)
    out = line.caller(pcm([1, 1, 1, 1]), at=t + 0.04)
    assert channels(out)[1] == [9, 0, 0, 0]


def test_a_full_tap_records_silence_of_the_same_length() -> None:
    tap = RecordingTap(max_items=2)
    tap.push("caller", pcm([1, 1]))
    tap.push("agent", pcm([5, 5]))
    tap.push("caller", pcm([2, 2]))  # full: kept as a 2-sample gap
    tap.push("caller", pcm([3, 3]))  # merged into that gap
    assert tap.dropped_bytes == 8
    line = StereoTimeline()
    out = b"".join(line.apply(e) for e in tap.take(10))
    assert channels(out) == ([1, 1, 0, 0, 0, 0], [0, 0, 5, 5, 0, 0])


# ── A real call on the emulators ──────────────────────────────────────────────────


def best_lag(recorded: np.ndarray, heard: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag (samples, recorded later = positive) with the highest normalized correlation."""
    a = recorded.astype(np.float64)
    b = heard.astype(np.float64)
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1, 16):
        x = a[lag:] if lag >= 0 else a
        y = b if lag >= 0 else b[-lag:]
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
        score = float(np.dot(x, y) / denom) if denom else 0.0
        if score > best[1]:
            best = (lag, score)
    return best


async def test_recording_channels_match_what_the_emulators_sent_and_played(
    tmp_path: Path,
) -> None:
    script = Script(
        turns=[
            Turn([agent("agent_answer_long")], input_transcript="Hello"),
            Turn([agent("agent_farewell")], input_transcript="Wait"),
        ]
    )
    caller = CallerScript(
        [
            Pause(0.5),
            Say(caller_pcm("caller_greeting", RATE)),
            WaitForAgentAudio(min_s=1.5, timeout_s=15),
            Say(caller_pcm("caller_bargein", RATE)),
            WaitForAgentAudio(min_s=1.0, timeout_s=15),
            Pause(2.0),
            HangUp(),
        ]
    )
    collect = Collect()
    overrides = {
        "model": {"greeting_prompt": None},
        "recording": {"enabled": True, "directory": str(tmp_path)},
    }
    async with LocalStack(script, overrides=overrides, record_listeners=[collect]) as stack:
        emu = await stack.place_call(caller).ended(timeout=60)
    record = collect.records[0]
    [saved] = [e for e in record.events("timeline") if e.data["event"] == "recording_saved"]
    audio, rate = read_recording(saved.data["uri"], tmp_path)
    assert rate == RATE and audio.shape[1] == 2
    assert saved.data["dropped_bytes"] == 0
    assert abs(saved.data["seconds"] - len(audio) / RATE) < 0.05

    sent = np.frombuffer(emu.caller_pcm, dtype=np.int16)
    played = np.frombuffer(emu.playout, dtype=np.int16)
    assert len(sent) == len(played), "the emulator's two streams share its tick"
    # The caller channel is what the emulator sent, sample for sample (frames may start
    # a few ticks later: the SDK queues what arrives while the call is being answered).
    lag, score = best_lag(audio[:, 0], sent, max_lag=RATE // 2)
    assert score > 0.99, (lag, score)
    # The agent channel is what the emulator played to the phone, barge-in cut included.
    # Each stretch of agent speech is placed by the caller's clock as the bridge saw it, so
    # each may sit a little off (the caller pump's own lag at that moment): matched one by one.
    heard = audio[:, 1]
    bursts = speech_bursts(played)
    assert len(bursts) >= 2, bursts
    lags = []
    for start, end in bursts:
        pad = RATE // 5
        window = played[max(0, start - pad) : end + pad]
        recorded = heard[max(0, start - pad) : end + pad]
        burst_lag, burst_score = best_lag(recorded, window, max_lag=RATE // 10)
        lags.append((start / RATE, burst_lag / RATE, round(burst_score, 4)))
        assert burst_score > 0.95, lags
    print(f"\ncaller lag={lag} score={score:.4f}; agent bursts (t, lag s, score): {lags}")
    # Nothing more was recorded than was heard: the cut audio is not in the recording...
    energy = float(np.sum(heard.astype(np.float64) ** 2))
    played_energy = float(np.sum(played.astype(np.float64) ** 2))
    assert abs(energy - played_energy) < 0.05 * played_energy, (energy, played_energy)
    # ...though audio was written to the platform and then cut by the barge-in's clear.
    [cleared] = [e for e in record.events("timeline") if e.data["event"] == "buffer_cleared"]
    print(
        f"cleared locally {cleared.data['cleared_bytes']} B, at the platform "
        f"{emu.dropped_on_interrupt} B"
    )
    assert cleared.data["cleared_bytes"] + emu.dropped_on_interrupt > RATE // 5


async def test_a_recording_that_cannot_be_written_does_not_end_the_call(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")  # the recordings "directory" is a file: every open fails
    script = Script(turns=[Turn([agent("agent_farewell")], input_transcript="Hello")])
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_pcm("caller_greeting", RATE)),
            WaitForAgentAudio(min_s=1.0, timeout_s=15),
            Pause(1.0),
            HangUp(),
        ]
    )
    collect = Collect()
    overrides = {
        "model": {"greeting_prompt": None},
        "recording": {"enabled": True, "directory": str(blocked)},
    }
    async with LocalStack(script, overrides=overrides, record_listeners=[collect]) as stack:
        emu = await stack.place_call(caller).ended(timeout=60)
    record = collect.records[0]
    assert emu.end_reason == "caller_hangup" and record.outcome == "caller_hangup"
    [failed] = [e for e in record.events("timeline") if e.data["event"] == "recording_failed"]
    assert "not-a-directory" in failed.data["error"]
    assert len(emu.agent_pcm()) > RATE  # the caller heard the answer


def read_recording(uri: str, directory: Path) -> tuple[np.ndarray, int]:
    path = Path(url2pathname(urlparse(uri).path))
    assert path.suffix == ".flac" and path.is_file()
    assert path.is_relative_to(directory)
    assert not list(directory.rglob("*.part"))
    audio, rate = soundfile.read(path, dtype="int16")
    return audio, int(rate)


def speech_bursts(pcm: np.ndarray, gap_s: float = 0.3) -> list[tuple[int, int]]:
    """(start, end) sample ranges of sound separated by more than ``gap_s`` of silence."""
    frame = RATE // 50
    n = len(pcm) // frame
    loud = np.sqrt((pcm[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(1)) > 200
    bursts: list[tuple[int, int]] = []
    quiet = 0
    for i, on in enumerate(loud):
        if on:
            if bursts and quiet * 0.02 <= gap_s:
                bursts[-1] = (bursts[-1][0], (i + 1) * frame)
            else:
                bursts.append((i * frame, (i + 1) * frame))
            quiet = 0
        else:
            quiet += 1
    return bursts


# ── An hour, time-compressed: memory stays flat ───────────────────────────────────


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_an_hour_long_recording_keeps_memory_flat(tmp_path: Path) -> None:
    """One hour of call audio through the tap and writer as fast as the writer takes it.

    The caller talks in 20 ms frames; the agent answers in 0.5 s writes for 6 s of every
    15 s, and one answer in four is cut by a barge-in 2 s in.
    """
    settings = RecordingSettings(enabled=True, directory=tmp_path, queue_s=30)
    recorder = CallRecorder(settings, tenant="t", call_id="hour", sample_rate=RATE)
    rng = np.random.default_rng(1)
    caller_frame = (rng.standard_normal(320) * 3000).astype(np.int16).tobytes()
    agent_chunk = (rng.standard_normal(8000) * 3000).astype(np.int16).tobytes()
    frames = 3600 * 50
    samples: list[tuple[int, int]] = []

    async def call() -> None:
        tap = recorder.tap
        for i in range(frames):
            tap.push("caller", caller_frame)
            second = (i % 750) / 50  # position in a 15 s cycle
            if i % 25 == 0 and second < 6:
                tap.push("agent", agent_chunk)
            if i % 3000 == 100:  # every minute: a barge-in
                tap.clear()
            if len(tap) > tap.max_items // 2:
                await asyncio.sleep(0.001)  # time compression: as fast as the disk keeps up
            if i % 15000 == 0:  # every 5 minutes of call
                samples.append((i // 50, rss_bytes()))
        samples.append((frames // 50, rss_bytes()))
        tap.close()

    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        group.create_task(recorder.run())
        group.create_task(call())
    took = time.monotonic() - started
    assert recorder.saved is not None
    assert recorder.tap.dropped_bytes == 0
    info = soundfile.info(str(recorder.path))
    assert info.channels == 2 and abs(info.duration - 3600) < 0.1
    # Flat: from the 5-minute mark (buffers and the encoder warmed up) to the end.
    after_warmup = [rss for second, rss in samples if second >= 300]
    growth = max(after_warmup) - after_warmup[0]
    print(
        f"\n1 h recorded in {took:.1f} s; file {recorder.path.stat().st_size / 1e6:.1f} MB; "
        f"RSS {after_warmup[0] / 1e6:.1f} -> {after_warmup[-1] / 1e6:.1f} MB "
        f"(max growth {growth / 1e6:.2f} MB)"
    )
    assert growth < 5 * 1024 * 1024, samples


# ── Retention ─────────────────────────────────────────────────────────────────────


def test_purge_deletes_recordings_older_than_the_retention(tmp_path: Path) -> None:
    now = time.time()
    old = tmp_path / "t" / "2026-01-01" / "old.flac"
    partial = tmp_path / "t" / "2026-01-01" / "crashed.flac.part"
    fresh = tmp_path / "t" / "2026-12-03" / "new.flac"
    other = tmp_path / "t" / "2026-01-01" / "notes.txt"
    for path in (old, partial, fresh, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in (old, partial, other):
        os.utime(path, (now - 31 * 86400, now - 31 * 86400))
    removed = purge_expired(tmp_path, retention_days=30, now=now)
    assert sorted(removed) == sorted([old, partial])
    assert fresh.exists() and other.exists()
