"""``/metrics`` follows Prometheus conventions: counters ``_total``, units in names, the
standard process / GC / platform collectors, and ``callbridge_build_info{version}``."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from callbridge import __version__
from callbridge.service.metrics import BridgeMetrics


def families(metrics: BridgeMetrics) -> dict[str, tuple[str, dict[str, float]]]:
    """family name -> (type, {sample name with labels: value})."""
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        samples = {
            s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items())): s.value
            for s in family.samples
        }
        found[family.name] = (family.type, samples)
    return found


def tracked(delayed: int, refused: int) -> BridgeMetrics:
    metrics = BridgeMetrics("acme")
    metrics.track(
        active_calls=lambda: 3,
        max_calls=10,
        ready=lambda: True,
        draining=lambda: False,
        connected=lambda: True,
        admission_delayed=lambda: delayed,
        admission_refused=lambda: refused,
    )
    return metrics


def test_admission_counts_are_counters_named_total() -> None:
    found = families(tracked(delayed=4, refused=1))
    assert found["callbridge_admission_delayed_calls"] == (
        "counter",
        {"callbridge_admission_delayed_calls_total": 4.0},
    )
    assert found["callbridge_admission_refused_calls"] == (
        "counter",
        {"callbridge_admission_refused_calls_total": 1.0},
    )


def test_every_series_follows_the_naming_rules() -> None:
    for name, (kind, samples) in families(tracked(0, 0)).items():
        if kind == "counter":
            assert all(s.split(",")[0].endswith(("_total", "_created")) for s in samples), name
        else:
            assert not name.endswith("_total"), f"{name} is a {kind} named like a counter"
        if kind == "histogram":
            assert name.endswith("_seconds"), f"{name}: a duration carries its unit"
        if name.endswith("_info"):
            assert kind in ("gauge", "info") and set(samples.values()) == {1.0}, name


def test_process_gc_platform_and_build_info_are_exported() -> None:
    found = families(tracked(0, 0))
    for name in (
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds",
        "python_gc_objects_collected",
        "python_info",
    ):
        assert name in found, f"{name} missing from /metrics"
    _, build = found["callbridge_build_info"]
    [(labels, value)] = build.items()
    assert f"version={__version__}" in labels and value == 1.0
    assert __version__ != "0+unknown", "callbridge is installed (make install), so it has a version"
