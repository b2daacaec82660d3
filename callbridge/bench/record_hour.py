"""``callbridge bench-record-hour``: one long recorded call, in real time, checked end to end.

The phone and the model (both emulators, unmodified ``telcoflow`` and ``google-genai`` clients
over sockets) run in a child process (``callbridge.bench.record_hour_load``); this process runs
one real bridge (``BridgeApp``, recording on) and samples its own resident memory every
``--sample-s`` seconds, so the memory is the bridge's alone (the emulators keep every frame of
the call in theirs, by design). The caller and agent take turns for ``--minutes`` with a
barge-in every exchange.

At the end the bridge's recording (FLAC) is read back and each channel cross-correlated
(``callbridge.bench.channel_match``) with the emulator's own view of the call:

- caller (left) against what the emulator sent: per window (default 5 minutes), the lag must
  be the first window's lag to the sample and the peak at least ``CALLER_MIN_PEAK``;
- agent (right) against what the emulator played to the phone: each stretch of agent speech
  must be found within ``AGENT_MAX_OFFSET_S`` of the caller channel's lag with a peak of at
  least ``AGENT_MIN_PEAK``; per window, the recording's agent energy must be within
  ``AGENT_ENERGY_TOLERANCE`` of what was played (nothing cut by a barge-in is recorded,
  nothing heard is missing).

Memory is flat when max - min of RSS after the first ``--warmup-s`` seconds is at most
``RSS_FLAT_MIB``. Results go to ``--out`` (JSON) and the ``.md`` beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from callbridge.bench import load_child
from callbridge.bench.channel_match import Match, match_bursts, match_windows
from callbridge.bench.procs import RT_PRIORITY
from callbridge.bench.procs import _priority_of as priority_of
from callbridge.bench.procs import _raise_priority as raise_priority
from callbridge.bench.record_hour_load import API_KEY, CONNECTOR
from callbridge.bench.soak import ErrorLog, rss_mib
from callbridge.bridge.config import load_config
from callbridge.bridge.record import CallRecord
from callbridge.bridge.warnings import BridgeWarning
from callbridge.service import loop
from callbridge.service.app import BridgeApp
from callbridge.service.logs import configure_logging

RSS_FLAT_MIB = 5.0
CALLER_MIN_PEAK = 0.99
AGENT_MIN_PEAK = 0.95
AGENT_MAX_OFFSET_S = 0.1
AGENT_ENERGY_TOLERANCE = 0.10
CALLER_MAX_LAG_S = 1.0
"""How far from the start of the emulator's audio the recording may begin (the SDK queues the
frames that arrive while the call is being answered)."""


@dataclass
class Window:
    """One window of the call: the caller channel's match and the agent bursts that start in it."""

    start_s: float
    seconds: float
    caller_lag: int
    caller_peak: float
    agent_bursts: int
    agent_min_peak: float
    agent_lag_min: int
    agent_lag_max: int
    agent_energy_ratio: float
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    rss_rule: str
    rss_min_mib: float
    rss_max_mib: float
    rss_flat: bool
    caller_lag: int
    windows: list[Window]
    agent_bursts: int
    channels_match: bool

    @property
    def ok(self) -> bool:
        return self.rss_flat and self.channels_match


