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
modality}``, ``admission_delayed_calls_total``, ``admission_refused_calls_total``,
``build_info{version}``; plus the standard ``process_*`` (RSS, open descriptors, CPU seconds),
``python_gc_*`` and ``python_info`` series, which the soak's leak checks watch in production.

Conventions (Prometheus naming): counters end in ``_total``, durations are in seconds with a
``_seconds`` suffix, ``*_info`` series are constant 1 with the facts in labels. Counts kept by
another object (the admission limiter) are read at scrape time as counters, not gauges, so
``rate()`` and ``increase()`` work on them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from callbridge import __version__
from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import BridgeWarning

if TYPE_CHECKING:
    from callbridge.bridge.call import BridgedCall

RECONNECT_KINDS = frozenset({"reconnected", "resume_rejected", "rotated"})
"""Model session notices that mean a new model connection was made for a live call."""

FIRST_AUDIO_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)
CLEAR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)

__all__ = ["CONTENT_TYPE_LATEST", "BridgeMetrics"]


class ScrapedCounters(Collector):
    """Counters whose value another object keeps, read at scrape time (never stale).

    ``prometheus_client.Counter`` can only be incremented; a count the admission limiter
    already keeps is exposed through this collector instead, typed as a counter.
    """

    def __init__(self) -> None:
        self._counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def add(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._counters[name] = (documentation, read)

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self._counters.items():
            yield CounterMetricFamily(name, documentation, value=float(read()))


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
        self.build_info = Gauge(
            "callbridge_build_info",
            "Always 1; the running callbridge and Python versions.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        if r is not REGISTRY:  # the default registry has these already
            ProcessCollector(registry=r)
            GCCollector(registry=r)
            PlatformCollector(registry=r)
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
        self._scraped = ScrapedCounters()
        r.register(self._scraped)
        self._track_admission(lambda: 0, lambda: 0)

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
        self._track_admission(admission_delayed, admission_refused)

    def _track_admission(self, delayed: Callable[[], float], refused: Callable[[], float]) -> None:
        self._scraped.add(
            "callbridge_admission_delayed_calls",
            "Calls that waited for the model-connect rate limit.",
            delayed,
        )
        self._scraped.add(
            "callbridge_admission_refused_calls",
            "Calls refused by the model-connect rate limit.",
            refused,
        )

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
