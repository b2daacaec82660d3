"""From what the emulators recorded to the benchmark's figures. Pure functions, no I/O.

Every latency is measured between two emulator timestamps taken with ``time.monotonic()``
(system-wide on Linux, so comparable across the emulator processes), never inside the bridge:

- caller -> model: the Telcoflow emulator stamps each 20 ms caller frame as it sends it; the
  Gemini emulator stamps each audio chunk as it arrives. A chunk is matched to the caller frame
  holding its last sample by cumulative sample counts, converted by the rate ratio when the
  bridge resamples. The resampler's filter delay is therefore part of the figure, as it should
  be: it is time the caller's audio spends inside the bridge.
- model -> call: the Gemini emulator's send time of a turn's first audio chunk -> the first
  pull of agent audio the Telcoflow emulator receives after it (the line was idle before).
- barge-in: the Gemini emulator's ``interrupted`` -> the ``agent.interrupt`` command arriving at
  the Telcoflow emulator; and how much agent audio was still pulled after ``interrupted``
  (audio of the interrupted turn the caller hears, until the next turn begins).

Whether real time held is judged separately for the emulators (their own lateness: pump ticks
late by more than 20 ms, event-loop wake-ups late by more than 20 ms) and for the bridge (caller
audio reaching the model more than 20 ms after it was sent; pulls left short by the bridge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from callbridge.emulators.telcoflow.playout import PlayoutBuffer

FloatArray = npt.NDArray[np.float64]

FRAME_S = 0.02
LATE_S = 0.020
"""A frame (or a caller sample) later than this has missed its real-time slot."""
MAX_LATE_SHARE = 0.01
"""Real time held if fewer than 1 % of frames are late."""
LIVE_AFTER_S = 0.2
"""Caller frames sent before the model session's first audio + this were queued while the
session opened (a backlog, not steady-state latency); they are left out."""
IDLE_BEFORE_TURN_S = 0.1
"""A turn's first pull counts only if the line had been quiet this long before the turn."""
BARGE_IN_MAX_WAIT_S = 5.0
STALE_CAP_S = 3.0


def _array(values: Iterable[float]) -> FloatArray:
    return np.asarray(list(values), dtype=np.float64)


@dataclass(frozen=True)
class Window:
    """The steady-state interval: every call answered, none hung up yet."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def mask(self, t: FloatArray) -> npt.NDArray[np.bool_]:
        return (t >= self.start) & (t < self.end)


def distribution_ms(values_s: Sequence[float] | FloatArray) -> dict[str, float | int | None]:
    """n, p50, p99, max and mean of seconds, in milliseconds (None when empty)."""
    arr = np.asarray(values_s, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    ms = arr * 1000.0
    return {
        "n": int(arr.size),
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
        "max": round(float(ms.max()), 3),
        "mean": round(float(ms.mean()), 3),
    }


def late_share(values_s: FloatArray, late_s: float = LATE_S) -> float:
    return float(np.mean(values_s > late_s)) if values_s.size else 0.0


# ── Emulator lateness ───────────────────────────────────────────────────────────────────────


def pump_lateness(sent: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    """(send times, lateness) of a caller pump meant to send one frame every 20 ms.

    Lateness is against the ideal schedule anchored at the first frame, so a pump that fell
    behind and re-anchored stays late: real time was lost, and that is what this reports.
    """
    times = _array(sent)
    if times.size == 0:
        return times, times
    ideal = times[0] + FRAME_S * np.arange(times.size)
    return times, times - ideal


def loop_lag(samples: Sequence[Sequence[float]], window: Window) -> FloatArray:
    """Lateness of an emulator's event-loop wake-ups inside the window (``LagProbe``)."""
    if not samples:
        return np.zeros(0)
    arr = np.asarray(samples, dtype=np.float64)
    lag: FloatArray = arr[window.mask(arr[:, 0]), 1]
    return lag


# ── Caller -> model ─────────────────────────────────────────────────────────────────────────


def caller_to_model(
    sent: Sequence[float],
    frame_bytes: int,
    call_rate: int,
    audio_in: Sequence[Sequence[float]],
    model_rate: int,
    window: Window,
) -> tuple[FloatArray, int]:
    """Added latency of each model audio chunk (seconds) and how many matched impossibly.

    Chunk j's cumulative sample count at the model rate is converted to a position in the
    caller's stream at the call rate; the frame that holds that position's last sample was
    sent at ``sent[k]``. A negative latency means the streams do not line up (audio lost or
    duplicated on the way); such chunks are counted and left out.
    """
    sent_arr = _array(sent)
    if sent_arr.size == 0 or not audio_in or frame_bytes <= 0:
        return np.zeros(0), 0
    chunks = np.asarray(audio_in, dtype=np.float64)
    arrived, sizes = chunks[:, 0], chunks[:, 1]
    first_arrival = float(arrived[0])
    position = np.cumsum(sizes) / 2.0 * (call_rate / model_rate)
    frame = np.ceil(position / (frame_bytes / 2.0) - 1e-9).astype(np.int64) - 1
    ok = (frame >= 0) & (frame < sent_arr.size)
    arrived, frame = arrived[ok], frame[ok]
    sent_at = sent_arr[frame]
    keep = (sent_at >= first_arrival + LIVE_AFTER_S) & window.mask(sent_at)
    latency = arrived[keep] - sent_at[keep]
    misaligned = int(np.count_nonzero(latency < -0.001))
    return latency[latency >= -0.001], misaligned


