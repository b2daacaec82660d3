"""One trace per call: in memory, over the wire, and harmless when the collector is down."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from callbridge.adapters.tracing import build_tracer
from callbridge.bridge.config import TracingSettings
from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.emulators.gemini_live import CallTool, Fault, Script, Turn
from callbridge.emulators.stack import DEFAULT_MODEL, LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.e2e.scenarios import agent, caller_pcm

TOOLS = "tests.observe.user_tools"
CALLER = "+15550001234"


class Collect:
    """Keeps the bridge's call records (a record listener)."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        if record not in self.records:
            self.records.append(record)


def whole_call() -> tuple[Script, CallerScript]:
    """Tool call, a barge-in, more turns; connections get a goAway 3 s in, so they rotate."""
    script = Script(
        turns=[
            Turn(
                [CallTool("lookup", {"order": "42"}), agent("agent_answer_long")],
                input_transcript="Where is order forty-two?",
            ),
            Turn([agent("agent_greeting")], input_transcript="Wait, one more thing"),
            Turn([agent("agent_farewell")], input_transcript="Thanks"),
        ],
        faults=[Fault.go_away(after_s=3.0, time_left_s=4.0)],
    )
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_pcm("caller_greeting", 16000)),
            WaitForAgentAudio(min_s=1.5, timeout_s=20),
            Say(caller_pcm("caller_bargein", 16000)),
            WaitForAgentAudio(min_s=0.5, timeout_s=20),
            Pause(1.5),
            Say(caller_pcm("caller_question", 16000)),
            WaitForAgentAudio(min_s=0.5, timeout_s=20),
            Pause(1.0),
            HangUp(),
        ]
    )
    return script, caller


def overrides() -> dict[str, Any]:
    return {"model": {"greeting_prompt": None}, "tools": {"custom": {"lookup": f"{TOOLS}:lookup"}}}


