"""One ``/metrics`` for several worker processes: their expositions merged, series by series.

Why not prometheus_client's multiprocess mode: it supports neither custom collectors nor
``Gauge.set_function``, and :mod:`callbridge.service.metrics` relies on both (the admission
counters are a collector; active calls, readiness and the store's health are read at scrape
time), and it needs one process-wide registry where each bridge has its own. So the
supervisor scrapes every worker's own ``/metrics`` over loopback and merges them here.

Merging keeps the single-process exposition's names, labels and meaning, so dashboards, alerts
and the HorizontalPodAutoscaler read a multi-worker pod exactly as a one-process pod:

- Samples with the same name and labels are **summed** (calls, tokens, warnings, histogram
  buckets, active calls, capacity, RSS and CPU seconds: the pod's totals).
- Gauges where a sum means nothing take the **minimum** (``callbridge_ready`` is 1 only when
  every worker is ready; connected, model available, store ok; start times and ``*_created``)
  or the **maximum** (draining once any worker drains; constant info series stay 1; failures
  in a row; descriptor limits).
- Counters never go backwards when a worker dies: its counter and histogram samples, as last
  scraped, are kept as the slot's **retired** base and added from then on (what it counted
  after the last scrape is lost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

Rule = Literal["sum", "min", "max"]
SampleKey = tuple[str, tuple[tuple[str, str], ...]]

MIN_GAUGES = frozenset(
    {
        "callbridge_ready",
        "callbridge_telcoflow_connected",
        "callbridge_model_available",
        "callbridge_records_store_ok",
        "process_start_time_seconds",
    }
)
MAX_GAUGES = frozenset(
    {
        "callbridge_draining",
        "callbridge_info",
        "callbridge_build_info",
        "python_info",
        "callbridge_model_failures_in_a_row",
        "process_max_fds",
    }
)
CUMULATIVE_TYPES = frozenset({"counter", "histogram", "summary"})


def rule_for(name: str) -> Rule:
    """How a family's samples from several workers combine."""
    if name in MIN_GAUGES or name.endswith("_created"):
        return "min"
    if name in MAX_GAUGES:
        return "max"
    return "sum"


@dataclass
class Family:
    """One metric family: its type, help text and samples (insertion-ordered)."""

    name: str
    type: str
    documentation: str
    samples: dict[SampleKey, float] = field(default_factory=dict)


Families = dict[str, Family]


def parse(text: str) -> Families:
    """A Prometheus text exposition as families; raises ``ValueError`` on bad input."""
    out: Families = {}
    for metric in text_string_to_metric_families(text):
        family = out.setdefault(metric.name, Family(metric.name, metric.type, metric.documentation))
        for sample in metric.samples:
            family.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def cumulative(families: Mapping[str, Family]) -> Families:
    """The counter and histogram families only: what a dead worker leaves as a base."""
    return {
        name: Family(f.name, f.type, f.documentation, dict(f.samples))
        for name, f in families.items()
        if f.type in CUMULATIVE_TYPES
    }


def merge(parts: Iterable[Mapping[str, Family]]) -> Families:
    """Several expositions as one, by :func:`rule_for`; a family's first help text wins."""
    out: Families = {}
    for part in parts:
        for name, family in part.items():
            merged = out.get(name)
            if merged is None:
                out[name] = Family(name, family.type, family.documentation, dict(family.samples))
                continue
            combine = _COMBINE[rule_for(name)]
            for key, value in family.samples.items():
                have = merged.samples.get(key)
                merged.samples[key] = value if have is None else combine(have, value)
    return out


_COMBINE: dict[Rule, Callable[[float, float], float]] = {
    "sum": lambda a, b: a + b,
    "min": min,
    "max": max,
}


class _Static(Collector):
    def __init__(self, families: Mapping[str, Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families.values():
            metric = Metric(family.name, family.documentation, family.type)
            for (sample_name, labels), value in family.samples.items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric


def render(families: Mapping[str, Family]) -> bytes:
    """Prometheus text for ``families`` (what ``/metrics`` answers)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(families))
    return generate_latest(registry)