# ── Model -> call ───────────────────────────────────────────────────────────────────────────


def model_to_call(
    first_sent: Sequence[float], pull_times: FloatArray, window: Window
) -> tuple[FloatArray, int]:
    """Per turn: first agent audio sent by the model -> first pull after it (and skips)."""
    latencies: list[float] = []
    skipped = 0
    for start in first_sent:
        if not window.start <= start < window.end:
            continue
        i = int(np.searchsorted(pull_times, start))
        if i >= pull_times.size or (i > 0 and start - pull_times[i - 1] < IDLE_BEFORE_TURN_S):
            skipped += 1
            continue
        latencies.append(float(pull_times[i] - start))
    return _array(latencies), skipped


# ── Underruns ───────────────────────────────────────────────────────────────────────────────


def replay_underruns(
    sent: Sequence[float],
    pulls: npt.NDArray[np.float64],
    interrupts: Sequence[float],
    frame_bytes: int,
    window: Window,
) -> int:
    """Underruns the emulator counted while inside the window, by replaying its playout.

    The emulator keeps only a per-call total, which includes the ramp. Its playout bookkeeping
    is deterministic given when each tick ran (the caller frame stamps: the pump plays one
    agent frame right after sending each caller frame), when each pull arrived and when each
    ``agent.interrupt`` arrived, so replaying the emulator's own ``PlayoutBuffer`` over those
    times gives the same count, attributable to a time.
    """
    playout = PlayoutBuffer(frame_bytes)
    events: list[tuple[float, int]] = [(float(t), int(n)) for t, n in pulls]
    events += [(float(t), -1) for t in interrupts]
    events.sort()
    index = 0
    inside = 0
    for tick in sent:
        while index < len(events) and events[index][0] < tick:
            at, size = events[index]
            index += 1
            if size < 0:
                playout.interrupt()
                continue
            before = playout.underruns
            playout.receive(bytes(size))
            if window.start <= at < window.end:
                inside += playout.underruns - before
        playout.tick(tick)
        playout.top_up(tick)
    return inside


# ── Barge-in ────────────────────────────────────────────────────────────────────────────────


@dataclass
class BargeIns:
    to_interrupt_s: list[float]
    stale_ms: list[float]
    missing: int


def barge_ins(
    interrupted_at: Sequence[float],
    interrupt_commands: Sequence[float],
    pulls: npt.NDArray[np.float64],
    next_turns: Sequence[float],
    call_rate: int,
    window: Window,
) -> BargeIns:
    """``interrupted`` -> ``agent.interrupt``, and agent audio pulled after ``interrupted``.

    Stale audio is every pull after ``interrupted`` and before the next turn's first audio was
    sent (at most ``STALE_CAP_S`` later): it can only belong to the interrupted turn.
    """
    commands = np.sort(_array(interrupt_commands))
    turns = np.sort(_array(next_turns))
    pull_t = pulls[:, 0] if pulls.size else np.zeros(0)
    pull_n = pulls[:, 1] if pulls.size else np.zeros(0)
    result = BargeIns([], [], 0)
    for at in interrupted_at:
        if not window.start <= at < window.end:
            continue
        j = int(np.searchsorted(commands, at))
        if j < commands.size and commands[j] - at <= BARGE_IN_MAX_WAIT_S:
            result.to_interrupt_s.append(float(commands[j] - at))
        else:
            result.missing += 1
        k = int(np.searchsorted(turns, at))
        end = min(float(turns[k]) if k < turns.size else np.inf, at + STALE_CAP_S)
        stale = pull_n[(pull_t > at) & (pull_t < end)].sum()
        result.stale_ms.append(float(stale) / (2 * call_rate) * 1000.0)
    return result


# ── One run ─────────────────────────────────────────────────────────────────────────────────


def steady_window(answered: Sequence[float], hung_up: Sequence[float], settle_s: float) -> Window:
    """From the last answer + ``settle_s`` to the first hang-up (never inverted)."""
    if not answered:
        return Window(0.0, 0.0)
    start = max(answered) + settle_s
    end = min(hung_up) if hung_up else start
    return Window(start, max(start, end))


