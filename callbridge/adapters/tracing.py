"""OpenTelemetry traces of calls, built from their records once they end.

:class:`CallTracer` is a :class:`~callbridge.bridge.record.RecordListener`. On the call's loop it
does
one thing: when a record's ``ended`` state entry arrives it hands a snapshot of the record to
its own worker thread (a bounded number of calls may wait; beyond that a call's trace is
dropped and counted, never waited for). The worker plans the span tree
(:func:`callbridge.bridge.traceplan.plan_trace`) and creates the spans with the record's own
timestamps; the SDK's ``BatchSpanProcessor`` queues them (bounded: ``tracing.queue_size``
spans, the newest dropped when full) and exports from its own thread over OTLP/HTTP with
``tracing.export_timeout_s``. So an exporter that is slow or down costs a call nothing: no
span is created, and no export waited for, on the event loop.

A trace arrives when its call ends (a crash mid-call loses it; the call record in the
database does not). Why not live spans: every span would then be created next to the audio
pumps, and the record already holds every fact with its time.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from callbridge.bridge.config import TracingSettings
from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.traceplan import CallFacts, SpanPlan, plan_trace

log = structlog.get_logger("callbridge.tracing")

MAX_WAITING_CALLS = 256
"""Ended calls whose traces may wait for the worker; more are dropped (and counted)."""


class CallTracer:
    """Turns each finished call record into one trace (see the module docstring)."""

    def __init__(
        self,
        provider: TracerProvider,
        *,
        include_content: bool = False,
        max_waiting_calls: int = MAX_WAITING_CALLS,
    ) -> None:
        self.provider = provider
        self.include_content = include_content
        self._tracer = provider.get_tracer("callbridge")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callbridge-trace")
        # Start the worker now: starting a thread at the first call's end would make that
        # call's loop wait for it (measured: as long as the whole trace took to build).
        self._executor.submit(lambda: None).result()
        self._slots = threading.BoundedSemaphore(max_waiting_calls)
        self.dropped_calls = 0
        """Calls whose trace was dropped because too many were waiting for the worker."""
        self.traced_calls = 0
        """Calls whose spans were created (and handed to the exporter's queue)."""
        self.failed_calls = 0

    # ── RecordListener (runs on the call's loop: no SDK work here) ──────────────────
    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        if entry.kind != "state" or entry.data.get("state") != "ended":
            return
        if not self._slots.acquire(blocking=False):
            self.dropped_calls += 1
            log.warning("trace_dropped", call_id=record.call_id, dropped=self.dropped_calls)
            return
        facts = CallFacts(
            call_id=record.call_id,
            tenant=record.tenant,
            caller=record.caller,
            callee=record.callee,
            started_at=record.started_at,
            outcome=record.outcome,
            usage=dict(record.usage),
            cost_usd=record.cost_usd,
        )
        try:
            self._executor.submit(self._emit, facts, tuple(record.entries))
        except RuntimeError:  # shut down: the process is stopping
            self._slots.release()
            self.dropped_calls += 1

    # ── Worker thread ───────────────────────────────────────────────────────────────
    def _emit(self, facts: CallFacts, entries: tuple[RecordEntry, ...]) -> None:
        try:
            plan = plan_trace(facts, entries, include_content=self.include_content)
            self._start(plan, Context(), int(facts.started_at * 1e9))
            self.traced_calls += 1
        except Exception as error:  # a bad record must not stop later traces
            self.failed_calls += 1
            log.error("trace_failed", call_id=facts.call_id, error=repr(error))
        finally:
            self._slots.release()

    def _start(self, plan: SpanPlan, parent: Context, base_ns: int) -> None:
        def ns(t: float | None) -> int:
            return base_ns + int((t or 0.0) * 1e9)

        span = self._tracer.start_span(
            plan.name,
            context=parent,
            kind=SpanKind.SERVER if plan.name == "call" else SpanKind.INTERNAL,
            attributes=plan.attributes,
            start_time=ns(plan.start),
        )
        for event in plan.events:
            span.add_event(event.name, event.attributes, timestamp=ns(event.t))
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error))
        inner = trace.set_span_in_context(span, parent)
        for child in plan.children:
            self._start(child, inner, base_ns)
        span.end(end_time=ns(plan.end))

    # ── Lifecycle ───────────────────────────────────────────────────────────────────
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait for queued calls to become spans, then for the exporter; True if all went."""
        self._executor.submit(lambda: None).result(timeout=timeout_s)
        return self.provider.force_flush(int(timeout_s * 1000))

    def close(self) -> None:
        """Finish queued traces and export what the exporter takes within its timeout."""
        self._executor.shutdown(wait=True)
        self.provider.shutdown()


def build_tracer(
    settings: TracingSettings, exporter: SpanExporter | None = None
) -> CallTracer | None:
    """The tenant's tracer, or ``None`` when tracing is off (no endpoint, no exporter given)."""
    if exporter is None:
        if settings.otlp_endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_s
        )
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.queue_size,
            max_export_batch_size=min(512, settings.queue_size),
            schedule_delay_millis=1000,
            export_timeout_millis=int(settings.export_timeout_s * 1000),
        )
    )
    return CallTracer(provider, include_content=settings.include_content)


__all__ = ["CallTracer", "build_tracer"]
