"""The CPU quota for ``callbridge bench --cpu-quota``: detection, parsing, the group's files.

Detection and the files a group gets are checked against temporary directories laid out like
each hierarchy (v2 unified, v1 ``cpu``, the hybrid of both). One test uses the machine's real
cgroup, and is skipped where no writable cpu controller exists (not root, read-only container).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callbridge.bench import cpu_limit, procs
from callbridge.bench.cpu_limit import CpuController, CpuLimit, CpuLimitError, Throttling
from callbridge.bench.run import RealtimeRivals

V1_STAT = "nr_periods 120\nnr_throttled 30\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n"
V2_STAT = (
    "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 80\nnr_throttled 8\n"
    "throttled_usec 250000\nnr_bursts 0\nburst_usec 0\n"
)


@pytest.mark.parametrize(
    ("text", "hierarchy", "expected"),
    [
        (V1_STAT, "v1", Throttling(120, 30, 1.5)),
        (V2_STAT, "v2", Throttling(80, 8, 0.25)),
        ("nr_periods 0\nnr_throttled 0\nthrottled_time 0\n", "v1", Throttling(0, 0, 0.0)),
    ],
)
def test_cpu_stat_is_parsed_per_hierarchy(text: str, hierarchy: str, expected: Throttling) -> None:
    assert cpu_limit.parse_cpu_stat(text, hierarchy) == expected  # type: ignore[arg-type]


def test_cpu_stat_without_the_counters_is_refused() -> None:
    with pytest.raises(ValueError, match="nr_periods"):
        cpu_limit.parse_cpu_stat("usage_usec 5\n", "v2")


def test_throttling_difference_and_share() -> None:
    later, earlier = Throttling(150, 40, 2.0), Throttling(100, 30, 1.5)
    delta = later.since(earlier)
    assert delta == Throttling(50, 10, 0.5)
    assert delta.throttled_share == pytest.approx(0.2)
    assert Throttling(0, 0, 0.0).throttled_share == 0.0


HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
proc /proc proc rw 0 0
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HYBRID,
            [
                ("v1", "/sys/fs/cgroup/cpu,cpuacct", True),
                ("v1", "/sys/fs/cgroup/memory", False),
                ("v2", "/sys/fs/cgroup/unified", False),
            ],
        ),
        ("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n", [("v2", "/sys/fs/cgroup", False)]),
        ("cgroup /mnt/my\\040cg cgroup rw,cpu 0 0\n", [("v1", "/mnt/my cg", True)]),
        ("proc /proc proc rw 0 0\nbroken line\n", []),
    ],
)
def test_cgroup_mounts_are_read_from_proc_mounts(
    text: str, expected: list[tuple[str, str, bool]]
) -> None:
    found = [(m.hierarchy, str(m.path), "cpu" in m.options) for m in cpu_limit.cgroup_mounts(text)]
    assert found == expected


@pytest.mark.parametrize(
    ("quota", "period_us", "expected"),
    [
        (0.25, 100_000, 25_000),
        (0.5, 100_000, 50_000),
        (1.0, 100_000, 100_000),
        (0.5, 20_000, 10_000),
    ],
)
def test_quota_in_microseconds_per_period(quota: float, period_us: int, expected: int) -> None:
    assert cpu_limit.quota_us(quota, period_us) == expected


@pytest.mark.parametrize(
    ("quota", "message"), [(0, "in \\(0, 1\\]"), (1.5, "in \\(0, 1\\]"), (0.005, "below 1 ms")]
)
def test_unusable_quotas_are_refused(quota: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cpu_limit.quota_us(quota)


@pytest.mark.parametrize(("nice", "shares"), [(0, 1024), (-10, 9537), (5, 336), (-40, 262_144)])
def test_v1_shares_follow_the_kernel_weight_of_a_nice_value(nice: int, shares: int) -> None:
    assert cpu_limit.shares_for_nice(nice) == shares


# ── Temporary hierarchies ───────────────────────────────────────────────────────────────────


def _v2_root(tmp: Path, controllers: str) -> Path:
    root = tmp / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    (root / "cgroup.procs").write_text("")
    return root


def _v1_root(tmp: Path) -> Path:
    root = tmp / "cpu,cpuacct"
    root.mkdir()
    for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cgroup.procs", "cpu.shares"):
        (root / name).write_text("")
    return root


def test_unified_hierarchy_with_cpu_is_chosen(tmp_path: Path) -> None:
    root = _v2_root(tmp_path, "cpuset cpu io memory pids")
    mounts = f"cgroup2 {root} cgroup2 rw,nosuid,nodev,noexec 0 0\n"
    assert cpu_limit.detect(mounts) == CpuController("v2", root)


def test_hybrid_host_uses_v1_when_unified_has_no_cpu(tmp_path: Path) -> None:
    v2 = _v2_root(tmp_path, "")
    v1 = _v1_root(tmp_path)
    mounts = (
        f"cgroup2 {v2} cgroup2 rw,relatime 0 0\n"
        f"cgroup {v1} cgroup rw,relatime,cpu,cpuacct 0 0\n"
        f"cgroup {tmp_path / 'memory'} cgroup rw,relatime,memory 0 0\n"
    )
    assert cpu_limit.detect(mounts) == CpuController("v1", v1)


def test_no_cpu_controller_says_what_to_do(tmp_path: Path) -> None:
    v2 = _v2_root(tmp_path, "memory pids")
    with pytest.raises(CpuLimitError) as caught:
        cpu_limit.detect(f"cgroup2 {v2} cgroup2 rw 0 0\n")
    message = str(caught.value)
    assert "run as root" in message and "writable cgroup" in message
    assert "--no-cpu-quota" in message and f"v2 at {v2}" in message


def test_v2_group_gets_cpu_max_weight_and_the_pid(tmp_path: Path) -> None:
    root = _v2_root(tmp_path, "cpu")
    limit = CpuLimit(CpuController("v2", root), 0.25, nice=-10, name="g")
    limit.create()
    assert (root / "cgroup.subtree_control").read_text() == "+cpu"
    assert (root / "g" / "cpu.max").read_text() == "25000 100000"
    assert (root / "g" / "cpu.weight.nice").read_text() == "-10"
    limit.add(4242)
    assert limit.pids() == [4242]
    (root / "g" / "cpu.stat").write_text(V2_STAT)
    assert limit.throttling() == Throttling(80, 8, 0.25)


def test_v1_group_gets_period_quota_and_shares(tmp_path: Path) -> None:
    root = _v1_root(tmp_path)
    limit = CpuLimit(CpuController("v1", root), 0.5, nice=-10, name="g")
    limit.create()
    group = root / "g"
    assert (group / "cpu.cfs_period_us").read_text() == "100000"
    assert (group / "cpu.cfs_quota_us").read_text() == "50000"
    assert (group / "cpu.shares").read_text() == "9537"
    assert "cgroup v1" in limit.describe() and "0.5 core" in limit.describe()


def test_unwritable_hierarchy_fails_with_the_remedy(tmp_path: Path) -> None:
    missing = CpuController("v1", tmp_path / "not-mounted")
    with pytest.raises(CpuLimitError, match="--no-cpu-quota"):
        CpuLimit(missing, 0.5).create()
    v2_without_control = CpuController("v2", tmp_path)
    with pytest.raises(CpuLimitError, match="run as root"):
        CpuLimit(v2_without_control, 0.5).create()


# ── The real thing ──────────────────────────────────────────────────────────────────────────


def _real_controller() -> CpuController:
    try:
        return cpu_limit.check(0.5)
    except CpuLimitError as exc:
        pytest.skip(f"no writable cpu cgroup here: {exc}")


def test_real_quota_caps_a_busy_process_and_the_group_is_removed() -> None:
    controller = _real_controller()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {min(os.sched_getaffinity(0))})
        with CpuLimit(controller, 0.2, nice=-10) as limit:
            limit.add(busy.pid)
            assert limit.pids() == [busy.pid]
            time.sleep(0.3)
            before, start = limit.throttling(), procs.sample_process(busy.pid)
            time.sleep(1.5)
            share = procs.cpu_share(start, procs.sample_process(busy.pid))
            throttled = limit.throttling().since(before)
        # The process is still running: leaving the block moved it out and removed the group.
        assert busy.poll() is None
        assert not limit.path.exists()
    finally:
        busy.kill()
        busy.wait()
    assert share <= 0.2 * 1.1 + 0.02, f"a 0.2 core quota let the process use {share:.2f}"
    assert throttled.periods >= 10 and throttled.throttled > 0, throttled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4242 (python3) S 17 " + "0 " * 34 + "3 0 2 0 0 0", (17, 2)),
        ("99 (odd name) with spaces) R 1 " + "0 " * 34 + "0 0 0 0", (1, 0)),
    ],
)
def test_parent_and_policy_from_proc_stat(text: str, expected: tuple[int, int]) -> None:
    assert procs.stat_policy(text) == expected


def test_a_foreign_real_time_task_on_the_core_is_found() -> None:
    core = min(os.sched_getaffinity(0))
    task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.sched_setaffinity(task.pid, {core})
        try:
            os.sched_setscheduler(task.pid, os.SCHED_RR, os.sched_param(1))
        except PermissionError:
            pytest.skip("setting SCHED_RR needs root")
        assert task.pid in procs.realtime_tasks(frozenset({core}), frozenset())
        assert task.pid not in procs.realtime_tasks(frozenset({core}), frozenset({task.pid}))
        plan = procs.CorePlan(frozenset({core}), frozenset({core}))
        rivals = RealtimeRivals(plan, frozenset({os.getpid()}))
        rivals.scan()
        rivals.scan()
        used = rivals.cores_used(1.0)
        assert used["bridge_core"]["tasks"] >= 1 and used["emulator_core"]["tasks"] >= 1
        assert 0 <= used["bridge_core"]["cores"] < 0.5, "a sleeping task takes next to nothing"
    finally:
        task.kill()
        task.wait()
