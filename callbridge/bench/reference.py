"""The reference bridge: the straightforward integration the Telcoflow and Gemini docs suggest.

It is what the benchmark compares our bridge against, so it is written the way the vendors'
samples are, with no tuning:

- a ``SessionManager`` whose notify handler claims the session and starts one task per call;
- per call: ``answer()``, then ``client.aio.live.connect()``, a greeting nudge, and two loops:
  - one reading ``call.audio_stream()`` and awaiting ``session.send_realtime_input(audio=Blob)``
    for each chunk, at the call's own rate (declared in the MIME type, not resampled: the Live
    API accepts any rate so declared);
  - one reading ``session.receive()`` (re-entered after each ``turnComplete``) and, inline:
    writing model audio with ``await call.send_audio()`` (resampled 24 kHz -> call rate when
    they differ, with one ``soxr.ResampleStream``), awaiting ``clear_send_audio_buffer()`` on
    ``interrupted``, and answering tool calls with ``send_tool_response``.

Three deviations from the samples, all so that it survives the benchmark at all, none on
either side's audio path: the SDK fixes from ``callbridge.adapters.telcoflow.sdk_fixes`` (an
unmodified
SDK stops receiving calls after about 33); a call delivered twice (a slow claim is re-offered
and the SDK then builds a second ``Call``) is bridged once; and the call id in the system
instruction (``callbridge.bench.load.tag_instruction``), which the benchmark needs to pair
sessions. The
tool is declared NON_BLOCKING, as our bridge declares it for 2.5 models, because the samples
keep streaming audio during a tool call, which a BLOCKING declaration would punish with 1008.

``python -m callbridge.bench.reference --telcoflow-url ... --gemini-url ... --ca-file ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
from collections.abc import Sequence
from typing import Any

import numpy as np
import soxr
import telcoflow
from google import genai
from google.genai import types

from callbridge.adapters.telcoflow import sdk_fixes
from callbridge.bench.load import TOOL_NAME, lookup_order, tag_instruction
from callbridge.bench.procs import GcWatch, JsonDict, serve_parent

log = logging.getLogger("callbridge.bench.reference")

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
INSTRUCTION = "You are a helpful, concise phone agent."
GREETING = "The caller has just been connected. Greet them briefly."
MODEL_OUTPUT_RATE = 24000

TOOLS = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name=TOOL_NAME,
                description="Look up an order's delivery status.",
                parameters_json_schema={
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
                behavior=types.Behavior.NON_BLOCKING,
            )
        ]
    )
]


class Stats:
    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.failed = 0
        self.duplicates = 0
        self.errors: dict[str, int] = {}


async def _call_to_model(call: telcoflow.Call, session: Any, rate: int) -> None:
    mime = f"audio/pcm;rate={rate}"
    async for chunk in call.audio_stream():
        await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type=mime))


async def _model_to_call(session: Any, call: telcoflow.Call, rate: int) -> None:
    resampler = (
        None
        if rate == MODEL_OUTPUT_RATE
        else soxr.ResampleStream(MODEL_OUTPUT_RATE, rate, 1, dtype="int16")
    )
    while True:
        async for message in session.receive():
            content = message.server_content
            if content is not None:
                if content.interrupted:
                    await call.clear_send_audio_buffer()
                if content.model_turn is not None:
                    for part in content.model_turn.parts or []:
                        if part.inline_data is None or not part.inline_data.data:
                            continue
                        pcm = part.inline_data.data
                        if resampler is not None:
                            samples = np.frombuffer(pcm, dtype="<i2")
                            pcm = resampler.resample_chunk(samples).tobytes()
                        if pcm:
                            await call.send_audio(pcm)
            if message.tool_call is not None:
                responses = []
                for fc in message.tool_call.function_calls or []:
                    result = await lookup_order(**(fc.args or {}))
                    responses.append(
                        types.FunctionResponse(id=fc.id, name=fc.name, response=result)
                    )
                await session.send_tool_response(function_responses=responses)


async def bridge_call(call: telcoflow.Call, client: genai.Client, rate: int) -> None:
    await call.answer()
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=tag_instruction(INSTRUCTION, str(call.id)),
        tools=TOOLS,
    )
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_realtime_input(text=GREETING)
        async with asyncio.TaskGroup() as group:
            downstream = group.create_task(_model_to_call(session, call, rate))
            await _call_to_model(call, session, rate)
            downstream.cancel()


async def _guarded(call: telcoflow.Call, client: genai.Client, rate: int, stats: Stats) -> None:
    stats.started += 1
    try:
        await bridge_call(call, client, rate)
    except* Exception as group:
        stats.failed += 1
        for exc in group.exceptions:
            name = type(exc).__name__
            stats.errors[name] = stats.errors.get(name, 0) + 1
    finally:
        stats.finished += 1


async def _run(args: argparse.Namespace) -> None:
    manager = telcoflow.SessionManager(
        telcoflow.SessionManagerConfig.create(
            api_key=args.api_key,
            connector_uuid=args.connector,
            base_url=args.telcoflow_url,
            call_audio=telcoflow.CallAudioConfig(sample_rate=args.rate),
        )
    )
    sdk_fixes.apply_fixes(manager)
    client = genai.Client(
        api_key="emulator-key",
        http_options=types.HttpOptions(
            base_url=args.gemini_url,
            async_client_args={"ssl": ssl.create_default_context(cafile=args.ca_file)},
        ),
    )
    stats = Stats()
    gc_watch = GcWatch()
    gc_watch.install()
    tasks: set[asyncio.Task[None]] = set()
    bridged: set[str] = set()

    async with asyncio.TaskGroup() as calls:

        async def on_notify(notice: telcoflow.SessionNotification) -> None:
            session_id = notice.session_id
            session = await manager.open_session(session_id)

            async def on_call(call: telcoflow.Call) -> None:
                if call.id in bridged:
                    stats.duplicates += 1  # a re-delivered call.in: never bridge a call twice
                    return
                bridged.add(call.id)
                task = calls.create_task(_guarded(call, client, args.rate, stats))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            def on_closed(_reason: Any) -> None:
                sdk_fixes.release_session(manager, session_id)

            session.on_incoming_call(on_call)
            session.on_closed(on_closed)
            await session.ready()

        async def stats_cmd(_: JsonDict) -> JsonDict:
            return {
                "active_calls": len(tasks),
                "started": stats.started,
                "finished": stats.finished,
                "failed": stats.failed,
                "duplicates_ignored": stats.duplicates,
                "errors": stats.errors,
                "gc": gc_watch.export(),
            }

        manager.on_session_notification(on_notify)
        async with manager:
            await serve_parent({"pid": os.getpid()}, {"stats": stats_cmd})
            for task in list(tasks):
                task.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.reference")
    parser.add_argument("--telcoflow-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--connector", required=True)
    parser.add_argument("--gemini-url", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--rate", type=int, default=16000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
