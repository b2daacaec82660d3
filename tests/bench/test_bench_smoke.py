"""The benchmark end to end at toy size (N=2, T=3 s, both bridges), and its measures.

No figure is asserted: timings depend on the machine. What is checked is that every process
starts, every call is bridged and matched, and the report has the shape the README and the
lead's tooling read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from callbridge.bench import cpu_limit, measure, procs, report, run
from callbridge.bench.load import find_call_tag, tag_instruction

RUN_KEYS = {
    "calls",
    "bridge_kind",
    "label",
    "cpu_ms_per_call_s",
    "bridge_core_share",
    "rss_mb_per_call",
    "caller_to_model_ms",
    "model_to_call_ms",
    "barge_in_ms",
    "stale_after_interrupt_ms",
    "underruns",
    "answer_delay_ms",
    "emulator",
    "bridge",
    "foreign_load",
}


async def test_small_run_of_both_bridges_writes_a_complete_report(tmp_path: Path) -> None:
    options = run.parse(
        ["--calls", "2", "--seconds", "3", "--bridge", "both", "--out", str(tmp_path / "out")]
    )
    options.nice = None  # leave the test machine's priorities alone
    result = await run.bench(options, tmp_path / "work")
    paths = report.write(result, options.out)

    runs = result["runs"]
    assert [r["label"] for r in runs] == ["ours", "reference"], runs
    for r in runs:
        assert "error" not in r, r.get("error")
        assert set(r) >= RUN_KEYS, RUN_KEYS - set(r)
        assert r["calls"] == 2 and r["answered"] == 2 and r["failed"] == 0
        assert r["bridge"]["calls_matched"] == 2, "every call paired with its model session"
        assert r["caller_to_model_ms"]["n"] > 0
        assert r["caller_to_model_misaligned"] == 0
        assert r["cpu_ms_per_call_s"] > 0
        assert isinstance(r["emulator"]["held"], bool) and isinstance(r["bridge"]["held"], bool)

    saved = json.loads(paths["json"].read_text())
    assert saved["meta"]["seconds"] == 3 and len(saved["runs"]) == 2
    table = paths["md"].read_text()
    assert "| N | bridge | real time |" in table and "Ratios, ours / reference" in table
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_caller_samples_are_matched_across_a_rate_change() -> None:
    # 8 kHz call (320 B frames every 20 ms), model fed 16 kHz in 40 ms chunks arriving 5 ms
    # after the frame holding their last sample was sent.
    sent = [10.0 + 0.02 * k for k in range(100)]
    chunks = [[10.0 + 0.02 * (2 * j + 1) + 0.005, 1280.0] for j in range(50)]
    latency, misaligned = measure.caller_to_model(
        sent, 320, 8000, chunks, 16000, measure.Window(0, 100)
    )
    assert misaligned == 0
    assert latency.size > 0
    assert np.allclose(latency, 0.005)


def test_pump_lateness_is_against_the_ideal_schedule() -> None:
    _times, late = measure.pump_lateness([1.0, 1.02, 1.07, 1.075])
    assert np.allclose(late, [0.0, 0.0, 0.03, 0.015])
    assert measure.late_share(late) == 0.25


def test_barge_in_pairs_interrupt_command_and_counts_stale_audio() -> None:
    pulls = np.array([[4.99, 640.0], [5.01, 640.0], [5.03, 640.0], [6.5, 640.0]])
    found = measure.barge_ins([5.0], [5.004], pulls, [6.4], 16000, measure.Window(0, 10))
    assert found.missing == 0
    assert np.isclose(found.to_interrupt_s[0], 0.004)
    assert np.isclose(found.stale_ms[0], 40.0)  # two 20 ms frames before the next turn


def test_model_to_call_skips_turns_that_start_while_audio_still_flows() -> None:
    pulls = np.array([1.0, 1.02, 3.005, 3.03])
    latency, skipped = measure.model_to_call([1.01, 3.0], pulls, measure.Window(0, 10))
    assert skipped == 1
    assert np.allclose(latency, [0.005])


def test_the_call_tag_round_trips_through_a_system_instruction() -> None:
    text = tag_instruction("Be brief.", "call-0123abcd")
    assert find_call_tag(json.dumps({"system_instruction": {"parts": [{"text": text}]}})) == (
        "call-0123abcd"
    )


def test_autogroup_reading_tolerates_an_empty_file() -> None:
    # With autogroup scheduling off, /proc/<pid>/autogroup reads empty.
    assert procs.autogroup_nice("/autogroup-1020 nice -5\n") == "-5"
    assert procs.autogroup_nice("") is None
    assert procs.autogroup_nice("garbage") is None


def test_a_failed_run_names_the_line_that_failed() -> None:
    try:
        _ = [][0]
    except IndexError as exc:
        text = run.describe_failure(exc)
    assert text.startswith("IndexError: list index out of range (at ")
    assert "test_bench_smoke.py:" in text


async def test_small_run_under_a_cpu_quota_reports_throttling_and_removes_its_group(
    tmp_path: Path,
) -> None:
    try:
        cpu_limit.check(0.5)
    except cpu_limit.CpuLimitError as exc:
        pytest.skip(f"no writable cpu cgroup here: {exc}")
    options = run.parse(
        ["--cpu-quota", "0.5", "--calls", "2", "--seconds", "3", "--out", str(tmp_path / "out")]
    )
    options.nice = None
    result = await run.bench(options, tmp_path / "work")
    paths = report.write(result, options.out, stem="cpu-quota")

    assert result["meta"]["cpu_limit"]["quota_us"] == 50_000
    assert [c["label"] for c in result["capacity"]] == ["ours", "reference"]
    for r in result["runs"]:
        assert "error" not in r, r.get("error")
        limited = r["cpu_limit"]
        assert limited["quota"] == 0.5 and limited["periods"] > 0
        assert 0 < limited["quota_used"] <= 1.1
    leftovers = list(cpu_limit.detect().root.glob(f"{cpu_limit.GROUP_PREFIX}-{os.getpid()}-*"))
    assert leftovers == [], "every run's cgroup is removed"
    table = paths["md"].read_text()
    assert "calls held per core" in table and "CPU quota 0.5 core" in table
    assert paths["json"].name == "cpu-quota.json"


def test_cpu_quota_mode_without_calls_searches_and_with_calls_does_not() -> None:
    searching = run.parse(["--cpu-quota", "0.25"])
    assert searching.capacity and searching.calls == [] and not searching.sweep
    assert searching.budget_s == 1200.0
    fixed = run.parse(["--cpu-quota", "0.25", "--calls", "20"])
    assert not fixed.capacity and fixed.calls == [20] and fixed.cpu_quota == 0.25
    unthrottled = run.parse(["--no-cpu-quota"])
    assert unthrottled.capacity and unthrottled.cpu_quota is None


def test_emulators_spill_needs_a_real_time_bridge_without_a_quota(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run.parse(["--calls", "2", "--realtime", "--emulators-spill"]).spill
    for argv in (["--emulators-spill"], ["--realtime", "--emulators-spill", "--cpu-quota", "0.5"]):
        with pytest.raises(SystemExit) as stopped:
            run.parse(["--calls", "2", *argv])
        assert stopped.value.code == 2
        assert "--emulators-spill needs --realtime and no --cpu-quota" in capsys.readouterr().err


def test_spilling_emulators_may_run_on_the_bridge_core_and_the_bridge_never_on_theirs() -> None:
    plan = procs.CorePlan(frozenset({0}), frozenset({1}), spill=True)
    assert plan.emulator_affinity == {0, 1} and plan.bridge == {1} and not plan.shared
    assert procs.CorePlan(frozenset({0}), frozenset({1})).emulator_affinity == {0}
    assert "idle" in plan.describe()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
async def test_a_spilled_run_puts_the_bridge_above_the_emulators(tmp_path: Path) -> None:
    options = run.parse(
        ["--calls", "2", "--seconds", "3", "--bridge", "ours", "--realtime", "--emulators-spill"]
    )
    options.nice = None
    result = await run.bench(options, tmp_path / "work")
    (r,) = result["runs"]
    assert "error" not in r, r.get("error")
    assert r["answered"] == 2 and r["bridge"]["calls_matched"] == 2
    assert r["foreign_load"]["bridge_core"] is None and r["foreign_load"]["both_cores"] >= 0
    assert (
        "idle" in result["meta"]["cores"] and "above the emulators" in result["meta"]["scheduling"]
    )
    if os.geteuid() == 0:  # only root may use SCHED_RR: the bridge one step above the emulators
        assert r["priority"].startswith(f"SCHED_RR {procs.RT_PRIORITY + 1},"), r["priority"]
