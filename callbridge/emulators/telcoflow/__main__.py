"""Run the Telcoflow emulator standalone and place scripted calls.

Usage::

    python -m callbridge.emulators.telcoflow --port 8765 --api-key K --connector C \\
        --calls 1 --pcm caller.pcm --rate 16000

Point the bridge (or any telcoflow SDK app) at ``ws://127.0.0.1:8765`` with API key ``K`` and
connector ``C``. Each call's caller waits ``--pause`` seconds, says the PCM file (raw s16le
mono at ``--rate`` Hz, resampled to the rate the claiming SDK connection asked for), waits for
``--wait-agent`` seconds of agent speech (at most ``--wait-timeout``), stays on the line for
``--hold`` seconds and hangs up (``--no-hangup`` keeps it on the line until the bridge ends
the call). Without ``--pcm`` the caller says a one-second 440 Hz tone.

Calls are placed ``--interval`` seconds apart. When every call has ended, one JSON line per
call is printed (end reason, commands, audio counters) and the emulator exits; with
``--calls 0`` it only serves until Ctrl+C. ``--wav-dir`` writes each call as a stereo WAV
(left: caller, right: agent audio as the caller heard it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .outbound import Callee, OutboundOptions
from .outcomes import ConnectOutcome
from .record import CallRecord, write_stereo_wav
from .script import CallerScript, HangUp, Pause, Say, Step, WaitForAgentAudio
from .server import TelcoflowEmulator


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m callbridge.emulators.telcoflow", description=__doc__
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--advertise-host", help="host put in voice URLs (default: --host)")
    p.add_argument("--api-key", default="test-key")
    p.add_argument("--connector", default="conn-1")
    p.add_argument("--calls", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.0, help="seconds between placed calls")
    p.add_argument("--pcm", type=Path, help="caller speech, raw s16le mono")
    p.add_argument("--rate", type=int, default=16000, help="sample rate of --pcm")
    p.add_argument("--pause", type=float, default=0.5, help="silence before speaking")
    p.add_argument("--wait-agent", type=float, default=1.0, help="agent speech to wait for (s)")
    p.add_argument("--wait-timeout", type=float, default=30.0)
    p.add_argument("--hold", type=float, default=2.0, help="silence before hanging up")
    p.add_argument("--no-hangup", action="store_true")
    p.add_argument("--connect-unanswered", action="store_true", help="humans never pick up")
    p.add_argument("--notify-delay", type=float, default=0.25)
    p.add_argument("--renotify-after", type=float, default=2.0)
    p.add_argument("--no-record-audio", action="store_true", help="keep counters only")
    p.add_argument("--wav-dir", type=Path)
    p.add_argument("--log-level", default="INFO")
    # Outbound calls (session.create); see emulators/telcoflow/outbound.py for the variants.
    p.add_argument("--ring-start", choices=["create", "ready", "answer"], default="ready")
    p.add_argument("--report", choices=["answer", "create", "terminate"], default="answer")
    p.add_argument(
        "--callee",
        choices=["answer", "busy", "reject", "no_answer"],
        default="answer",
        help="what a dialled phone does (it plays the caller script once picked up)",
    )
    p.add_argument("--ring-s", type=float, default=1.0, help="ring time before --callee acts")
    return p.parse_args(argv)


def _script(args: argparse.Namespace) -> CallerScript:
    if args.pcm is not None:
        speech, rate = args.pcm.read_bytes(), args.rate
    else:
        rate = 16000
        t = np.arange(rate) / rate
        speech = (np.sin(2 * np.pi * 440.0 * t) * 8000).astype("<i2").tobytes()
    steps: list[Step] = [
        Pause(args.pause),
        Say(speech, rate=rate),
        WaitForAgentAudio(min_s=args.wait_agent, timeout_s=args.wait_timeout),
        Pause(args.hold),
    ]
    if not args.no_hangup:
        steps.append(HangUp())
    return CallerScript(steps)


def _summary(record: CallRecord) -> dict[str, object]:
    return {
        "call_id": record.call_id,
        "end_reason": record.end_reason,
        "sample_rate": record.sample_rate,
        "answered": record.answered_at is not None,
        "duration_s": round((record.ended_at or 0) - (record.answered_at or 0), 2)
        if record.answered_at is not None
        else None,
        "commands": [[c.name, c.success, c.error_code] for c in record.commands],
        "agent_audio_bytes": record.agent_audio_bytes,
        "underruns": record.underruns,
        "pump_resyncs": record.pump_resyncs,
        "interrupts": len(record.interrupts),
        "modes": record.modes,
        "script_events": [label for _, label in record.script_events],
    }


async def _run(args: argparse.Namespace) -> int:
    emu = TelcoflowEmulator(
        args.api_key,
        args.connector,
        host=args.host,
        port=args.port,
        advertise_host=args.advertise_host,
        notify_delay_s=args.notify_delay,
        renotify_after_s=args.renotify_after,
        record_audio=not args.no_record_audio,
        outbound=OutboundOptions(ring_start=args.ring_start, report=args.report),
    )
    emu.default_callee = Callee(args.callee, args.ring_s, _script(args))
    outcome = ConnectOutcome.unanswered() if args.connect_unanswered else None
    async with emu:
        print(f"telcoflow emulator on {emu.base_url}", file=sys.stderr, flush=True)
        if args.calls <= 0:
            await asyncio.Event().wait()
        calls = []
        for i in range(args.calls):
            if i and args.interval > 0:
                await asyncio.sleep(args.interval)
            outcomes = [outcome] * 8 if outcome is not None else []
            calls.append(emu.place_call(_script(args), connect_outcomes=outcomes))
        for call in calls:
            record = await call.ended(timeout=24 * 3600)
            print(json.dumps(_summary(record)), flush=True)
            if args.wav_dir is not None and record.sample_rate:
                args.wav_dir.mkdir(parents=True, exist_ok=True)
                write_stereo_wav(record, args.wav_dir / f"{record.call_id}.wav")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
