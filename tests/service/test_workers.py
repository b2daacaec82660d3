"""``service.workers``: the pure decisions (shares, per-worker config, backoff, readiness),
the cores ``"auto"`` finds (over cgroup files written here), and the ``/metrics`` merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callbridge.adapters.telcoflow.source import claim_delay_s
from callbridge.bridge.config import TenantConfig, config_problems, load_config
from callbridge.bridge.errors import ConfigError
from callbridge.service.cpus import quota_cores, usable_cores
from callbridge.service.metrics import BridgeMetrics
from callbridge.service.metrics_merge import Families, cumulative, merge, parse, render, rule_for
from callbridge.service.workers import (
    RestartBackoff,
    WorkerState,
    pod_readiness,
    resolve_workers,
    shares,
    worker_config,
)

ENV = {"GEMINI_API_KEY": "k", "TELCOFLOW_API_KEY": "k", "TELCOFLOW_CONNECTOR_UUID": "c"}


def load(**sections: Any) -> TenantConfig:
    return load_config(overrides={"tenant": "t", **sections}, env=ENV)


@pytest.mark.parametrize(
    ("total", "workers", "expected"),
    [(10, 3, [4, 3, 3]), (6, 2, [3, 3]), (7, 4, [2, 2, 2, 1]), (5, 5, [1] * 5), (50, 1, [50])],
)
def test_shares_sum_exactly_to_the_total_remainder_to_the_first(
    total: int, workers: int, expected: list[int]
) -> None:
    assert shares(total, workers) == expected
    assert sum(shares(total, workers)) == total


@pytest.mark.parametrize(("value", "resolved"), [(1, 1), (2, 2), ("auto", 4), ("3", 3)], ids=str)
def test_workers_setting_resolves(value: object, resolved: int) -> None:
    loaded = load(service={"workers": value}, limits={"max_concurrent_calls": 50})
    assert resolve_workers(loaded, cores=4) == resolved


def test_workers_default_is_one_process() -> None:
    assert load().service.workers == 1


@pytest.mark.parametrize(("text", "workers"), [("auto", "auto"), ("3", 3)])
def test_workers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, workers: object
) -> None:
    monkeypatch.setenv("CALLBRIDGE_SERVICE__WORKERS", text)
    assert load().service.workers == workers


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True, 257, ""], ids=repr)
def test_bad_workers_values_name_the_field(bad: object) -> None:
    with pytest.raises(ConfigError) as caught:
        load(service={"workers": bad})
    [problem] = config_problems(caught.value)
    assert problem.startswith("service.workers")
    assert '"auto"' in problem


def test_auto_is_capped_by_the_call_limit_an_explicit_excess_is_an_error() -> None:
    small = {"max_concurrent_calls": 2}
    auto = load(service={"workers": "auto"}, limits=small)
    assert resolve_workers(auto, cores=8) == 2
    four = load(service={"workers": 4}, limits=small)
    with pytest.raises(
        ConfigError,
        match=r"service.workers: 4 workers cannot share limits.max_concurrent_calls = 2",
    ):
        resolve_workers(four, cores=8)


def test_worker_config_splits_per_process_limits_and_keeps_listeners_private() -> None:
    base = load(
        limits={"max_concurrent_calls": 10, "model_connects_per_minute": 100},
        service={"workers": 3, "http_port": 9000, "admin_port": 9001},
        outbound={"enabled": True, "max_concurrent_calls": 4},
        campaigns={"enabled": True},
    )
    made = [worker_config(base, i, 3) for i in range(3)]
    assert [c.limits.max_concurrent_calls for c in made] == [4, 3, 3]
    assert [c.limits.model_connects_per_minute for c in made] == [34, 33, 33]
    assert [c.outbound.max_concurrent_calls for c in made] == [2, 1, 1]
    assert [c.campaigns.enabled for c in made] == [True, False, False]
    for c in made:
        assert (c.service.http_host, c.service.http_port) == ("127.0.0.1", 0)
        assert (c.service.admin_host, c.service.admin_port) == ("127.0.0.1", 0)
        assert c.service.workers == 1
        assert c.tenant == base.tenant and c.model == base.model


def test_restart_backoff_doubles_on_quick_deaths_and_resets_after_a_stable_run() -> None:
    backoff = RestartBackoff(first_s=0.5, max_s=4.0, stable_s=60.0)
    assert [backoff.after_exit(1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.after_exit(120.0) == 0.5


READY = WorkerState(running=True)
FULL = WorkerState(running=True, reason="at_capacity")


@pytest.mark.parametrize(
    ("draining", "workers", "reason"),
    [
        (False, [READY, READY], None),
        (True, [READY, READY], "draining"),
        (False, [READY, FULL], None),
        (False, [FULL, FULL], "at_capacity"),
        (False, [READY, WorkerState(running=False)], "worker 1: not running"),
        (
            False,
            [WorkerState(running=True, reason="telcoflow_not_connected"), READY],
            "worker 0: telcoflow_not_connected",
        ),
    ],
)
def test_pod_readiness(draining: bool, workers: list[WorkerState], reason: str | None) -> None:
    assert pod_readiness(draining, workers) == reason


# ── "auto": cgroup files ────────────────────────────────────────────────────────────────


def cgroup(tmp_path: Path, self_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    self_file = tmp_path / "self"
    self_file.write_text(self_line)
    return root, self_file


@pytest.mark.parametrize(
    ("self_line", "files", "quota"),
    [
        ("0::/pod\n", {"pod/cpu.max": "50000 100000\n"}, 0.5),
        ("0::/pod\n", {"pod/cpu.max": "max 100000\n"}, None),
        ("0::/\n", {"cpu.max": "250000 100000\n"}, 2.5),
        (
            "4:cpu,cpuacct:/docker/abc\n",
            {
                "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
                "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            1.5,
        ),
        (
            "4:cpu,cpuacct:/\n",
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            None,
        ),
        ("0::/pod\n", {}, None),
    ],
)
def test_quota_cores_reads_cgroup_v2_and_v1(
    tmp_path: Path, self_line: str, files: dict[str, str], quota: float | None
) -> None:
    root, self_file = cgroup(tmp_path, self_line, files)
    assert quota_cores(root, self_file) == quota


@pytest.mark.parametrize(
    ("affinity", "quota", "cores"),
    [(8, None, 8), (8, 0.5, 1), (8, 1.5, 2), (8, 2.0, 2), (2, 4.0, 2), (4, 0.01, 1)],
)
def test_usable_cores_is_affinity_capped_by_the_quota_rounded_up(
    affinity: int, quota: float | None, cores: int
) -> None:
    assert usable_cores(affinity, quota) == cores


# ── /metrics merge ──────────────────────────────────────────────────────────────────────


def two_workers() -> tuple[BridgeMetrics, BridgeMetrics]:
    a, b = BridgeMetrics("t"), BridgeMetrics("t")
    for metrics, calls, ready in ((a, 3, True), (b, 2, False)):
        metrics.calls.labels(outcome="completed").inc(calls)
        metrics.first_audio.observe(0.3 * calls)
        metrics.track(
            active_calls=lambda n=calls: n,
            max_calls=5,
            ready=lambda r=ready: r,
            draining=lambda: False,
            connected=lambda: True,
        )
    b.calls.labels(outcome="failed").inc()
    return a, b


def value(families: Families, sample: str, **labels: str) -> float:
    key = (sample, tuple(sorted(labels.items())))
    for family in families.values():
        found = family.samples.get(key)
        if found is not None:
            return float(found)
    raise AssertionError(f"no {sample}{labels}")


def test_merge_sums_counters_histograms_and_capacity_and_keeps_the_names() -> None:
    a, b = two_workers()
    merged = parse(render(merge([parse(m.exposition().decode()) for m in (a, b)])).decode())
    assert value(merged, "callbridge_calls_total", outcome="completed") == 5
    assert value(merged, "callbridge_calls_total", outcome="failed") == 1
    assert value(merged, "callbridge_active_calls") == 5
    assert value(merged, "callbridge_max_concurrent_calls") == 10
    assert value(merged, "callbridge_first_agent_audio_seconds_count") == 2
    assert value(merged, "callbridge_first_agent_audio_seconds_bucket", le="+Inf") == 2
    # Not sums: ready only if every worker is, constant info series stay 1.
    assert value(merged, "callbridge_ready") == 0
    assert value(merged, "callbridge_info", tenant="t") == 1
    assert value(merged, "callbridge_telcoflow_connected") == 1
    single = parse(a.exposition().decode())
    assert set(single) <= set(merged)


def test_a_dead_workers_counters_stay_in_the_sum() -> None:
    a, b = two_workers()
    retired = cumulative(parse(b.exposition().decode()))
    assert "callbridge_active_calls" not in retired  # gauges leave with the worker
    reborn = BridgeMetrics("t")
    reborn.calls.labels(outcome="completed").inc()
    merged = merge([parse(a.exposition().decode()), parse(reborn.exposition().decode()), retired])
    assert value(merged, "callbridge_calls_total", outcome="completed") == 3 + 2 + 1


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("callbridge_calls", "sum"),
        ("process_resident_memory_bytes", "sum"),
        ("callbridge_ready", "min"),
        ("callbridge_calls_created", "min"),
        ("callbridge_draining", "max"),
        ("python_info", "max"),
    ],
)
def test_merge_rules(name: str, rule: str) -> None:
    assert rule_for(name) == rule


def test_check_config_names_the_workers_problem_and_shows_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from callbridge.service import config_cli

    path = tmp_path / "t.toml"
    path.write_text('tenant = "t"\n[limits]\nmax_concurrent_calls = 2\n[service]\nworkers = 4\n')
    assert config_cli.main(["--without-secrets", str(path)]) == 2
    assert "service.workers: 4 workers cannot share" in capsys.readouterr().err
    path.write_text('tenant = "t"\n[service]\nworkers = 3\n')
    assert config_cli.main(["--without-secrets", str(path)]) == 0
    assert ", 3 workers" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("in_use", "capacity", "spread_ms", "delay_s"),
    [
        (0, 4, 20.0, 0.0),  # idle: claim at once
        (1, 4, 20.0, 0.005),
        (2, 4, 200.0, 0.1),
        (4, 4, 20.0, 0.02),  # full (a reservation racing the check): the whole spread, no more
        (9, 4, 20.0, 0.02),
        (3, 4, 0.0, 0.0),  # switched off
        (3, 0, 20.0, 0.0),
    ],
)
def test_a_busier_consumer_waits_longer_before_claiming(
    in_use: int, capacity: int, spread_ms: float, delay_s: float
) -> None:
    assert claim_delay_s(in_use, capacity, spread_ms) == pytest.approx(delay_s)
