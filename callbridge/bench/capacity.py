"""Finding a bridge's ceiling: the largest N it holds in real time (under a CPU quota).

``callbridge bench --cpu-quota Q`` does not assume where the ceiling is. For each bridge,
:class:`CeilingSearch` proposes the next N from what the runs so far showed: it doubles N from
a start until a run loses real time (halving instead if the start already lost), then bisects
between the largest N held and the smallest N lost until they are within ``resolution`` of each
other. A run in which the emulators lost real time bounds the search like a loss (nothing at or
above it can be measured here, so the search narrows below it), but the ceiling is then
reported as limited by the emulators, an "at least". A run that failed counts as lost (a bridge
that cannot even answer its calls does not hold them).

:func:`ceiling` turns one bridge's runs into the figure operators size pods with: calls held
per core = N held / quota. Both are pure; ``callbridge.bench.run`` does the runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["held", "lost", "emulators"]
Run = dict[str, Any]

START_PER_CORE = 120
"""First N tried, per core of quota: between the reference's and our expected ceiling."""
RESOLUTION = 0.1
"""The search stops when the smallest N lost is within 10 % of the largest N held."""
MAX_CALLS = 2000


def outcome(run: Run) -> Outcome:
    """How one run ended, for the search."""
    if run.get("error"):
        return "lost"
    if not run["emulator"]["held"]:
        return "emulators"
    return "held" if run["bridge"]["held"] else "lost"


RIVAL_CORES = 0.1
"""Other processes' real-time tasks using this much of a core make a loss worth a rerun."""


def contended(run: Run) -> bool:
    """A loss while other processes' real-time tasks took a real share of the core that lost.

    A normal task (the bridge under a quota) cannot compete with SCHED_RR, and the emulators
    (SCHED_RR with ``--realtime``) share their core round-robin with another run's: such a
    loss is not the bridge's own, so it is worth a rerun. A bridge loss counts the bridge's
    core; an emulator loss either core.
    """
    rivals = run.get("foreign_realtime") or {}
    result = outcome(run)
    # A bridge loss: its own core. An emulator loss: either (the bridge's stalls backlog them).
    where = ("bridge_core",) if result == "lost" else ("bridge_core", "emulator_core")
    taken = max((rivals.get(w) or {}).get("cores", 0.0) for w in where)
    return result != "held" and taken >= RIVAL_CORES


def better(a: Outcome, b: Outcome) -> Outcome:
    """The better of two runs at one N: held, else a bridge loss, else an emulator loss."""
    order: tuple[Outcome, ...] = ("held", "lost", "emulators")
    return min(a, b, key=order.index)


def start_calls(quota: float) -> int:
    return max(1, round(quota * START_PER_CORE))


@dataclass
class CeilingSearch:
    """Proposes the next N to run for one bridge; told each run's outcome."""

    start: int
    resolution: float = RESOLUTION
    max_calls: int = MAX_CALLS
    held: int = 0
    """Largest N held so far (0: none)."""
    lost: int | None = None
    """Smallest N above ``held`` that lost real time."""
    capped: int | None = None
    """Smallest N at which the emulators lost real time (the search stays below it)."""
    tried: list[tuple[int, Outcome]] = field(default_factory=list)

    def record(self, n: int, result: Outcome) -> None:
        self.tried.append((n, result))
        if result == "held":
            self.held = max(self.held, n)
        elif result == "emulators":
            self.capped = n if self.capped is None else min(self.capped, n)
        else:
            self.lost = n if self.lost is None else min(self.lost, n)

    def next(self) -> int | None:
        """The next N to run, or None when the ceiling is found (or cannot be)."""
        bounds = [n for n in (self.lost, self.capped) if n is not None]
        if not bounds:
            if self.held == 0:
                return self.start
            return min(self.max_calls, self.held * 2) if self.held < self.max_calls else None
        upper = min(bounds)
        if self.held == 0:
            return upper // 2 if upper > 1 else None
        if upper - self.held <= max(1, math.floor(self.resolution * self.held)):
            return None
        return (self.held + upper) // 2


def ceiling(runs: Sequence[Run], quota: float | None) -> dict[str, Any]:
    """One bridge's ceiling from its runs: N held, calls per core, latency and throttling there.

    ``limited_by`` says what bounded it: ``bridge`` (the next N tried above it lost real time:
    the ceiling is between ``held_calls`` and ``lost_calls``), ``emulators`` (they lost real
    time there first: the ceiling is at least ``held_calls``), or ``search`` (no larger N lost:
    the budget ran out, or fixed ``--calls`` were run).
    """
    cores = quota if quota is not None else 1.0
    by_n = sorted(runs, key=lambda r: r["calls"])
    held = [r for r in by_n if outcome(r) == "held"]
    best = held[-1] if held else None
    top = best["calls"] if best else 0
    lost = [r for r in by_n if outcome(r) == "lost" and r["calls"] > top]
    capped = [r for r in by_n if outcome(r) == "emulators" and r["calls"] > top]
    first_lost = lost[0] if lost else None
    if first_lost and (not capped or first_lost["calls"] < capped[0]["calls"]):
        limited_by = "bridge"
    else:
        limited_by = "emulators" if capped else "search"
    return {
        "label": by_n[0]["label"] if by_n else None,
        "quota": quota,
        "held_calls": top,
        "lost_calls": first_lost["calls"] if first_lost else None,
        "emulators_lost_at": capped[0]["calls"] if capped else None,
        "limited_by": limited_by,
        "calls_per_core": round(top / cores, 1),
        "tried": [[r["calls"], outcome(r)] for r in runs],
        "at_held": _at(best),
        "at_lost": _at(first_lost),
    }


def _at(run: Run | None) -> dict[str, Any] | None:
    """The figures of one run that explain a ceiling: latency, CPU, throttling."""
    if run is None:
        return None
    if run.get("error"):
        return {"calls": run["calls"], "error": run["error"]}
    return {
        "calls": run["calls"],
        "caller_to_model_p99_ms": run["caller_to_model_ms"]["p99"],
        "model_to_call_p99_ms": run["model_to_call_ms"]["p99"],
        "caller_late_share": run["bridge"]["caller_late_share"],
        "underrun_share": run["bridge"]["underrun_share"],
        "cpu_ms_per_call_s": run["cpu_ms_per_call_s"],
        "bridge_core_share": run["bridge_core_share"],
        "throttling": run.get("cpu_limit"),
    }
