"""Gauges for the hardening state: record store, model reachability, HTTP guards.

Read at scrape time from the objects that own the numbers (never stale), registered on the
bridge's own registry beside :class:`~callbridge.service.metrics.BridgeMetrics`' families.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Gauge


def register_gauges(
    registry: CollectorRegistry, gauges: Mapping[str, tuple[str, Callable[[], float]]]
) -> None:
    """``name -> (help, read)``; each becomes ``callbridge_<name>``."""
    for name, (text, read) in gauges.items():
        Gauge(f"callbridge_{name}", text, registry=registry).set_function(read)