def waterfall(spans: Sequence[ReadableSpan], width: int = 48) -> str:
    """The trace as text: one line per span, indented by depth, with a bar on the call's time."""
    [root] = [s for s in spans if s.parent is None]
    t0, t1 = root.start_time or 0, root.end_time or 1
    scale = width / max(t1 - t0, 1)
    lines: list[str] = []

    def show(span: ReadableSpan, depth: int) -> None:
        start, end = (span.start_time or t0) - t0, (span.end_time or t0) - t0
        bar = " " * int(start * scale) + "█" * max(1, int((end - start) * scale))
        label = "  " * depth + span.name
        lines.append(
            f"{label:<34} {start / 1e9:6.2f}s {(end - start) / 1e6:8.0f} ms  |{bar:<{width}}|"
        )
        for child in sorted(children(spans, span), key=lambda c: c.start_time or 0):
            show(child, depth + 1)

    show(root, 0)
    return "\n".join(lines)


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_whole_call_trace_has_turns_tool_barge_in_and_rotations() -> None:
    plain = InMemorySpanExporter()
    content = InMemorySpanExporter()
    tracer = build_tracer(TracingSettings(), exporter=plain)
    with_content = build_tracer(TracingSettings(include_content=True), exporter=content)
    assert tracer is not None and with_content is not None
    collect = Collect()
    script, caller = whole_call()
    try:
        async with LocalStack(
            script, overrides=overrides(), record_listeners=[collect, tracer, with_content]
        ) as stack:
            emu = await stack.place_call(caller, caller=CALLER).ended(timeout=90)
        assert tracer.flush() and with_content.flush()
    finally:
        tracer.close()
        with_content.close()
    record = collect.records[0]
    spans = plain.get_finished_spans()
    print("\n" + waterfall(spans))
    assert emu.end_reason == "caller_hangup"

    # One trace, one root.
    assert len({s.context.trace_id for s in spans if s.context}) == 1
    [root] = [s for s in spans if s.parent is None]
    assert root.name == "call"
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.conversation.id"] == record.call_id
    assert attrs["gen_ai.request.model"] == DEFAULT_MODEL
    assert attrs["callbridge.call.outcome"] == "caller_hangup"
    assert attrs["callbridge.call.caller"] == "*" * (len(CALLER) - 4) + CALLER[-4:]
    assert attrs["gen_ai.usage.input_tokens"] == record.usage["prompt_tokens"] > 0
    assert root.start_time is not None and root.end_time is not None
    assert abs(root.start_time / 1e9 - record.started_at) < 0.001

    top = {s.name for s in children(spans, root)}
    assert {"answer", "model_connect", "turn", "model_session.rotated"} <= top, top

    # Turns: the first answer is timed from the caller's speech end; one was interrupted.
    turns = sorted(by_name(spans, "turn"), key=lambda s: s.start_time or 0)
    assert len(turns) >= 3
    latencies = [t.attributes.get("turn.user_bot_latency_seconds") for t in turns if t.attributes]
    # Every turn answers a caller utterance: timed from its end (the record notes the
    # bridge's hangover), which comes before the answer even when noted after it.
    assert all(isinstance(v, float) and 0 < v < 5 for v in latencies), latencies
    interrupted = [t for t in turns if t.attributes and t.attributes["turn.was_interrupted"]]
    barge_ins = [e for e in record.events("timeline") if e.data["event"] == "barge_in"]
    assert len(interrupted) == len(barge_ins) >= 1
    assert len(by_name(spans, "barge_in")) == len(barge_ins)
    [barge] = children(spans, interrupted[0])[-1:]
    assert barge.name == "barge_in"
    b = dict(barge.attributes or {})
    # Played: more than the 1.5 s the caller waited for, less than the whole turn so far.
    assert barge.start_time is not None and interrupted[0].start_time is not None
    turn_so_far_ms = (barge.start_time - interrupted[0].start_time) / 1e6
    assert 1000 <= int(b["callbridge.barge_in.played_ms"]) <= turn_so_far_ms, (b, turn_so_far_ms)
    assert 0 < float(b["callbridge.barge_in.clear_latency_ms"]) < 2000
    assert barge.end_time is not None and barge.end_time >= barge.start_time

    # The model answered the first question with a tool call: it ran inside that turn.
    [tool] = by_name(spans, "execute_tool lookup")
    assert tool.parent is not None and tool.parent.span_id == turns[0].context.span_id
    t_attrs = dict(tool.attributes or {})
    assert t_attrs["gen_ai.tool.name"] == "lookup"
    assert t_attrs["gen_ai.operation.name"] == "execute_tool"
    assert t_attrs["callbridge.tool.status"] == "done"
    assert t_attrs["callbridge.tool.result_status"] == "shipped"
    assert tool.end_time is not None and tool.start_time is not None
    assert 0.15 <= (tool.end_time - tool.start_time) / 1e9 < 2

    # Rotations: timed, with the handle's age and the replay size.
    rotations = by_name(spans, "model_session.rotated")
    assert len(rotations) >= 1
    for rotation in rotations:
        r = dict(rotation.attributes or {})
        assert r["callbridge.model_session.resumed"] is True
        assert float(r["callbridge.model_session.handle_age_s"]) >= 0
        assert int(r["callbridge.model_session.replayed_frames"]) >= 0
        assert float(r["callbridge.model_session.took_ms"]) > 0
    go_aways = [e for e in root.events if e.name == "model_session.go_away"]
    assert len(go_aways) >= len(rotations)

    # Without the opt-in nothing carries caller content; with it, transcripts and tool data.
    assert not [k for s in spans for k in (s.attributes or {}) if k.startswith("callbridge.pii.")]
    rich = content.get_finished_spans()
    rich_keys = {k for s in rich for k in (s.attributes or {})}
    assert {
        "callbridge.pii.caller",
        "callbridge.pii.agent_text",
        "callbridge.pii.caller_text",
        "callbridge.pii.tool.arguments",
        "callbridge.pii.tool.result",
    } <= rich_keys
    [rich_root] = [s for s in rich if s.parent is None]
    assert (rich_root.attributes or {})["callbridge.pii.caller"] == CALLER


# ── Over the wire ──────────────────────────────────────────────────────────────────


class _Receiver(BaseHTTPRequestHandler):
    requests: list[ExportTraceServiceRequest]
    content_types: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests.append(message)
        self.content_types.append(self.headers["Content-Type"])
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    """A minimal OTLP/HTTP traces endpoint on 127.0.0.1 that decodes what it receives."""
    handler = type("Handler", (_Receiver,), {"requests": [], "content_types": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def short_call() -> tuple[Script, CallerScript]:
    """One short answer heard to its end (its turn completes, so usage is reported)."""
    script = Script(turns=[Turn([agent("agent_farewell")], input_transcript="Hello")])
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_pcm("caller_greeting", 16000)),
            WaitForAgentAudio(min_s=0.5, timeout_s=20),
            Pause(2.0),
            HangUp(),
        ]
    )
    return script, caller


