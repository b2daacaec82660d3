"""Campaigns in the record store: batch files, quiet hours, retries, restarts, two replicas.

The runner's ``dial`` here is an in-memory fake of ``BridgeApp.dial`` (it records every
number dialled and returns scripted outcomes); the calls themselves are covered in
``tests/outbound``, and ``test_campaign_calls_on_the_emulators`` runs a campaign end to end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callbridge.bridge.outbound import DialOutcome, DialResult
from callbridge.service.campaign_runner import CampaignRunner
from callbridge.service.campaigns import (
    BatchRow,
    CampaignPolicy,
    CampaignStore,
    ClaimedRow,
    next_allowed,
    parse_batch,
)
from callbridge.service.store import RecordStore

FAST = CampaignPolicy(
    retry_after_s=0.2, quiet_start="00:00", quiet_end="00:00", calls_per_minute=6000
)


class FakeDial:
    """Scripted outcomes per number (the last repeats); every dial is counted."""

    def __init__(self, outcomes: Mapping[str, list[DialOutcome]], hold_s: float = 0.0) -> None:
        self.outcomes = {k: list(v) for k, v in outcomes.items()}
        self.hold_s = hold_s
        self.dialled: Counter[str] = Counter()

    async def __call__(self, number: str, variables: Mapping[str, str]) -> DialResult:
        self.dialled[number] += 1
        await asyncio.sleep(self.hold_s)
        queue = self.outcomes.get(number, [DialOutcome.ANSWERED])
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        return DialResult(number, outcome)


def numbers(n: int) -> list[BatchRow]:
    return [BatchRow(i + 2, f"+1555000{i:04d}", {"name": f"n{i}"}) for i in range(n)]


async def run_until(
    runner: CampaignRunner, store: CampaignStore, cid: str, states: set[str]
) -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(runner.run())
        async with asyncio.timeout(20):
            while True:
                status = await store.status(cid)
                assert status is not None
                if set(status["by_state"]) <= states:
                    break
                await asyncio.sleep(0.05)
        runner.stop()


# ── The batch file ──────────────────────────────────────────────────────────────────────


def test_csv_rows_and_each_bad_row_with_its_line() -> None:
    text = (
        "number,name,tz\n"
        "+15551230001,Ada,Europe/London\n"
        "5551230002,Bob,\n"
        "+15551230003,Cy,Mars/Olympus\n"
        "+15551230004,Di,\n"
    )
    rows, problems = parse_batch(text, "csv")
    assert [(r.line, r.number, r.variables, r.tz) for r in rows] == [
        (2, "+15551230001", {"name": "Ada"}, "Europe/London"),
        (5, "+15551230004", {"name": "Di"}, None),
    ]
    assert problems == [
        "line 3.number: '5551230002' is not an E.164 phone number (a '+', the country code "
        "and the number, digits only, e.g. +15551234567)",
        "line 4.tz: unknown time zone 'Mars/Olympus' (e.g. Europe/Paris)",
    ]


def test_jsonl_rows_and_bad_lines() -> None:
    text = (
        '{"number": "+15551230001", "variables": {"name": "Ada"}, "tz": "America/New_York"}\n'
        "not json\n"
        '{"number": "+15551230002", "variables": ["x"]}\n'
        '["a list"]\n'
    )
    rows, problems = parse_batch(text, "jsonl")
    assert [r.number for r in rows] == ["+15551230001"]
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3.variables", "line 4"]


def test_csv_without_a_number_column() -> None:
    assert parse_batch("phone,name\n+15551230001,Ada\n", "csv") == (
        [],
        ["line 1: the header needs a 'number' column"],
    )


# ── Quiet hours ─────────────────────────────────────────────────────────────────────────


def at(zone: str, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, 3, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("zone", "local", "resume"),
    [
        ("Europe/Paris", (14, 0), (14, 0)),  # allowed: now
        ("Europe/Paris", (22, 30), None),  # quiet: tomorrow 09:00
        ("Europe/Paris", (7, 15), (9, 0)),  # quiet: today 09:00
        ("America/Los_Angeles", (20, 59), (20, 59)),
        ("America/Los_Angeles", (21, 0), None),
    ],
)
def test_quiet_hours_in_the_callee_zone(
    zone: str, local: tuple[int, int], resume: tuple[int, int] | None
) -> None:
    now = at(zone, *local)
    got = next_allowed(now, zone, "21:00", "09:00")
    if resume is None:
        expected = dt.datetime(2026, 12, 4, 9, 0, tzinfo=ZoneInfo(zone)).timestamp()
    else:
        expected = at(zone, *resume)
    assert got == expected


# ── The store and the runner (SQLite and PostgreSQL) ────────────────────────────────────


async def test_rows_are_dialled_once_and_retried_for_busy_and_no_answer(store_url: str) -> None:
    async with RecordStore(store_url) as records:
        store = CampaignStore(records.engine, "t1")
        rows = numbers(4)
        assert await store.submit("c1", rows, FAST) == 4
        assert await store.submit("c1", rows, FAST) == 0  # the same file again adds nothing
        dial = FakeDial(
            {
                rows[1].number: [DialOutcome.BUSY, DialOutcome.ANSWERED],
                rows[2].number: [DialOutcome.NO_ANSWER],
                rows[3].number: [DialOutcome.REJECTED],
            }
        )
        runner = CampaignRunner(
            store, dial, replica="r1", max_concurrent=2, calls_per_minute=6000, poll_s=0.05
        )
        await run_until(runner, store, "c1", {"done"})
        status = await store.status("c1")
    assert dial.dialled == {
        rows[0].number: 1,
        rows[1].number: 2,  # busy, then answered
        rows[2].number: 3,  # no answer each time: max_attempts
        rows[3].number: 1,  # rejected is final
    }
    assert status is not None
    assert status["last_outcomes"] == {"answered": 2, "no_answer": 1, "rejected": 1}


async def test_quiet_hours_hold_a_row(store_url: str) -> None:
    """A row whose callee is inside quiet hours (in their own zone) is not dialled."""
    tokyo = dt.datetime.now(ZoneInfo("Asia/Tokyo"))
    start = (tokyo - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (tokyo + dt.timedelta(hours=1)).strftime("%H:%M")
    policy = CampaignPolicy(quiet_start=start, quiet_end=end, calls_per_minute=6000)
    async with RecordStore(store_url) as records:
        store = CampaignStore(records.engine, "t1")
        rows = [
            BatchRow(2, "+81300001111", {}, "Asia/Tokyo"),  # quiet there now
            BatchRow(3, "+15550002222", {}, "Etc/GMT+12"),  # 21 hours behind Tokyo: allowed
        ]
        await store.submit("c1", rows, policy)
        dial = FakeDial({})
        runner = CampaignRunner(
            store, dial, replica="r1", max_concurrent=1, calls_per_minute=6000, poll_s=0.05
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(runner.run())
            await asyncio.sleep(0.8)
            runner.stop()
        status = await store.status("c1")
    assert dict(dial.dialled) == {"+15550002222": 1}
    assert status is not None and status["by_state"] == {"pending": 1, "done": 1}


async def test_restart_mid_campaign_dials_no_row_twice(store_url: str) -> None:
    rows = numbers(6)
    dial = FakeDial({}, hold_s=0.3)
    async with RecordStore(store_url) as records:
        store = CampaignStore(records.engine, "t1")
        await store.submit("c1", rows, FAST)
        first = CampaignRunner(
            store, dial, replica="a", max_concurrent=2, calls_per_minute=6000, poll_s=0.05
        )
        async with asyncio.TaskGroup() as group:
            task = group.create_task(first.run())
            while sum(dial.dialled.values()) < 3 or first.active == 0:
                await asyncio.sleep(0.01)
            task.cancel()  # the process goes away with calls in flight
    # A new process: a new engine on the same database.
    async with RecordStore(store_url) as records:
        store = CampaignStore(records.engine, "t1")
        second = CampaignRunner(
            store, dial, replica="b", max_concurrent=2, calls_per_minute=6000, poll_s=0.05
        )
        await run_until(second, store, "c1", {"done", "interrupted"})
        status = await store.status("c1")
    assert set(dial.dialled.values()) == {1}  # nobody was called twice
    assert status is not None
    assert len(dial.dialled) == 6  # every row was dialled, by one process or the other
    assert status["by_state"].get("done", 0) + status["by_state"].get("interrupted", 0) == 6
    assert status["by_state"].get("interrupted", 0) >= 1  # the calls cut by the restart


class ClaimReturnsLate(CampaignStore):
    """The claim's transaction has committed, but the runner has not yet seen its rows (a
    slow commit acknowledgement on a loaded database): the window a stop can fall into."""

    def __init__(self, engine: AsyncEngine, tenant: str) -> None:
        super().__init__(engine, tenant)
        self.committed = asyncio.Event()

    async def claim(self, replica: str, limit: int) -> list[ClaimedRow]:
        rows = await super().claim(replica, limit)
        if rows:
            self.committed.set()
            await asyncio.sleep(1.0)
        return rows


async def test_a_stop_during_a_claim_gives_the_row_back(store_url: str) -> None:
    dial = FakeDial({})
    async with RecordStore(store_url) as records:
        store = ClaimReturnsLate(records.engine, "t1")
        await store.submit("c1", numbers(1), FAST)
        runner = CampaignRunner(
            store, dial, replica="a", max_concurrent=1, calls_per_minute=6000, poll_s=0.05
        )
        task = asyncio.get_running_loop().create_task(runner.run())
        await asyncio.wait_for(store.committed.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        status = await store.status("c1")
        assert dial.dialled == Counter()
        assert status is not None and status["by_state"] == {"pending": 1}
        again = CampaignRunner(
            CampaignStore(records.engine, "t1"),
            dial,
            replica="b",
            max_concurrent=1,
            calls_per_minute=6000,
            poll_s=0.05,
        )
        await run_until(again, store, "c1", {"done"})  # the next process dials it, once
    assert list(dial.dialled.values()) == [1]


async def test_two_replicas_share_a_campaign_each_row_once(pg_url: str) -> None:
    rows = numbers(30)
    dial = FakeDial({}, hold_s=0.05)
    async with RecordStore(pg_url) as one, RecordStore(pg_url) as two:
        store_a, store_b = CampaignStore(one.engine, "t1"), CampaignStore(two.engine, "t1")
        await store_a.submit("c1", rows, FAST)
        runners = [
            CampaignRunner(
                s, dial, replica=name, max_concurrent=3, calls_per_minute=6000, poll_s=0.02
            )
            for name, s in (("a", store_a), ("b", store_b))
        ]
        async with asyncio.TaskGroup() as group:
            for runner in runners:
                group.create_task(runner.run())
            async with asyncio.timeout(20):
                while (await store_a.status("c1") or {}).get("by_state") != {"done": 30}:
                    await asyncio.sleep(0.05)
            for runner in runners:
                runner.stop()
    assert dial.dialled == {row.number: 1 for row in rows}
    assert runners[0].dialled and runners[1].dialled  # both took part
    assert not set(runners[0].dialled) & set(runners[1].dialled)


def test_check_config_says_a_sqlite_campaign_is_for_one_replica(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from callbridge.service.config_cli import main as check_config

    path = tmp_path / "tenant.toml"
    path.write_text(
        'tenant = "acme"\n[telcoflow]\nbase_url = "wss://example.invalid"\n'
        "[outbound]\nenabled = true\n[campaigns]\nenabled = true\n"
    )
    assert check_config(["--without-secrets", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: campaigns.enabled with SQLite records: run ONE replica only" in out
    pg = path.read_text() + '[service]\nrecords_url = "postgresql+asyncpg://db/callbridge"\n'
    path.write_text(pg)
    assert check_config(["--without-secrets", str(path)]) == 0
    assert "note:" not in capsys.readouterr().out


async def test_rows_our_bridge_could_not_place_are_not_spent(store_url: str) -> None:
    """A full bridge (AT_CAPACITY) is no attempt; a platform overflow is retried."""
    script = {
        "+15550000001": [("AT_CAPACITY", DialOutcome.FAILED), (None, DialOutcome.ANSWERED)],
        "+15550000002": [("OUTBOUND_OVERFLOW", DialOutcome.FAILED), (None, DialOutcome.ANSWERED)],
    }
    dialled: Counter[str] = Counter()

    async def dial(number: str, variables: Mapping[str, str]) -> DialResult:
        code, outcome = script[number][dialled[number]]
        dialled[number] += 1
        return DialResult(number, outcome, code)

    one_attempt = CampaignPolicy(
        max_attempts=1, retry_after_s=0.1, quiet_start="00:00", quiet_end="00:00"
    )
    two_attempts = CampaignPolicy(
        max_attempts=2, retry_after_s=0.1, quiet_start="00:00", quiet_end="00:00"
    )
    async with RecordStore(store_url) as records:
        store = CampaignStore(records.engine, "t1", not_placed_retry_s=0.1)
        await store.submit("full", [BatchRow(2, "+15550000001", {})], one_attempt)
        await store.submit("overflow", [BatchRow(2, "+15550000002", {})], two_attempts)
        runner = CampaignRunner(
            store, dial, replica="r", max_concurrent=2, calls_per_minute=6000, poll_s=0.05
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(runner.run())
            async with asyncio.timeout(15):
                while sum(dialled.values()) < 4:
                    await asyncio.sleep(0.05)
                for cid in ("full", "overflow"):
                    while (await store.status(cid) or {}).get("by_state") != {"done": 1}:
                        await asyncio.sleep(0.05)
            runner.stop()
        full, overflow = await store.status("full"), await store.status("overflow")
    assert dialled == {"+15550000001": 2, "+15550000002": 2}
    assert full is not None and full["last_outcomes"] == {"answered": 1}
    assert full["dials"] == 1  # the refused try was given back
    assert overflow is not None and overflow["dials"] == 2