@dataclass
class HourReport:
    minutes: float
    window_s: float
    sample_s: float
    warmup_s: float
    priority: str = ""
    rate: int = 0
    bridge_outcome: str = ""
    recording: dict[str, Any] = field(default_factory=dict)
    emulator: dict[str, Any] = field(default_factory=dict)
    differing_samples: dict[str, int] = field(default_factory=dict)
    """Samples per channel not bit-identical to the emulator's, at the caller lag."""
    recorded_s: float = 0.0
    sent_s: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the call was answered, RSS MiB), every ``sample_s``."""
    warnings: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    verdict: Verdict | None = None


def prioritise(pids: Sequence[int], nice: int | None, *, realtime: bool) -> str:
    """Give the bench's processes the benchmark's priority (root only; see ``procs``): on a
    shared machine the phone and the bridge must get their CPU when a frame is due, or the
    emulator's playout underruns and the recording is compared with a stuttering phone.

    ``realtime`` is SCHED_RR one above ``callbridge bench --realtime``: a benchmark running
    beside this one at its own priority would otherwise share each core with us in 100 ms
    round-robin slices, and the phone would stall for that long (seen: agent audio played
    60-120 ms late). One call takes a few % of a core, so the other benchmark loses little."""
    for pid in pids:
        if nice is not None:
            raise_priority(pid, nice)
        if realtime:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(pid, os.SCHED_RR, os.sched_param(RT_PRIORITY + 1))
    return priority_of(pids[0])


def back_to_normal() -> None:
    """Leave SCHED_RR and the bridge's core before the analysis: numpy's BLAS threads would
    share one core at real-time priority, each waiting out the other's 100 ms slice (the
    60-minute run's analysis took 8 minutes instead of about 2)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def judge_rss(samples: Sequence[tuple[float, float]], warmup_s: float) -> tuple[float, float, bool]:
    """(min, max, flat) of the RSS samples after the warm-up."""
    after = [rss for t, rss in samples if t >= warmup_s]
    if not after:
        return 0.0, 0.0, False
    return min(after), max(after), max(after) - min(after) <= RSS_FLAT_MIB