def analyse(telco: dict[str, Any], gemini: dict[str, Any], window: Window) -> dict[str, Any]:
    """Every latency figure and real-time verdict for one run (CPU and memory come apart)."""
    sessions: dict[str, list[dict[str, Any]]] = {}
    for session in gemini["sessions"]:
        if session.get("call_id"):
            sessions.setdefault(session["call_id"], []).append(session)

    c2m: list[FloatArray] = []
    misaligned = 0
    m2c: list[FloatArray] = []
    skipped_turns = 0
    bargein = BargeIns([], [], 0)
    pump_late: list[FloatArray] = []
    underruns = 0
    underruns_total = 0
    answer_delay: list[float] = []
    agent_bytes = 0.0
    agent_ticks = 0.0
    matched = 0
    for call in telco["calls"]:
        rate = int(call["sample_rate"])
        sent_t, lateness = pump_lateness(call["sent"])
        pump_late.append(lateness[window.mask(sent_t)])
        underruns_total += int(call["underruns"])
        if call["answered_at"] is not None:
            answer_delay.append(call["answered_at"] - call["placed_at"])
        pulls = np.asarray(call["pulls"], dtype=np.float64).reshape(-1, 2)
        interrupts = [t for t, name, _ in call["commands"] if name == "agent.interrupt"]
        underruns += replay_underruns(call["sent"], pulls, interrupts, call["frame_bytes"], window)
        in_window = window.mask(pulls[:, 0]) if pulls.size else np.zeros(0, dtype=bool)
        window_bytes = float(pulls[in_window, 1].sum()) if pulls.size else 0.0
        agent_bytes += window_bytes
        agent_ticks += window_bytes / call["frame_bytes"]
        mine = sorted(sessions.get(call["call_id"], []), key=lambda s: s["opened_at"])
        if not mine:
            continue
        matched += 1
        audio_in = [chunk for s in mine for chunk in s["audio_in"]]
        model_rate = next((s["audio_in_rate"] for s in mine if s["audio_in_rate"]), rate)
        latency, bad = caller_to_model(
            call["sent"], call["frame_bytes"], rate, audio_in, model_rate, window
        )
        c2m.append(latency)
        misaligned += bad
        first_sent = [t for s in mine for t in s["turn_audio_first_sent"]]
        turn_latency, skipped = model_to_call(first_sent, pulls[:, 0], window)
        m2c.append(turn_latency)
        skipped_turns += skipped
        found = barge_ins(
            [t for s in mine for t in s["interrupted_at"]],
            interrupts,
            pulls,
            first_sent,
            rate,
            window,
        )
        bargein.to_interrupt_s += found.to_interrupt_s
        bargein.stale_ms += found.stale_ms
        bargein.missing += found.missing

    c2m_all = np.concatenate(c2m) if c2m else np.zeros(0)
    pump_all = np.concatenate(pump_late) if pump_late else np.zeros(0)
    gemini_lag = loop_lag(gemini.get("lag", []), window)
    telco_lag = loop_lag(telco.get("lag", []), window)
    stale = _array(bargein.stale_ms)
    pump_share, gemini_share = late_share(pump_all), late_share(gemini_lag)
    emulator: dict[str, Any] = {
        "pump_late_share": round(pump_share, 5),
        "pump_lateness_ms": distribution_ms(pump_all),
        "telcoflow_loop_lag_ms": distribution_ms(telco_lag),
        "gemini_loop_lag_ms": distribution_ms(gemini_lag),
        "gemini_loop_late_share": round(gemini_share, 5),
    }
    emulator["held"] = (
        pump_share < MAX_LATE_SHARE
        and gemini_share < MAX_LATE_SHARE
        and late_share(telco_lag) < MAX_LATE_SHARE
    )
    underrun_share = underruns / agent_ticks if agent_ticks else 0.0
    caller_share = late_share(c2m_all)
    bridge: dict[str, Any] = {
        "caller_late_share": round(caller_share, 5),
        "underrun_share": round(underrun_share, 5),
        "calls_matched": matched,
    }
    bridge["held"] = (
        caller_share < MAX_LATE_SHARE
        and underrun_share < MAX_LATE_SHARE
        and matched == len(telco["calls"])
        and c2m_all.size > 0
    )
    return {
        "window_s": round(window.seconds, 3),
        "caller_to_model_ms": distribution_ms(c2m_all),
        "caller_to_model_misaligned": misaligned,
        "model_to_call_ms": distribution_ms(np.concatenate(m2c) if m2c else np.zeros(0)),
        "model_to_call_skipped": skipped_turns,
        "barge_in_ms": distribution_ms(bargein.to_interrupt_s),
        "barge_in_missing": bargein.missing,
        "stale_after_interrupt_ms": {
            "n": int(stale.size),
            "mean": round(float(stale.mean()), 1) if stale.size else None,
            "max": round(float(stale.max()), 1) if stale.size else None,
        },
        "underruns": underruns,
        "underruns_whole_calls": underruns_total,
        "answer_delay_ms": distribution_ms(answer_delay),
        "agent_audio_s": round(agent_bytes / 2 / max(1, _rate_of(telco)), 1),
        "tool_calls": sum(int(s["tool_calls"]) for s in gemini["sessions"]),
        "tool_responses": sum(int(s["tool_responses"]) for s in gemini["sessions"]),
        "interrupted": sum(len(s["interrupted_at"]) for s in gemini["sessions"]),
        "emulator": emulator,
        "bridge": bridge,
    }


def _rate_of(telco: dict[str, Any]) -> int:
    calls = telco.get("calls") or []
    return int(calls[0]["sample_rate"]) if calls else 16000
