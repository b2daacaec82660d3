"""Prometheus metrics of one tenant's bridge, fed by the call records and the warning hub.

Everything is counted from facts the bridge already produces, so metrics never need a hook
in the audio path: record entries (usage, model session notices, the final outcome), the
finished call's :class:`~callbridge.bridge.call.CallStats`, and the warnings the hub delivers. Each
:class:`BridgeMetrics` has its own ``CollectorRegistry``, so several bridges (or tests) in
one process do not collide.

Series (all prefixed ``callbridge_``): ``active_calls`` (what the HorizontalPodAutoscaler
scales on), ``max_concurrent_calls``, ``ready``, ``draining``, ``telcoflow_connected``,
``calls_total{outcome}``, ``first_agent_audio_seconds``, ``interrupt_to_clear_seconds``,
``model_reconnects_total{kind}``, ``warnings_total{code}``, ``model_tokens_total{direction,
modality}``, ``model_cost_usd_total{model}``, ``call_cost_usd`` (per-call histogram),
``admission_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import BridgeWarning

if TYPE_CHECKING:
    from callbridge.bridge.call import BridgedCall

RECONNECT_KINDS = frozenset({"reconnected", "resume_rejected", "rotated"})
"""Model session notices that mean a new model connection was made for a live call."""

FIRST_AUDIO_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)
COST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CLEAR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)

__all__ = ["CONTENT_TYPE_LATEST", "BridgeMetrics"]


class BridgeMetrics:
    """The metric families, and the listeners that feed them."""

    def __init__(self, tenant: str, registry: CollectorRegistry | None = None) -> None:
        self.tenant = tenant
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "callbridge_info", "Always 1; labels describe the process.", ["tenant"], registry=r
        )
        self.info.labels(tenant=tenant).set(1)
        self.active_calls = Gauge(
            "callbridge_active_calls", "Calls claimed and not yet finished.", registry=r
        )
        self.max_calls = Gauge(
            "callbridge_max_concurrent_calls", "limits.max_concurrent_calls.", registry=r
        )
        self.ready = Gauge("callbridge_ready", "1 when /readyz answers 200.", registry=r)
        self.draining = Gauge("callbridge_draining", "1 once a drain has begun.", registry=r)
        self.connected = Gauge(
            "callbridge_telcoflow_connected", "1 while connected to Telcoflow.", registry=r
        )
        self.calls = Counter(
            "callbridge_calls", "Finished calls by outcome.", ["outcome"], registry=r
        )
        self.first_audio = Histogram(
            "callbridge_first_agent_audio_seconds",
            "From call start to the first agent audio from the model.",
            buckets=FIRST_AUDIO_BUCKETS,
            registry=r,
        )
        self.interrupt_to_clear = Histogram(
            "callbridge_interrupt_to_clear_seconds",
            "From the model's interruption to the call's buffer being cleared.",
            buckets=CLEAR_BUCKETS,
            registry=r,
        )
        self.reconnects = Counter(
            "callbridge_model_reconnects",
            "New model connections made for live calls (unplanned reconnects, rejected "
            "resumptions, planned goAway rotations).",
            ["kind"],
            registry=r,
        )
        self.warnings = Counter(
            "callbridge_warnings", "Warnings delivered, by code.", ["code"], registry=r
        )
        self.tokens = Counter(
            "callbridge_model_tokens",
            "Model tokens reported in usage metadata.",
            ["direction", "modality"],
            registry=r,
        )
        self.cost = Counter(
            "callbridge_model_cost_usd",
            "Model cost of finished calls in US dollars (usage times cost.prices).",
            ["model"],
            registry=r,
        )
        self.call_cost = Histogram(
            "callbridge_call_cost_usd",
            "Model cost of one call in US dollars.",
            buckets=COST_BUCKETS,
            registry=r,
        )
        self.admission_delayed = Gauge(
            "callbridge_admission_delayed_calls",
            "Calls that waited for the model-connect rate limit (since start).",
            registry=r,
        )
        self.admission_refused = Gauge(
            "callbridge_admission_refused_calls",
            "Calls refused by the model-connect rate limit (since start).",
            registry=r,
        )

    # ── Live gauges ──────────────────────────────────────────────────────────────────

    def track(
        self,
        *,
        active_calls: Callable[[], float],
        max_calls: float,
        ready: Callable[[], bool],
        draining: Callable[[], bool],
        connected: Callable[[], bool],
        admission_delayed: Callable[[], float] = lambda: 0,
        admission_refused: Callable[[], float] = lambda: 0,
    ) -> None:
        """Gauges read at scrape time from the service's own state (never stale)."""
        self.active_calls.set_function(active_calls)
        self.max_calls.set(max_calls)
        self.ready.set_function(lambda: float(ready()))
        self.draining.set_function(lambda: float(draining()))
        self.connected.set_function(lambda: float(connected()))
        self.admission_delayed.set_function(admission_delayed)
        self.admission_refused.set_function(admission_refused)

    # ── Feeds ────────────────────────────────────────────────────────────────────────

    def on_warning(self, warning: BridgeWarning) -> None:
        """A :data:`~callbridge.service.delivery.WarningHandler`."""
        self.warnings.labels(code=warning.code.value).inc()

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        """A :class:`~callbridge.bridge.record.RecordListener`; cheap, it runs on the call's
        loop."""
        data = entry.data
        if entry.kind == "usage":
            self._count_tokens(data)
        elif entry.kind == "timeline" and data.get("event") == "model_session":
            kind = data.get("kind")
            if kind in RECONNECT_KINDS:
                self.reconnects.labels(kind=str(kind)).inc()

    def on_finished(self, record: CallRecord, bridged: BridgedCall | None) -> None:
        """Outcome and latency of one finished call (the runner's ``on_finished`` shape)."""
        self.calls.labels(outcome=record.outcome).inc()
        if record.cost_usd is not None:
            self.cost.labels(model=record.model or "unknown").inc(record.cost_usd)
            self.call_cost.observe(record.cost_usd)
        if bridged is None:
            return
        stats = bridged.stats
        if stats.first_agent_audio_s is not None:
            self.first_audio.observe(stats.first_agent_audio_s)
        for seconds in stats.interrupt_to_clear_s:
            self.interrupt_to_clear.observe(seconds)

    def _count_tokens(self, data: Mapping[str, object]) -> None:
        by_modality = {k: v for k, v in data.items() if k.startswith("tokens_")}
        if not by_modality:
            by_modality = {
                "tokens_prompt_unspecified": data.get("prompt_tokens", 0),
                "tokens_response_unspecified": data.get("response_tokens", 0),
            }
        for key, value in by_modality.items():
            if not isinstance(value, int) or value <= 0:
                continue
            direction, _, modality = key.removeprefix("tokens_").partition("_")
            self.tokens.labels(direction=direction, modality=modality.lower() or "all").inc(value)

    # ── Exposition ───────────────────────────────────────────────────────────────────

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
