"""The ceiling search of ``callbridge bench --cpu-quota`` and the figure made from its runs."""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.bench import capacity
from callbridge.bench.capacity import CeilingSearch, Outcome


def _search(start: int, bridge_ceiling: int, emulator_ceiling: int = 10**6) -> CeilingSearch:
    """Drive a search against a bridge that holds N <= ``bridge_ceiling`` (emulators likewise)."""
    search = CeilingSearch(start)
    for _ in range(50):
        n = search.next()
        if n is None:
            return search
        result: Outcome = (
            "emulators" if n > emulator_ceiling else "held" if n <= bridge_ceiling else "lost"
        )
        search.record(n, result)
    raise AssertionError(f"the search did not end: {search.tried}")


@pytest.mark.parametrize(
    ("start", "ceiling", "most_runs"),
    [(30, 37, 6), (30, 40, 6), (30, 18, 6), (60, 80, 6), (120, 500, 9), (30, 1, 6), (30, 7, 7)],
)
def test_search_brackets_the_ceiling_within_the_resolution(
    start: int, ceiling: int, most_runs: int
) -> None:
    search = _search(start, ceiling)
    assert search.lost is not None and search.held <= ceiling < search.lost, search.tried
    assert search.lost - search.held <= max(1, int(0.1 * search.held)), search.tried
    assert len(search.tried) <= most_runs, search.tried


def test_search_where_even_one_call_is_lost_ends_at_zero() -> None:
    search = _search(30, 0)
    assert search.held == 0 and search.lost == 1
    assert [n for n, _ in search.tried] == [30, 15, 7, 3, 1]


def test_search_narrows_below_where_the_emulators_lose_real_time() -> None:
    search = _search(30, bridge_ceiling=500, emulator_ceiling=150)
    assert search.lost is None and search.capped is not None
    assert search.held <= 150 < search.capped
    assert search.capped - search.held <= int(0.1 * search.held)
    assert all(n < 240 for n, _ in search.tried[4:]), "nothing tried above the first loss"


def test_search_below_a_busy_machines_emulator_loss_still_finds_the_bridge() -> None:
    search = _search(30, bridge_ceiling=12, emulator_ceiling=20)
    assert search.held <= 12 < (search.lost or 0)


def _run(n: int, *, held: bool = True, emulators: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "calls": n,
        "label": "ours",
        "bridge": {"held": held, "caller_late_share": 0.0 if held else 0.2, "underrun_share": 0.0},
        "emulator": {"held": emulators},
        "caller_to_model_ms": {"p99": 4.0 + n / 10},
        "model_to_call_ms": {"p99": 3.0},
        "cpu_ms_per_call_s": 5.0,
        "bridge_core_share": n * 0.005,
        **extra,
    }


def test_ceiling_is_calls_held_per_core_with_the_figures_at_that_n() -> None:
    throttled = {"quota_used": 0.9, "throttled_periods": 3, "periods": 150}
    runs = [
        _run(30),
        _run(60, held=False),
        _run(45, cpu_limit=throttled),
        _run(52, held=False),
        _run(48, held=False),
    ]
    found = capacity.ceiling(runs, 0.25)
    assert found["held_calls"] == 45 and found["lost_calls"] == 48
    assert found["calls_per_core"] == 180.0
    assert found["limited_by"] == "bridge"
    assert found["at_held"]["caller_to_model_p99_ms"] == 8.5
    assert found["at_held"]["throttling"] == throttled
    assert found["at_lost"]["calls"] == 48
    assert found["tried"][:2] == [[30, "held"], [60, "lost"]]


@pytest.mark.parametrize(
    ("runs", "quota", "held", "per_core", "limited_by"),
    [
        ([_run(120), _run(240, emulators=False)], None, 120, 120.0, "emulators"),
        ([_run(10), _run(15, held=False), _run(20, emulators=False)], 1.0, 10, 10.0, "bridge"),
        ([_run(10), _run(15, held=False, emulators=False)], 1.0, 10, 10.0, "emulators"),
        ([_run(10)], 0.5, 10, 20.0, "search"),
        (
            [_run(10, held=False), {"calls": 5, "label": "ours", "error": "boom"}],
            0.5,
            0,
            0.0,
            "bridge",
        ),
    ],
)
def test_what_limited_the_ceiling(
    runs: list[dict[str, Any]], quota: float | None, held: int, per_core: float, limited_by: str
) -> None:
    found = capacity.ceiling(runs, quota)
    assert (found["held_calls"], found["calls_per_core"], found["limited_by"]) == (
        held,
        per_core,
        limited_by,
    )


def test_failed_run_counts_as_lost() -> None:
    assert (
        capacity.outcome({"calls": 5, "error": "RuntimeError: calls were not answered"}) == "lost"
    )


@pytest.mark.parametrize(("quota", "start"), [(0.25, 30), (0.5, 60), (1.0, 120), (0.001, 1)])
def test_search_starts_in_proportion_to_the_quota(quota: float, start: int) -> None:
    assert capacity.start_calls(quota) == start


@pytest.mark.parametrize(
    ("result", "bridge_core", "emulator_core", "expected"),
    [
        ("lost", 0.6, 0.0, True),
        ("lost", 0.05, 0.9, False),
        ("emulators", 0.0, 0.4, True),
        ("emulators", 0.9, 0.02, True),
        ("emulators", 0.05, 0.05, False),
        ("held", 0.9, 0.9, False),
    ],
)
def test_a_loss_beside_other_real_time_work_on_that_core_is_contended(
    result: str, bridge_core: float, emulator_core: float, expected: bool
) -> None:
    rivals = {
        "bridge_core": {"tasks": 1, "cores": bridge_core},
        "emulator_core": {"tasks": 2, "cores": emulator_core},
    }
    run = _run(10, held=result != "lost", emulators=result != "emulators", foreign_realtime=rivals)
    assert capacity.contended(run) is expected
    assert not capacity.contended(_run(10, held=False))


@pytest.mark.parametrize(
    ("a", "b", "best"),
    [
        ("lost", "held", "held"),
        ("emulators", "lost", "lost"),
        ("emulators", "emulators", "emulators"),
    ],
)
def test_the_better_of_two_runs_counts(a: Outcome, b: Outcome, best: Outcome) -> None:
    assert capacity.better(a, b) == best == capacity.better(b, a)