async def test_trace_is_sent_to_an_otlp_receiver_over_http() -> None:
    with otlp_receiver() as (url, handler):
        tracer = build_tracer(TracingSettings(otlp_endpoint=url, service_name="cb-test"))
        assert tracer is not None
        collect = Collect()
        script, caller = short_call()
        try:
            async with LocalStack(
                script,
                overrides={"model": {"greeting_prompt": None}},
                record_listeners=[collect, tracer],
            ) as stack:
                await stack.place_call(caller).ended(timeout=60)
            assert tracer.flush(timeout_s=10)
        finally:
            await asyncio.to_thread(tracer.close)
        requests = list(handler.requests)
    assert requests, "nothing arrived at the receiver"
    assert set(handler.content_types) == {"application/x-protobuf"}
    spans = []
    services = set()
    for request in requests:
        for resource_spans in request.resource_spans:
            for attr in resource_spans.resource.attributes:
                if attr.key == "service.name":
                    services.add(attr.value.string_value)
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    assert services == {"cb-test"}
    names = [s.name for s in spans]
    assert names.count("call") == 1 and "turn" in names and "answer" in names
    [root] = [s for s in spans if s.name == "call"]
    root_attrs = {a.key: a.value for a in root.attributes}
    assert root_attrs["gen_ai.conversation.id"].string_value == collect.records[0].call_id
    assert root_attrs["callbridge.call.outcome"].string_value == "caller_hangup"
    assert len({s.trace_id for s in spans}) == 1
    assert all(s.parent_span_id == root.span_id for s in spans if s.name == "turn")


# ── A dead collector ──────────────────────────────────────────────────────────────


class ThreadProbe(SpanProcessor):
    """Notes the thread every span is started on (an SDK span processor, not a mock)."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.threads.add(threading.get_ident())


@contextmanager
def black_hole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung collector)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces"
    finally:
        sock.close()


def timeline(record: CallRecord) -> list[str]:
    return [
        str(e.data.get("event") or e.data.get("state") or e.kind)
        for e in record.entries
        if e.kind in ("timeline", "state", "command", "tool")
    ]


async def _run_short(listeners: list[Any]) -> tuple[CallRecord, Any]:
    collect = Collect()
    script, caller = short_call()
    async with LocalStack(
        script,
        overrides={"model": {"greeting_prompt": None}},
        record_listeners=[collect, *listeners],
    ) as stack:
        emu = await stack.place_call(caller).ended(timeout=60)
    return collect.records[0], emu


async def test_a_dead_collector_does_not_change_the_call() -> None:
    baseline, base_emu = await _run_short([])
    with black_hole() as url:
        tracer = build_tracer(TracingSettings(otlp_endpoint=url, export_timeout_s=1.0))
        assert tracer is not None
        probe = ThreadProbe()
        tracer.provider.add_span_processor(probe)
        try:
            started = time.monotonic()
            record, emu = await _run_short([tracer])
            took = time.monotonic() - started
            # The spans were made; the export is what hangs, on the SDK's own thread.
            await asyncio.to_thread(tracer.flush, 5.0)
        finally:
            closing = time.monotonic()
            await asyncio.to_thread(tracer.close)
            close_s = time.monotonic() - closing
    assert tracer.traced_calls == 1 and tracer.dropped_calls == 0
    assert record.outcome == baseline.outcome == "caller_hangup"
    assert emu.end_reason == base_emu.end_reason
    assert timeline(record) == timeline(baseline)
    assert len(emu.agent_pcm()) > 0 and emu.underruns <= base_emu.underruns + 5
    # No span was made on the call's loop (the listener only hands the record over), and the
    # export runs on the SDK's thread: nothing there can hold up the call.
    assert probe.threads and threading.get_ident() not in probe.threads
    assert took < 30
    # Shutting down waits at most about the export timeout, never forever.
    assert close_s < 10, close_s
