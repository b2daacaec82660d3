"""``callbridge bench``: calls per core, latency, barge-in and memory, ours vs the reference.

    callbridge bench [--calls N ...] [--seconds T] [--sweep] [--bridge ours|reference|both]

Without ``--calls`` it sweeps N = 1, 10, 50, 100, 200, 400, for each bridge until that bridge
loses real time (or the emulators do: then nothing higher can be measured). Each (N, bridge)
run starts fresh processes (``callbridge.bench.stack.ProcessStack``): both emulators pinned to one
core,
the bridge to another. The calls ramp up over up to 2 s and each lasts T seconds
(``callbridge.bench.load``). CPU and memory are taken over the steady window (all calls answered,
none
hung up yet); latencies come from the emulators' timestamps (``callbridge.bench.measure``).

Outputs: ``bench/results/latest.{json,md,png}`` (``--out`` to change), the Markdown printed.
``--profile`` re-runs our bridge at the largest N that held real time under py-spy and adds its
top costs to the report. ``--variant`` runs a prototype optimisation
(``callbridge.bench.variants``).

``--cpu-quota Q`` runs each bridge under a CFS CPU quota of Q cores (a Kubernetes CPU limit;
``callbridge.bench.cpu_limit``) and searches for the largest N it holds
(``callbridge.bench.capacity``): calls held per core = N / Q, with the throttling seen. Outputs
go to ``bench/results/cpu-quota-<Q>.{json,md,png}``. ``--no-cpu-quota`` runs the same search with
the bridge on its whole core, unthrottled (where no cgroup is writable).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callbridge.bench import capacity, cpu_limit, measure, profile, report, variants
from callbridge.bench.load import ramp_seconds
from callbridge.bench.procs import (
    Child,
    CorePlan,
    JsonDict,
    ProcSample,
    cores_busy_s,
    cpu_share,
    pin_self,
    plan_cores,
    realtime_tasks,
    sample_process,
)
from callbridge.bench.stack import BridgeKind, ProcessStack, StackOptions

SWEEP = (1, 10, 50, 100, 200, 400)
SETTLE_S = 1.0
"""After the last call is answered, wait this long before measuring (connect work settles)."""
MIN_WINDOW_S = 1.0
ANSWER_TIMEOUT_S = 200.0
RUN_OVERHEAD_S = 20.0
"""Process start-up, connect and teardown per run: used to keep a sweep within its budget."""
QUIET_WAIT_S = 120.0
"""Before rerunning a contended run, wait at most this long for other real-time work to stop."""
REFINE_STEP = 5
"""Bisection lands on multiples of this many calls."""
RESULTS = Path("bench/results")
"""Relative to the working directory, like the soak's and bench-record-hour's: `make bench` runs
from the repository root, whose `bench/results/` holds the committed figures."""

Run = dict[str, Any]


@dataclass
class BenchOptions:
    calls: list[int]
    seconds: float = 20.0
    bridges: list[BridgeKind] = field(default_factory=lambda: ["ours", "reference"])
    sweep: bool = True
    call_rate: int = 16000
    variants: list[str] = field(default_factory=lambda: ["default"])
    burst_speed: float = 4.0
    profile: bool = False
    profile_calls: int | None = None
    out: Path = RESULTS
    budget_s: float = 540.0
    keep_workdir: bool = False
    nice: int | None = -10
    realtime: bool = False
    spill: bool = False
    """Let the emulators use the bridge's idle core time (``CorePlan.spill``); needs
    ``realtime`` (the bridge's strictly higher priority is what keeps it unaffected)."""
    refine: int = 2
    cpu_quota: float | None = None
    """Cores the bridge may use (CFS quota); ``None``: its whole pinned core."""
    cpu_period_us: int = cpu_limit.PERIOD_US
    capacity: bool = False
    """Search each bridge's ceiling (``--cpu-quota``/``--no-cpu-quota`` without ``--calls``)."""
    start_calls: int | None = None

    def contenders(self) -> list[tuple[BridgeKind, str]]:
        """Each variant of our bridge, then the reference (as asked by ``bridges``)."""
        out: list[tuple[BridgeKind, str]] = []
        if "ours" in self.bridges:
            out += [("ours", v) for v in self.variants]
        if "reference" in self.bridges:
            out.append(("reference", "default"))
        return out


# ── One run ─────────────────────────────────────────────────────────────────────────────────


async def _wait_status(
    telco: Child, done: Callable[[JsonDict], bool], timeout_s: float
) -> JsonDict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await telco.request("status")
        if done(status) or time.monotonic() >= deadline:
            return status
        await asyncio.sleep(0.25)


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


def _label(kind: BridgeKind, variant: str) -> str:
    return kind if kind == "reference" or variant == "default" else f"ours ({variant})"


async def measure_run(
    options: StackOptions, seconds: float, workdir: Path, *, profile_to: Path | None = None
) -> Run:
    """Run ``options.calls`` calls of ``seconds`` through one fresh stack and measure them."""
    n = options.calls
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    async with ProcessStack(options, workdir) as stack:
        assert stack.bridge and stack.telco and stack.gemini
        bridge, telco, gemini = stack.bridge, stack.telco, stack.gemini
        await asyncio.sleep(1.0)
        idle = bridge.sample()
        ramp = ramp_seconds(n)
        await telco.request("start", calls=n, seconds=seconds, ramp_s=ramp)
        status = await _wait_status(
            telco, lambda s: s["hang_up_at"] is not None, timeout_s=ramp + ANSWER_TIMEOUT_S
        )
        answered: list[float] = status["answered_at"]
        if not answered or status["hang_up_at"] is None:
            raise RuntimeError(f"calls were not answered in time (status {status})")
        last_answer, end = max(answered), status["hang_up_at"] - 0.1
        start = max(last_answer, min(last_answer + SETTLE_S, end - MIN_WINDOW_S))
        steady = end - start >= MIN_WINDOW_S
        end = max(end, start + 0.5)
        await _sleep_until(start)
        b0, t0, g0 = bridge.sample(), telco.sample(), gemini.sample()
        busy0 = _busy(options)
        throttled0 = stack.cpu_limit.throttling() if stack.cpu_limit else None
        profiling = (
            asyncio.create_task(profile.record(bridge.pid, end - start - 0.3, profile_to))
            if profile_to is not None
            else None
        )
        peak_rss = b0.rss_bytes
        rivals = RealtimeRivals(
            options.cores, frozenset({os.getpid(), bridge.pid, telco.pid, gemini.pid})
        )
        rivals.scan()
        while time.monotonic() < end:
            await asyncio.sleep(min(0.5, max(0.0, end - time.monotonic())))
            peak_rss = max(peak_rss, bridge.sample().rss_bytes)
            rivals.scan()
        b1, t1, g1 = bridge.sample(), telco.sample(), gemini.sample()
        busy1 = _busy(options)
        limited = (
            _throttling(stack.cpu_limit, throttled0, b0, b1)
            if stack.cpu_limit and throttled0
            else None
        )
        profiled = await profiling if profiling is not None else None
        final = await _wait_status(
            telco, lambda s: s["ended"] + s["failed"] >= n, timeout_s=seconds + 60
        )
        bridge_stats = await bridge.request("stats")
        bridge_priority = bridge.priority
        await telco.request("collect", path=str(workdir / "telcoflow.json"), timeout_s=120)
        await gemini.request("collect", path=str(workdir / "gemini.json"), timeout_s=120)
    telco_data = json.loads((workdir / "telcoflow.json").read_text())
    gemini_data = json.loads((workdir / "gemini.json").read_text())
    window = measure.Window(b0.t, b1.t)
    run: Run = {
        "calls": n,
        "bridge_kind": options.bridge,
        "label": _label(options.bridge, options.variant),
        "variant": options.variant,
        "seconds": seconds,
        "steady": steady,
        **_resources(n, idle, b0, b1, peak_rss),
        "emulator_cores": {
            "telcoflow": round(cpu_share(t0, t1), 3),
            "gemini": round(cpu_share(g0, g1), 3),
        },
        "foreign_load": _foreign(options, busy0, busy1, b0, b1, [(t0, t1), (g0, g1)]),
        "foreign_realtime": rivals.cores_used(max(b1.t - b0.t, 1e-9)),
        "priority": bridge_priority,
        "cpu_limit": limited,
        "gc_in_window": _gc_in_window(bridge_stats, window),
        "stalls_in_window": _stalls_in_window(bridge_stats, window),
        "answered": final["answered"],
        "failed": final["failed"],
        "bridge_stats": bridge_stats,
        **measure.analyse(telco_data, gemini_data, window),
    }
    if profiled is not None:
        summary = profile.summarise(profiled)
        run["profile"] = {
            "file": str(profiled),
            "samples": summary["samples"],
            **{
                key: [asdict(c) for c in summary[key]]
                for key in ("by_package", "self", "inclusive")
            },
        }
    return run


class RealtimeRivals:
    """Other processes' SCHED_FIFO/RR tasks on the benchmark's cores, and the CPU they took.

    On a shared machine another benchmark run with ``--realtime`` takes a core from any normal
    process whenever it wants it; a bridge under a CFS quota must stay normal, so it then loses
    real time for reasons that are not its own. Scanned every half second over the window.
    """

    def __init__(self, cores: CorePlan, exclude: frozenset[int]) -> None:
        self._cores = {"bridge_core": cores.bridge, "emulator_core": cores.emulators}
        self._exclude = exclude
        self._cpu: dict[str, dict[int, tuple[float, float]]] = {k: {} for k in self._cores}

    def scan(self) -> None:
        for where, cores in self._cores.items():
            seen = self._cpu[where]
            for pid in realtime_tasks(cores, self._exclude):
                try:
                    cpu_s = sample_process(pid).cpu_s
                except (OSError, ValueError):
                    continue
                seen[pid] = (seen.get(pid, (cpu_s, cpu_s))[0], cpu_s)

    def cores_used(self, elapsed_s: float) -> dict[str, Any]:
        """Per core set: how many such tasks, and the cores' worth of CPU they used."""
        return {
            where: {
                "tasks": len(seen),
                "cores": round(sum(last - first for first, last in seen.values()) / elapsed_s, 3),
            }
            for where, seen in self._cpu.items()
        }


def _throttling(
    limit: cpu_limit.CpuLimit, before: cpu_limit.Throttling, b0: ProcSample, b1: ProcSample
) -> dict[str, Any]:
    """The quota and how the bridge fared against it over the steady window."""
    elapsed = max(b1.t - b0.t, 1e-9)
    seen = limit.throttling().since(before)
    return {
        "quota": limit.quota,
        "period_us": limit.period_us,
        "hierarchy": limit.controller.hierarchy,
        "quota_used": round((b1.cpu_s - b0.cpu_s) / elapsed / limit.quota, 3),
        "periods": seen.periods,
        "throttled_periods": seen.throttled,
        "throttled_share": round(seen.throttled_share, 4),
        "throttled_ms_per_s": round(seen.throttled_s / elapsed * 1000, 1),
    }


def _gc_in_window(stats: JsonDict, window: measure.Window) -> dict[str, Any] | None:
    """The bridge's garbage-collection pauses (>= 1 ms) during the steady window."""
    gc = stats.get("gc")
    if not gc:
        return None
    inside = [(gen, took) for t, gen, took in gc["pauses"] if window.start <= t < window.end]
    full = [took for gen, took in inside if gen == 2]
    return {
        "pauses": len(inside),
        "max_ms": round(max((took for _, took in inside), default=0.0) * 1000, 1),
        "full_collections": len(full),
        "frozen_objects": gc.get("frozen", 0),
    }


def _stalls_in_window(stats: JsonDict, window: measure.Window) -> dict[str, Any] | None:
    """Times the bridge's event loop was held >= ``stall_watch.STALL_S`` in the steady window
    (where: ``bridge_stats.stalls.stacks``)."""
    stalls = stats.get("stalls")
    if not stalls:
        return None
    inside = [ms for t, ms in stalls["stalls_ms"] if window.start <= t < window.end]
    return {"stalls": len(inside), "max_ms": max(inside, default=0.0)}


def _busy(options: StackOptions) -> tuple[float, float]:
    return cores_busy_s(options.cores.bridge), cores_busy_s(options.cores.emulators)


def _foreign(
    options: StackOptions,
    busy0: tuple[float, float],
    busy1: tuple[float, float],
    b0: ProcSample,
    b1: ProcSample,
    emulators: Sequence[tuple[ProcSample, ProcSample]],
) -> dict[str, float | None]:
    """Cores' worth of CPU taken by other processes on the bridge's and emulators' cores."""
    elapsed = max(b1.t - b0.t, 1e-9)
    if options.cores.shared:
        return {"bridge_core": None, "emulator_core": None}
    bridge_other = (busy1[0] - busy0[0]) - (b1.cpu_s - b0.cpu_s)
    emu_own = sum(e1.cpu_s - e0.cpu_s for e0, e1 in emulators)
    if options.cores.spill:
        # The emulators ran on both cores: only the total of everybody else is known.
        other = bridge_other + (busy1[1] - busy0[1]) - emu_own
        return {
            "bridge_core": None,
            "emulator_core": None,
            "both_cores": round(max(0.0, other) / elapsed, 3),
        }
    emu_other = (busy1[1] - busy0[1]) - emu_own
    return {
        "bridge_core": round(max(0.0, bridge_other) / elapsed, 3),
        "emulator_core": round(max(0.0, emu_other) / elapsed, 3),
    }


def _resources(n: int, idle: ProcSample, b0: ProcSample, b1: ProcSample, peak: int) -> Run:
    elapsed = max(b1.t - b0.t, 1e-9)
    cpu_s = b1.cpu_s - b0.cpu_s
    return {
        "window_start": b0.t,
        "cpu_ms_per_call_s": round(cpu_s / (n * elapsed) * 1000, 3),
        "bridge_core_share": round(cpu_s / elapsed, 3),
        "rss_idle_mb": round(idle.rss_bytes / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_mb_per_call": round((peak - idle.rss_bytes) / 2**20 / n, 3),
    }


# ── The sweep ───────────────────────────────────────────────────────────────────────────────


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} x {model}, Python {platform.python_version()}"


def describe_failure(exc: BaseException) -> str:
    """The error and the innermost line that raised it: a run failing on CI must say where."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:240]}{where}"


def _progress(run: Run) -> str:
    if run.get("error"):
        return f"N={run['calls']:>4} {run['label']:<12} failed: {run['error']}"
    c2m = run["caller_to_model_ms"]
    return (
        f"N={run['calls']:>4} {run['label']:<12} {report._verdict(run):<24} "
        f"cpu {run['cpu_ms_per_call_s']:.2f} ms/call-s ({run['bridge_core_share'] * 100:.0f} %)"
        f"  c→m p50/p99 {c2m['p50']}/{c2m['p99']} ms  window {run['window_s']:.1f} s"
    )


class Sweep:
    """Runs (N, contender) pairs within the time budget and remembers what held real time."""

    def __init__(
        self,
        options: BenchOptions,
        workroot: Path,
        cores: CorePlan,
        controller: cpu_limit.CpuController | None = None,
    ) -> None:
        self.options = options
        self.controller = controller
        self.workroot = workroot
        self.cores = cores
        self.began = time.monotonic()
        self.runs: list[Run] = []
        self.skipped: list[str] = []
        self.reruns: list[str] = []

    def _fits(self, n: int) -> bool:
        estimate = self.options.seconds + ramp_seconds(n) + RUN_OVERHEAD_S
        return time.monotonic() - self.began + estimate <= self.options.budget_s

    async def run(self, n: int, kind: BridgeKind, variant: str) -> Run | None:
        """One measured run; None (and a note) when the time budget does not allow it."""
        label = _label(kind, variant)
        if not self._fits(n):
            self.skipped.append(f"N={n} {label}: time budget ({self.options.budget_s:.0f} s)")
            return None
        stack_options = StackOptions(
            bridge=kind,
            calls=n,
            call_rate=self.options.call_rate,
            variant=variant,
            burst_speed=self.options.burst_speed,
            nice=self.options.nice,
            realtime=self.options.realtime,
            cores=self.cores,
            cpu_quota=self.options.cpu_quota,
            cpu_period_us=self.options.cpu_period_us,
            cpu_controller=self.controller,
        )
        workdir = self.workroot / f"{label.replace(' ', '_')}-{n}"
        try:
            run = await measure_run(stack_options, self.options.seconds, workdir)
        except cpu_limit.CpuLimitError:
            raise
        except Exception as exc:
            run = {"calls": n, "bridge_kind": kind, "label": label, "error": describe_failure(exc)}
        self.runs.append(run)
        print(_progress(run), file=sys.stderr, flush=True)
        return run

    async def sweep(self) -> None:
        """Every N in turn; a contender stops at its first loss, everyone when the emulators do."""
        lost: set[str] = set()
        for n in self.options.calls:
            emulator_lost = False
            for kind, variant in self.options.contenders():
                if _label(kind, variant) in lost:
                    continue
                run = await self.run(n, kind, variant)
                if run is None:
                    continue
                if run.get("error") or not run["bridge"]["held"]:
                    lost.add(run["label"])
                if not run.get("error") and not run["emulator"]["held"]:
                    emulator_lost = True
            if emulator_lost:
                self.skipped.append(f"N>{n}: the emulators lost real time at N={n}")
                return

    async def ceiling(self, kind: BridgeKind, variant: str, start: int) -> None:
        """Search one contender's largest N held (``capacity.CeilingSearch``)."""
        search = capacity.CeilingSearch(start)
        while (n := search.next()) is not None:
            run = await self.run(n, kind, variant)
            if run is None:
                return
            result = capacity.outcome(run)
            if capacity.contended(run):
                # Other processes' real-time work took the core that lost: when it has
                # stopped (or after a while), once more; the better of the two counts.
                waited = await self._quiet()
                self.reruns.append(f"N={n} {run['label']} (after {waited:.0f} s)")
                again = await self.run(n, kind, variant)
                if again is not None:
                    result = capacity.better(result, capacity.outcome(again))
            search.record(n, result)

    async def _quiet(self, most_s: float = QUIET_WAIT_S, probe_s: float = 2.0) -> float:
        """Wait until other processes' real-time tasks take < 0.1 core of either core."""
        began = time.monotonic()
        while time.monotonic() - began < most_s:
            rivals = RealtimeRivals(self.cores, frozenset({os.getpid()}))
            rivals.scan()
            await asyncio.sleep(probe_s)
            rivals.scan()
            used = rivals.cores_used(probe_s)
            if all(u["cores"] < capacity.RIVAL_CORES for u in used.values()):
                break
        return time.monotonic() - began

    async def refine(self, steps: int) -> None:
        """Bisect between each contender's largest held N and the smallest N it lost at."""
        for kind, variant in self.options.contenders():
            label = _label(kind, variant)
            for _ in range(steps):
                mine = [r for r in self.runs if r["label"] == label and not r.get("error")]
                held = [r["calls"] for r in mine if r["bridge"]["held"] and r["emulator"]["held"]]
                lost = [
                    r["calls"]
                    for r in mine
                    if not r["bridge"]["held"]
                    and r["emulator"]["held"]
                    and r["calls"] > max(held, default=0)
                ]
                if not held or not lost:
                    break
                low, high = max(held), min(lost)
                middle = round((low + high) / 2 / REFINE_STEP) * REFINE_STEP
                if middle in (low, high):
                    break
                run = await self.run(middle, kind, variant)
                if run is None or run.get("error") or not run["emulator"]["held"]:
                    break


async def bench(options: BenchOptions, workroot: Path) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = _load_average()
    cores = plan_cores(spill=options.spill)
    pin_self(cores.emulators)
    controller = None
    if options.cpu_quota is not None:
        controller = cpu_limit.check(options.cpu_quota, options.cpu_period_us)
    sweeper = Sweep(options, workroot, cores, controller)
    if options.capacity:
        quota = options.cpu_quota or 1.0
        for kind, variant in options.contenders():
            await sweeper.ceiling(kind, variant, options.start_calls or capacity.start_calls(quota))
    else:
        await sweeper.sweep()
    if options.sweep and options.refine and not options.capacity:
        await sweeper.refine(options.refine)
    order = {label: i for i, label in enumerate(report.labels(sweeper.runs))}
    runs = sorted(sweeper.runs, key=lambda r: (r["calls"], order[r["label"]]))
    skipped = sweeper.skipped
    began = sweeper.began
    result: dict[str, Any] = {
        "meta": {
            "started": started,
            "machine": _machine(),
            "cores": cores.describe(),
            "seconds": options.seconds,
            "call_rate": options.call_rate,
            "burst_speed": options.burst_speed,
            "variants": options.variants,
            "scheduling": (
                ("SCHED_RR" if options.cpu_quota is None else "SCHED_RR emulators")
                if options.realtime
                else "normal"
            )
            + (", bridge above the emulators, which may use its idle core" if options.spill else "")
            + (f", nice {options.nice}" if options.nice else ""),
            "commit": _git_commit(),
            "sweep": list(options.calls),
            "skipped": skipped,
            "reruns": sweeper.reruns,
            "criteria": {
                "late_s": measure.LATE_S,
                "max_late_share": measure.MAX_LATE_SHARE,
                "settle_s": SETTLE_S,
            },
        },
        "runs": runs,
    }
    if options.cpu_quota is not None or options.capacity:
        result["meta"]["cpu_limit"] = _limit_meta(options, controller)
        result["capacity"] = [
            capacity.ceiling([r for r in runs if r["label"] == label], options.cpu_quota)
            for label in order  # as run: ours first
        ]
    if options.profile:
        result["profile"] = await _profile(options, runs, workroot, cores)
    result["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)
    result["meta"]["load_average"] = {"start": load_before, "end": _load_average()}
    return result


def _load_average() -> list[float]:
    """``uptime``'s 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def _limit_meta(
    options: BenchOptions, controller: cpu_limit.CpuController | None
) -> dict[str, Any]:
    if options.cpu_quota is None or controller is None:
        return {"quota": None, "note": "no quota: the bridge had its whole pinned core"}
    return {
        "quota": options.cpu_quota,
        "period_us": options.cpu_period_us,
        "quota_us": cpu_limit.quota_us(options.cpu_quota, options.cpu_period_us),
        "hierarchy": controller.hierarchy,
        "root": str(controller.root),
    }


async def _profile(
    options: BenchOptions, runs: Sequence[Run], workroot: Path, cores: CorePlan
) -> Run:
    held = [
        r["calls"]
        for r in runs
        if r["label"] == _label("ours", options.variants[0])
        and not r.get("error")
        and r["bridge"]["held"]
        and r["emulator"]["held"]
    ]
    n = options.profile_calls or (max(held) if held else None)
    if n is None:
        return {"error": "no N held real time for our bridge"}
    if profile.py_spy() is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    stack_options = StackOptions(
        bridge="ours",
        calls=n,
        call_rate=options.call_rate,
        variant=options.variants[0],
        burst_speed=options.burst_speed,
        nice=options.nice,
        realtime=options.realtime,
        cores=cores,
    )
    workdir = workroot / f"profile-{n}"
    run = await measure_run(
        stack_options, options.seconds, workdir, profile_to=workdir / "pyspy.txt"
    )
    print(_progress(run), file=sys.stderr, flush=True)
    return {"calls": n, **run.get("profile", {"error": "py-spy produced nothing"})}


# ── CLI ─────────────────────────────────────────────────────────────────────────────────────


def parse(argv: Sequence[str]) -> BenchOptions:
    parser = argparse.ArgumentParser(
        prog="callbridge bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, action="append", help="N (repeatable); no sweep")
    parser.add_argument("--seconds", type=float, default=20.0, help="each call's length (T)")
    parser.add_argument("--sweep", action="store_true", help="N = 1,10,50,100,200,400 (default)")
    parser.add_argument("--bridge", choices=("ours", "reference", "both"), default="both")
    parser.add_argument("--call-rate", type=int, choices=(8000, 16000, 24000), default=16000)
    parser.add_argument(
        "--variant",
        action="append",
        help="our bridge with prototype(s) joined by +, repeatable (each runs as its own "
        "contender; default: as shipped): " + ", ".join(variants.VARIANTS),
    )
    parser.add_argument("--burst-speed", type=float, default=4.0)
    parser.add_argument("--profile", action="store_true", help="py-spy our bridge afterwards")
    parser.add_argument("--profile-calls", type=int, help="N to profile at (default: largest held)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.* are written")
    parser.add_argument(
        "--budget-s", type=float, help="stop starting runs after (default 540; 1200 with a quota)"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and raw data")
    parser.add_argument(
        "--refine", type=int, default=2, help="bisection steps between held and lost N (sweep)"
    )
    parser.add_argument(
        "--nice", type=int, default=-10, help="priority of benchmark processes (root; 0: leave)"
    )
    parser.add_argument(
        "--realtime", action="store_true", help="SCHED_RR for benchmark processes (busy machine)"
    )
    parser.add_argument(
        "--emulators-spill",
        action="store_true",
        help="with --realtime: the emulators may also run on the bridge's core while the "
        "bridge leaves it idle, at a lower priority than the bridge (a load generator that "
        "needs more than its one core, e.g. 100 calls on a 2-core machine)",
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument(
        "--cpu-quota",
        type=float,
        metavar="CORES",
        help="run each bridge under a CFS CPU quota of CORES (0 < CORES <= 1; a Kubernetes CPU "
        "limit) and, without --calls, search for the largest N it holds",
    )
    limit.add_argument(
        "--no-cpu-quota",
        action="store_true",
        help="the same search with the bridge on its whole core, unthrottled",
    )
    parser.add_argument(
        "--cpu-period-ms", type=float, default=100.0, help="CFS period with --cpu-quota"
    )
    parser.add_argument("--start-calls", type=int, help="first N of the ceiling search")
    args = parser.parse_args(argv)
    period_us = round(args.cpu_period_ms * 1000)
    if args.cpu_quota is not None:
        try:
            cpu_limit.quota_us(args.cpu_quota, period_us)
        except ValueError as exc:
            parser.error(str(exc))
        if args.profile:
            parser.error("--profile runs unthrottled: run it without --cpu-quota")
    if args.emulators_spill and (not args.realtime or args.cpu_quota is not None):
        parser.error(
            "--emulators-spill needs --realtime and no --cpu-quota: only a real-time bridge "
            "at a higher priority is sure to take its core back from the emulators at once"
        )
    capacity_mode = (args.cpu_quota is not None or args.no_cpu_quota) and not args.calls
    sweep = not capacity_mode and (args.sweep or not args.calls)
    calls = sorted(set(args.calls or [])) if not sweep else list(SWEEP)
    bridges: list[BridgeKind] = ["ours", "reference"] if args.bridge == "both" else [args.bridge]
    if capacity_mode:
        calls = []
    if any(n < 1 for n in calls) or args.seconds <= 0 or (args.start_calls or 1) < 1:
        parser.error("--calls and --seconds must be positive")
    chosen = args.variant or ["default"]
    try:
        for name in chosen:
            variants.parse(name)
    except ValueError as exc:
        parser.error(str(exc))
    return BenchOptions(
        calls=calls,
        seconds=args.seconds,
        bridges=bridges,
        sweep=sweep,
        call_rate=args.call_rate,
        variants=chosen,
        burst_speed=args.burst_speed,
        profile=args.profile,
        profile_calls=args.profile_calls,
        out=args.out,
        budget_s=args.budget_s or (1200.0 if capacity_mode else 540.0),
        keep_workdir=args.keep_workdir,
        nice=args.nice or None,
        realtime=args.realtime,
        spill=args.emulators_spill,
        refine=max(0, args.refine),
        cpu_quota=args.cpu_quota,
        cpu_period_us=period_us,
        capacity=capacity_mode,
        start_calls=args.start_calls,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(list(sys.argv[1:] if argv is None else argv))
    workroot = Path(tempfile.mkdtemp(prefix="callbridge-bench-"))
    try:
        result = asyncio.run(bench(options, workroot))
    except KeyboardInterrupt:
        print(f"interrupted; logs in {workroot}", file=sys.stderr)
        return 130
    except cpu_limit.CpuLimitError as exc:
        print(f"callbridge bench: {exc}", file=sys.stderr)
        shutil.rmtree(workroot, ignore_errors=True)
        return 2
    stem = (
        f"cpu-quota-{options.cpu_quota:g}"
        if options.cpu_quota is not None
        else "capacity-unthrottled"
        if options.capacity
        else "latest"
    )
    paths = report.write(result, options.out, stem=stem)
    print(report.markdown(result))
    print(f"written: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    failed = any(r.get("error") for r in result["runs"])
    if options.keep_workdir or failed:
        print(f"logs and raw data: {workroot}", file=sys.stderr)
    else:
        shutil.rmtree(workroot, ignore_errors=True)
    return 1 if failed or not result["runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
