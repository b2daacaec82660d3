"""``callbridge soak``: thousands of calls through one bridge process, watching for growth.

The load (both emulators) runs in a child process (``callbridge.bench.soak_load``); this process
runs one
real bridge (``BridgeApp``) against it and samples its own resident memory, open file
descriptors and asyncio task count as calls complete. The report gives calls offered /
answered / completed, the samples, the slope of each resource per 100 completed calls after
warm-up (least squares), and every warning or error the bridge logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from callbridge.bench import load_child
from callbridge.bench.soak_load import API_KEY, CONNECTOR
from callbridge.bridge.config import load_config
from callbridge.bridge.record import CallRecord
from callbridge.bridge.warnings import BridgeWarning
from callbridge.service import loop
from callbridge.service.app import BridgeApp
from callbridge.service.logs import configure_logging

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Sample:
    t: float
    completed: int
    rss_mib: float
    fds: int
    tasks: int
    live_calls: int


@dataclass
class SoakReport:
    offered: int = 0
    answered: int = 0
    completed: int = 0
    bridge_outcomes: dict[str, int] = field(default_factory=dict)
    caller_side_outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    slopes_per_100_calls: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unusual_calls: list[dict[str, Any]] = field(default_factory=list)


def slope_per_100(samples: list[Sample], attr: str, warmup_calls: int) -> float:
    """Least-squares slope of ``attr`` against completed calls, times 100, after warm-up.

    Only steady-state samples count (at least 90 % of the peak number of live calls): the
    ramp-down at the end would otherwise read as shrinking tasks and descriptors.
    """
    peak = max((s.live_calls for s in samples), default=0)
    points = [
        (s.completed, float(getattr(s, attr)))
        for s in samples
        if s.completed >= warmup_calls and s.live_calls >= 0.9 * peak
    ]
    if len(points) < 3:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var * 100


class FinishedCalls:
    """Outcome counts, plus the timeline tail of a few calls per outcome (bounded)."""

    def __init__(self, per_outcome: int = 3) -> None:
        self.count = 0
        self.completed = 0
        self.outcomes: Counter[str] = Counter()
        self.samples: dict[str, deque[dict[str, Any]]] = {}
        self._per_outcome = per_outcome

    def add(self, record: CallRecord) -> None:
        self.count += 1
        self.completed += record.ended_at is not None
        self.outcomes[record.outcome] += 1
        tail = [{"t": e.t, "kind": e.kind, **e.data} for e in record.entries[-12:]]
        samples = self.samples.setdefault(record.outcome, deque(maxlen=self._per_outcome))
        samples.append({"call_id": record.call_id, "outcome": record.outcome, "last_entries": tail})


class ErrorLog(logging.Handler):
    """Keeps every error-level event: a structlog processor and a stdlib logging handler."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: list[str] = []

    def __call__(self, _: Any, method: str, event: Any) -> Any:
        if method in ("error", "exception", "critical"):
            self.errors.append(f"{event.get('event')}: {event.get('error', '')}"[:300])
        return event

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"{record.name}: {record.getMessage()}"[:300])


async def soak(args: argparse.Namespace) -> SoakReport:
    report = SoakReport()
    warnings: Counter[str] = Counter()
    # Only a summary per call: keeping whole records would make the harness itself grow.
    calls = FinishedCalls()
    child = await load_child.spawn(
        "callbridge.bench.soak_load",
        [
            "--calls",
            str(args.calls),
            "--concurrent",
            str(args.concurrent),
            "--rate",
            str(args.rate),
        ],
    )
    assert child.stdout is not None
    try:
        ready = (await load_child.read_message(child.stdout))["ready"]
        config = load_config(
            overrides={
                "tenant": "soak",
                **load_child.emulator_sections(ready, api_key=API_KEY, connector=CONNECTOR),
                "tools": {"custom": {"lookup_order": "callbridge.bench.soak_tools:lookup_order"}},
                "limits": {"max_concurrent_calls": args.concurrent + 10},
            },
            env={},
        )

        def on_warning(warning: BridgeWarning) -> None:
            warnings[warning.code.value] += 1

        app = BridgeApp(
            config,
            warning_handlers=[on_warning],
            on_call_finished=lambda record, _bridged: calls.add(record),
        )
        started = time.monotonic()

        async def sample_until_done() -> dict[str, Any]:
            done_task = asyncio.ensure_future(load_child.read_message(child.stdout))  # type: ignore[arg-type]
            try:
                while True:
                    finished, _ = await asyncio.wait({done_task}, timeout=args.sample_s)
                    report.samples.append(
                        Sample(
                            round(time.monotonic() - started, 1),
                            calls.count,
                            round(rss_mib(), 2),
                            open_fds(),
                            len(asyncio.all_tasks()),
                            app.source.active_calls,
                        )
                    )
                    if finished:
                        message = done_task.result()
                        if "done" in message:
                            return dict(message["done"])
                        done_task = asyncio.ensure_future(load_child.read_message(child.stdout))  # type: ignore[arg-type]
            finally:
                done_task.cancel()

        async with asyncio.TaskGroup() as group:
            serving = group.create_task(app.run())
            await app.source.ready.wait()
            result = await sample_until_done()
            app.stop_claiming()
            await serving
        report.seconds = round(time.monotonic() - started, 1)
        report.offered = int(result["offered"])
        report.answered = int(result["answered"])
        report.caller_side_outcomes = dict(result["outcomes"])
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    report.completed = calls.completed
    report.bridge_outcomes = dict(calls.outcomes)
    usual = calls.outcomes.most_common(1)[0][0] if calls.outcomes else ""
    report.unusual_calls = [
        sample
        for outcome, samples in calls.samples.items()
        if outcome != usual
        for sample in samples
    ][:5]
    report.warnings = dict(warnings)
    warm = min(args.warmup_calls, max(report.completed // 5, 1))
    for attr in ("rss_mib", "tasks", "fds"):
        report.slopes_per_100_calls[attr] = round(slope_per_100(report.samples, attr, warm), 3)
    return report


def render(report: SoakReport) -> str:
    lines = [
        "## Soak report",
        "",
        f"- calls offered {report.offered}, answered {report.answered}, "
        f"completed {report.completed} in {report.seconds:.0f} s",
        f"- bridge outcomes: {report.bridge_outcomes}",
        f"- caller-side outcomes: {report.caller_side_outcomes}",
        f"- slope per 100 calls after warm-up: {report.slopes_per_100_calls}",
        f"- warnings: {report.warnings or 'none'}",
        f"- errors logged: {len(report.errors)}"
        + "".join(f"\n  - {e}" for e in report.errors[:20]),
        "",
        "| t (s) | completed | RSS (MiB) | fds | tasks | live calls |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    step = max(len(report.samples) // 25, 1)
    for sample in report.samples[::step]:
        lines.append(
            f"| {sample.t:.0f} | {sample.completed} | {sample.rss_mib:.1f} | {sample.fds} "
            f"| {sample.tasks} | {sample.live_calls} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="callbridge soak", description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second, at most")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--warmup-calls", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results/soak.json"), help="and the .md beside it"
    )
    args = parser.parse_args(argv)
    errors = ErrorLog()
    configure_logging("json", level=logging.WARNING)
    structlog.configure(processors=[errors, *structlog.get_config()["processors"]])
    logging.getLogger().addHandler(errors)
    report = loop.run(soak(args))
    report.errors = errors.errors
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    text = render(report)
    args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")  # the README links it
    print(text)
    ok = report.completed == report.offered == report.answered and not report.errors
    return 0 if ok else 1
