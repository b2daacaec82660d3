"""The Gemini Live emulator as a benchmark child process (TLS, scripted model turns).

``python -m callbridge.bench.emu_gemini``; ready line: ``base_url``, ``ca_file``. Command ``collect
{path}`` writes each session's audio arrivals, turn starts and interruptions as JSON, each
session tagged with the Telcoflow call id the bridge put in its system instruction
(``callbridge.bench.load.CALL_TAG``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from callbridge.bench.load import find_call_tag, model_script
from callbridge.bench.procs import JsonDict, LagProbe, serve_parent
from callbridge.emulators.gemini_live import GeminiLiveEmulator, SessionLog
from callbridge.service import loop


def export_session(log: SessionLog) -> JsonDict:
    return {
        "call_id": find_call_tag(json.dumps(log.setup)),
        "opened_at": log.opened_at,
        "closed_at": log.closed_at,
        "close_code": log.close_code,
        "audio_in_rate": log.audio_in_rate,
        "audio_in": [[t, n] for t, n in log.audio_in],
        "turn_started_at": list(log.turn_started_at),
        "turn_audio_first_sent": list(log.turn_audio_first_sent),
        "interrupted_at": list(log.interrupted_at),
        "speech_started_at": list(log.speech_started_at),
        "tool_calls": len(log.tool_calls),
        "tool_responses": len(log.tool_responses),
        "notes": list(log.notes),
    }


async def _run(args: argparse.Namespace) -> None:
    emu = GeminiLiveEmulator(script=model_script(), burst_speed=args.burst_speed)
    async with emu:
        probe = LagProbe()

        async def collect(params: JsonDict) -> JsonDict:
            sessions = [export_session(log) for log in emu.sessions]
            data = {"sessions": sessions, "lag": probe.export(), "pid": os.getpid()}
            await asyncio.to_thread(Path(params["path"]).write_text, json.dumps(data))
            return {"sessions": len(sessions)}

        ready = {"base_url": emu.base_url, "ca_file": emu.ca_file, "pid": os.getpid()}
        async with asyncio.TaskGroup() as group:
            task = group.create_task(probe.run())
            await serve_parent(ready, {"collect": collect})
            task.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.emu_gemini")
    parser.add_argument("--burst-speed", type=float, default=4.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    loop.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