def judge_channels(
    recorded: np.ndarray[Any, Any],
    sent: np.ndarray[Any, Any],
    played: np.ndarray[Any, Any],
    rate: int,
    window_s: float,
) -> tuple[int, list[Window], list[Match]]:
    """Cross-correlate the recording's channels with the emulator's (see module docstring)."""
    window = int(window_s * rate)
    caller = match_windows(
        recorded[:, 0], sent, window=window, max_lag=int(CALLER_MAX_LAG_S * rate)
    )
    lag0 = caller[0].lag
    bursts = match_bursts(recorded[:, 1], played, rate, max_lag=rate // 4, guess=lag0)
    offset = int(AGENT_MAX_OFFSET_S * rate)
    windows = []
    for c in caller:
        problems = []
        if c.lag != lag0:
            problems.append(f"caller lag {c.lag} != {lag0} (drift or gap)")
        if c.peak < CALLER_MIN_PEAK:
            problems.append(f"caller peak {c.peak} < {CALLER_MIN_PEAK}")
        mine = [b for b in bursts if c.start <= b.start < c.start + c.length]
        if not mine:
            problems.append("no agent speech in this window")
        for b in mine:
            if b.peak < AGENT_MIN_PEAK or abs(b.lag - lag0) > offset:
                problems.append(
                    f"agent burst at {b.start / rate:.1f} s: lag {b.lag}, peak {b.peak}"
                )
        hi = min(c.start + c.length, len(played))
        ref = played[c.start : hi].astype(np.float64)
        got = recorded[max(c.start + lag0, 0) : max(hi + lag0, 0), 1].astype(np.float64)
        ref_energy = float(np.dot(ref, ref))
        ratio = float(np.dot(got, got)) / ref_energy if ref_energy else 0.0
        if mine and abs(ratio - 1.0) > AGENT_ENERGY_TOLERANCE:
            problems.append(f"agent energy ratio {ratio:.3f}")
        windows.append(
            Window(
                start_s=round(c.start / rate, 1),
                seconds=round(c.length / rate, 1),
                caller_lag=c.lag,
                caller_peak=c.peak,
                agent_bursts=len(mine),
                agent_min_peak=min((b.peak for b in mine), default=0.0),
                agent_lag_min=min((b.lag for b in mine), default=0),
                agent_lag_max=max((b.lag for b in mine), default=0),
                agent_energy_ratio=round(ratio, 4),
                ok=not problems,
                problems=problems[:10],
            )
        )
    return lag0, windows, bursts


async def record_call(args: argparse.Namespace, workdir: Path, report: HourReport) -> Path:
    """Run the call; returns the path of the emulator's WAV. Fills in the RSS samples."""
    emulator_wav = workdir / "emulator.wav"
    warnings: dict[str, int] = {}
    finished: list[CallRecord] = []
    child = await load_child.spawn(
        "callbridge.bench.record_hour_load",
        ["--minutes", str(args.minutes), "--out", str(emulator_wav)],
        stdin=True,
        new_session=args.nice is not None,
    )
    assert child.stdout is not None and child.stdin is not None
    out = child.stdout
    report.priority = prioritise([os.getpid(), child.pid], args.nice, realtime=args.realtime)
    try:
        ready = (await load_child.read_message(out))["ready"]
        config = load_config(
            overrides={
                "tenant": "record-hour",
                **load_child.emulator_sections(ready, api_key=API_KEY, connector=CONNECTOR),
                "recording": {"enabled": True, "directory": str(workdir / "recordings")},
            },
            env={},
        )

        def on_warning(warning: BridgeWarning) -> None:
            warnings[warning.code.value] = warnings.get(warning.code.value, 0) + 1

        app = BridgeApp(
            config,
            warning_handlers=[on_warning],
            on_call_finished=lambda record, _bridged: finished.append(record),
        )

        async def sample_until_done() -> dict[str, Any]:
            message = await load_child.read_message(out)
            assert "answered" in message, message
            answered = time.monotonic()
            done = asyncio.ensure_future(load_child.read_message(out))
            try:
                while True:
                    report.rss.append((round(time.monotonic() - answered, 1), round(rss_mib(), 2)))
                    over, _ = await asyncio.wait({done}, timeout=args.sample_s)
                    if over:
                        return dict(done.result()["done"])
            finally:
                done.cancel()

        async with asyncio.TaskGroup() as group:
            serving = group.create_task(app.run())
            await app.source.ready.wait()
            report.emulator = await sample_until_done()
            app.stop_claiming()
            await serving
        child.stdin.close()
        async with asyncio.timeout(60):
            await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    report.warnings = warnings
    [record] = finished
    report.bridge_outcome = record.outcome
    saved = [e.data for e in record.events("timeline") if e.data.get("event") == "recording_saved"]
    if not saved:
        raise RuntimeError(f"the bridge saved no recording: {record.events('timeline')[-5:]}")
    report.recording = dict(saved[0])
    return emulator_wav


def analyse(report: HourReport, recording: Path, emulator_wav: Path) -> Verdict:
    recorded, rate = soundfile.read(recording, dtype="int16")
    emulator, emulator_rate = soundfile.read(emulator_wav, dtype="int16")
    if rate != emulator_rate:
        raise RuntimeError(f"recording at {rate} Hz, emulator at {emulator_rate} Hz")
    report.rate = int(rate)
    report.recorded_s = round(len(recorded) / rate, 2)
    report.sent_s = round(len(emulator) / rate, 2)
    lag0, windows, bursts = judge_channels(
        recorded, emulator[:, 0], emulator[:, 1], int(rate), report.window_s
    )
    report.differing_samples = differing(recorded, emulator, lag0)
    low, high, flat = judge_rss(report.rss, report.warmup_s)
    return Verdict(
        rss_rule=f"max - min of RSS after the first {report.warmup_s:.0f} s <= {RSS_FLAT_MIB} MiB",
        rss_min_mib=low,
        rss_max_mib=high,
        rss_flat=flat,
        caller_lag=lag0,
        windows=windows,
        agent_bursts=len(bursts),
        channels_match=all(w.ok for w in windows),
    )


def differing(
    recorded: np.ndarray[Any, Any], emulator: np.ndarray[Any, Any], lag: int
) -> dict[str, int]:
    """Samples of each channel that are not bit-identical to the emulator's, at ``lag``."""
    start = max(lag, 0)
    n = min(len(recorded) - start, len(emulator) - max(-lag, 0))
    mine = recorded[start : start + n]
    theirs = emulator[max(-lag, 0) : max(-lag, 0) + n]
    return {
        "caller": int(np.count_nonzero(mine[:, 0] != theirs[:, 0])),
        "agent": int(np.count_nonzero(mine[:, 1] != theirs[:, 1])),
        "compared": int(n),
    }


def render(report: HourReport, command: str) -> str:
    v = report.verdict
    assert v is not None
    rate = report.rate or 1
    lines = [
        "## One recorded call, real time",
        "",
        f"Command: `{command}`",
        "",
        f"- call: {report.minutes:g} min asked; the emulator sent {report.sent_s:.1f} s, the "
        f"recording holds {report.recorded_s:.1f} s; bridge outcome `{report.bridge_outcome}`",
        f"- priority: {report.priority}",
        f"- emulator: {report.emulator}",
        f"- recording: {report.recording}",
        f"- warnings: {report.warnings or 'none'}; errors logged: {len(report.errors)}"
        + "".join(f"\n  - {e}" for e in report.errors[:10]),
        f"- RSS rule: {v.rss_rule}. After warm-up: min {v.rss_min_mib:.2f} MiB, "
        f"max {v.rss_max_mib:.2f} MiB, spread {v.rss_max_mib - v.rss_min_mib:.2f} MiB: "
        f"**{'flat' if v.rss_flat else 'NOT flat'}**",
        f"- caller channel lag (recording later than the emulator): {v.caller_lag} samples "
        f"({v.caller_lag / rate * 1000:.1f} ms); {v.agent_bursts} agent speech bursts matched",
        f"- samples not bit-identical to the emulator's (at that lag): {report.differing_samples}",
        f"- channels: **{'match' if v.channels_match else 'DO NOT match'}**",
        "",
        "| window start (s) | length (s) | caller lag | caller peak | agent bursts "
        "| agent min peak | agent lag range | agent energy ratio | ok |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for w in v.windows:
        lines.append(
            f"| {w.start_s:.0f} | {w.seconds:.0f} | {w.caller_lag} | {w.caller_peak:.5f} "
            f"| {w.agent_bursts} | {w.agent_min_peak:.4f} | {w.agent_lag_min}..{w.agent_lag_max} "
            f"| {w.agent_energy_ratio:.3f} | {'yes' if w.ok else '; '.join(w.problems)} |"
        )
    lines += ["", "| t (s) | RSS (MiB) |", "|---:|---:|"]
    step = max(len(report.rss) // 30, 1)
    lines += [f"| {t:.0f} | {rss:.2f} |" for t, rss in report.rss[::step]]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="callbridge bench-record-hour", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=300.0, help="cross-correlation window")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="RSS samples ignored")
    parser.add_argument(
        "--nice", type=int, default=-10, help="priority of both processes (root only)"
    )
    parser.add_argument("--no-nice", dest="nice", action="store_const", const=None)
    parser.add_argument("--realtime", action="store_true", help="SCHED_RR (root only)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary one")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/recording-hour.json"),
        help="and the .md beside it",
    )
    args = parser.parse_args(argv)
    errors = ErrorLog()
    configure_logging("json", level=logging.WARNING)
    logging.getLogger().addHandler(errors)
    report = HourReport(args.minutes, args.window_s, args.sample_s, args.warmup_s)
    with tempfile.TemporaryDirectory(prefix="record-hour-") as scratch:
        workdir = args.workdir or Path(scratch)
        emulator_wav = loop.run(record_call(args, workdir, report))
        [recording] = (workdir / "recordings").rglob("*.flac")
        report.errors = errors.errors
        back_to_normal()
        report.verdict = analyse(report, recording, emulator_wav)
    command = "callbridge bench-record-hour " + " ".join(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    text = render(report, command.strip())
    args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if report.verdict.ok and not report.errors else 1
