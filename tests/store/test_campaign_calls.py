"""Campaigns end to end: the CLI stores a file, bridges dial it on both emulators.

Real calls through the unmodified telcoflow SDK: a person, a busy line that answers on the
retry, a phone nobody picks up; then two bridge replicas (two SessionManagers) sharing one
campaign on PostgreSQL, every row dialled once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import TelcoflowEmulator
from callbridge.emulators.telcoflow.outbound import Callee, OutboundOptions
from callbridge.service.app import BridgeApp
from callbridge.service.campaign_cli import main as campaign_main
from callbridge.service.campaigns import CampaignStore
from callbridge.service.store import RecordStore
from tests.e2e.scenarios import agent
from tests.outbound.test_dial import SHORT_PERSON

GREETING = Script(greeting=Turn([agent("agent_confirmed")]))


def tenant(records_url: str) -> dict[str, Any]:
    return {
        "outbound": {
            "enabled": True,
            "instruction_template": "Remind {name} of their appointment.",
            "ring_timeout_s": 5,
        },
        "campaigns": {
            "enabled": True,
            "retry_after_s": 1,
            "max_attempts": 2,
            "poll_s": 0.1,
            "calls_per_minute": 600,
            "quiet_start": "00:00",
            "quiet_end": "00:00",
        },
        "service": {"records_url": records_url},
    }


def toml(tmp_path: Path, records_url: str) -> Path:
    path = tmp_path / "tenant.toml"
    path.write_text(
        f'tenant = "local"\n[telcoflow]\nbase_url = "ws://127.0.0.1:1"\n'
        f'[service]\nrecords_url = "{records_url}"\n[campaigns]\nenabled = true\n'
        'retry_after_s = 1\nmax_attempts = 2\nquiet_start = "00:00"\nquiet_end = "00:00"\n'
        "[outbound]\nenabled = true\n"
    )
    return path


async def wait_done(
    store: CampaignStore, cid: str, rows: int, timeout: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            status = await store.status(cid)
            if status is not None and status["by_state"] == {"done": rows}:
                return status
            await asyncio.sleep(0.1)


async def test_campaign_from_the_cli_with_retries(
    tmp_path: Path,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELCOFLOW_API_KEY", "k")
    monkeypatch.setenv("TELCOFLOW_CONNECTOR_UUID", "c")
    config = toml(tmp_path, sqlite_url)
    batch = tmp_path / "reminders.csv"
    batch.write_text(
        "number,name\n+15550000001,Ada\n+15550000002,Bob\nnot-a-number,Cy\n+15550000003,Di\n"
    )
    assert (
        await asyncio.to_thread(
            campaign_main, ["submit", str(batch), "--config", str(config), "--id", "c1"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "line 4.number: 'not-a-number' is not an E.164" in err
    assert "nothing submitted" in err
    assert (
        await asyncio.to_thread(
            campaign_main,
            ["submit", str(batch), "--config", str(config), "--id", "c1", "--skip-bad"],
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"campaign_id": "c1", "rows": 3, "added": 3}

    telco = TelcoflowEmulator(
        api_key="stack-key", connector_uuid="conn-1", outbound=OutboundOptions(ring_timeout_s=2)
    )
    async with RecordStore(sqlite_url) as records:
        stack = LocalStack(
            GREETING,
            overrides=tenant(sqlite_url),
            telcoflow=telco,
            app_options={"campaign_engine": records.engine},
        )
        async with stack:
            telco.expect_callee("+15550000001", SHORT_PERSON)
            telco.expect_callee("+15550000002", Callee.busy(), SHORT_PERSON)
            telco.expect_callee("+15550000003", Callee.no_answer())
            status = await wait_done(CampaignStore(records.engine, "local"), "c1", 3)
    assert Counter(telco.dialled) == {"+15550000001": 1, "+15550000002": 2, "+15550000003": 2}
    assert status["last_outcomes"] == {"answered": 2, "no_answer": 1}
    capsys.readouterr()  # the bridge's own log lines
    assert await asyncio.to_thread(campaign_main, ["status", "c1", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["by_state"] == {"done": 3}


async def test_two_replicas_share_a_campaign_each_row_dialled_once(pg_url: str) -> None:
    numbers = [f"+1555100{i:04d}" for i in range(12)]
    telco = TelcoflowEmulator(api_key="stack-key", connector_uuid="conn-1")
    async with RecordStore(pg_url) as one, RecordStore(pg_url) as two:
        from callbridge.service.campaigns import BatchRow, CampaignPolicy

        policy = CampaignPolicy(
            quiet_start="00:00", quiet_end="00:00", retry_after_s=1, max_attempts=2
        )
        store = CampaignStore(one.engine, "local")
        await store.submit(
            "c2", [BatchRow(i + 2, n, {"name": "X"}) for i, n in enumerate(numbers)], policy
        )
        stack = LocalStack(
            GREETING,
            overrides=tenant(pg_url),
            telcoflow=telco,
            app_options={"campaign_engine": one.engine},
        )
        async with stack:
            for number in numbers:
                telco.expect_callee(number, Callee.busy(after_s=0.3))
            assert stack.config is not None
            second = BridgeApp(
                stack.config.model_copy(
                    update={"campaigns": stack.config.campaigns.model_copy(update={"replica": "b"})}
                ),
                campaign_engine=two.engine,
            )
            async with asyncio.TaskGroup() as group:
                task = group.create_task(second.run())
                status = await wait_done(store, "c2", len(numbers))
                second.stop_claiming()
            del task
    counts = Counter(telco.dialled)
    assert counts == {n: 2 for n in numbers}  # busy: dialled, then retried once, never more
    assert stack.app is not None and stack.app.campaigns is not None
    assert second.campaigns is not None
    first_rows, second_rows = set(stack.app.campaigns.dialled), set(second.campaigns.dialled)
    assert first_rows and second_rows  # both replicas dialled
    assert status["last_outcomes"] == {"busy": len(numbers)}


async def test_a_bridge_restart_mid_campaign_dials_no_row_twice(sqlite_url: str) -> None:
    """The first bridge stops (SIGTERM drain) after a few rows; a new one finishes the rest."""
    from callbridge.service.campaigns import BatchRow, CampaignPolicy

    numbers = [f"+1555200{i:04d}" for i in range(8)]
    policy = CampaignPolicy(quiet_start="00:00", quiet_end="00:00", max_attempts=1)
    dialled: list[str] = []
    lives: list[int] = []
    async with RecordStore(sqlite_url) as records:
        store = CampaignStore(records.engine, "local")
        rows = [BatchRow(i + 2, n, {"name": "X"}) for i, n in enumerate(numbers)]
        await store.submit("c3", rows, policy)
        for life in range(2):
            telco = TelcoflowEmulator(api_key="stack-key", connector_uuid="conn-1")
            overrides = tenant(sqlite_url)
            overrides["campaigns"]["calls_per_minute"] = 120  # one every 0.5 s
            stack = LocalStack(
                GREETING,
                overrides=overrides,
                telcoflow=telco,
                app_options={"campaign_engine": records.engine},
            )
            async with stack:
                for number in numbers:
                    telco.expect_callee(number, Callee.busy(after_s=0.2))
                if life == 0:
                    async with asyncio.timeout(30):
                        while len(telco.dialled) < 3:
                            await asyncio.sleep(0.05)
                else:
                    await wait_done(store, "c3", len(numbers))
            dialled += telco.dialled
            lives.append(len(telco.dialled))
        status = await store.status("c3")
    assert Counter(dialled) == {n: 1 for n in numbers}
    assert lives[0] >= 3 and lives[1] >= 1  # both lives dialled: the second took over
    assert status is not None and status["by_state"] == {"done": len(numbers)}
