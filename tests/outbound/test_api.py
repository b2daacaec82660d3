"""The three entry points share one dial: POST /calls, `callbridge call`, and app.dial."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callbridge.bridge.config import load_config
from callbridge.emulators.gemini_live import GeminiLiveEmulator
from callbridge.emulators.telcoflow import TelcoflowEmulator
from callbridge.service.call_cli import main as call_main
from tests.outbound.kit import REMINDER, TO, person
from tests.service.helpers import ADMIN_TOKEN, poll_until, running_service, secrets_env, sections


def outbound_config(telco: TelcoflowEmulator, gemini: GeminiLiveEmulator) -> Any:
    data = sections(gemini)
    data["outbound"] = {
        "enabled": True,
        "instruction_template": "You call {name} to remind them of their appointment.",
    }
    return load_config(overrides=data, env=secrets_env(telco), service=True)


async def test_post_calls_validates_then_dials() -> None:
    async with (
        TelcoflowEmulator(api_key="k", connector_uuid="c") as telco,
        GeminiLiveEmulator(script=REMINDER) as gemini,
        running_service(outbound_config(telco, gemini)) as svc,
    ):
        http, admin = svc.admin_http, svc.admin
        bad = await http.post("/calls", json={"to": "5551234567"}, headers=admin)
        assert bad.status_code == 422
        assert bad.json()["problems"][0].startswith("to: '5551234567' is not an E.164")
        missing = await http.post(
            "/calls", json={"to": TO, "variables": {"nmae": "Ada"}}, headers=admin
        )
        assert missing.status_code == 422
        assert missing.json()["problems"] == [
            "variables.name: missing (the instruction uses {name})",
            "variables.nmae: unknown (the instruction has no {nmae})",
        ]
        assert (await http.post("/calls", json={"to": TO})).status_code == 401
        assert telco.dialled == []  # nothing refused reached the platform

        telco.expect_callee(TO, person())
        placed = await http.post(
            "/calls", json={"to": TO, "variables": {"name": "Ada"}}, headers=admin
        )
        assert placed.status_code == 202
        dial_id = placed.json()["dial_id"]

        async def fetch() -> dict[str, Any]:
            status: dict[str, Any] = (await http.get(f"/dials/{dial_id}", headers=admin)).json()
            return status

        status = await poll_until(
            fetch, lambda s: s["status"] == "done", timeout=40, what="the dial's outcome"
        )
        assert status["outcome"] == "answered"
        metrics = (await svc.http.get("/metrics")).text
    answered = [
        s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "callbridge_calls_total" and s.labels.get("outcome") == "answered"
    ]
    assert answered == [1.0]
    assert telco.dialled == [TO]


async def test_cli_call_places_a_call_and_prints_the_outcome(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        TelcoflowEmulator(api_key="k", connector_uuid="c") as telco,
        GeminiLiveEmulator(script=REMINDER) as gemini,
        running_service(outbound_config(telco, gemini)) as svc,
    ):
        telco.expect_callee(TO, person())
        monkeypatch.setenv("CALLBRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        url = str(svc.admin_http.base_url)
        argv = [TO, "--var", "name=Ada", "--url", url, "--timeout", "40"]
        status = await asyncio.to_thread(call_main, argv)
        refused = await asyncio.to_thread(call_main, ["+1555", "--url", url])
    out, err = capsys.readouterr()
    assert status == 0
    assert '"outcome": "answered"' in out
    assert refused == 2
    assert "to: '+1555' is not an E.164" in err


async def test_post_campaigns_reports_bad_rows_then_dials(tmp_path: Any) -> None:
    from callbridge.emulators.telcoflow.outbound import Callee
    from callbridge.service.serve import Service
    from callbridge.service.store import RecordStore
    from tests.service.helpers import wait_ready
    from tests.warnings.receiver import WebhookReceiver

    url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
    async with (
        TelcoflowEmulator(api_key="k", connector_uuid="c") as telco,
        GeminiLiveEmulator(script=REMINDER) as gemini,
        RecordStore(url) as store,
        WebhookReceiver(b"hook-secret") as receiver,
    ):
        data = sections(gemini)
        data["warnings"] = {
            "min_interval_s": 0.0,
            "webhook_url": receiver.url,
            "webhook_allow_private": True,
        }
        data["outbound"] = {"enabled": True, "instruction_template": "Remind {name}."}
        data["campaigns"] = {
            "enabled": True,
            "poll_s": 0.1,
            "quiet_start": "00:00",
            "quiet_end": "00:00",
        }
        env = {**secrets_env(telco), "CALLBRIDGE_WEBHOOK_SECRET": "hook-secret"}
        config = load_config(overrides=data, env=env, service=True)
        telco.expect_callee("+15550000001", Callee.busy())
        service = Service(config, store=store)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(service.run())
            await asyncio.wait_for(service.started.wait(), 15)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as probes,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.admin_port}") as http,
            ):
                await wait_ready(probes)
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                text = "number,name\n+15550000001,Ada\n+1555,Bob\n"
                bad = await http.post("/campaigns", json={"rows": text, "id": "c1"}, headers=admin)
                assert bad.status_code == 422
                assert bad.json()["problems"] == [
                    "line 3.number: '+1555' is not an E.164 phone number (a '+', the country "
                    "code and the number, digits only, e.g. +15551234567)"
                ]
                ok = await http.post(
                    "/campaigns", json={"rows": text, "id": "c1", "skip_bad": True}, headers=admin
                )
                assert ok.status_code == 201 and ok.json()["added"] == 1

                async def fetch() -> dict[str, Any]:
                    got: dict[str, Any] = (await http.get("/campaigns/c1", headers=admin)).json()
                    return got

                status = await poll_until(
                    fetch, lambda s: s.get("dials", 0) >= 1 and "dialling" not in s["by_state"], 30
                )
                metrics = (await probes.get("/metrics")).text
                [posted] = await receiver.wait_for(
                    lambda r: r.payload.get("type") == "CampaignRow", timeout=10
                )
            service.request_drain("test over")
        assert task.result() == 0
    assert status["last_outcomes"] == {"busy": 1}
    assert status["by_state"] == {"pending": 1}  # busy: retried later (retry_after_s)
    assert 'callbridge_campaign_dials_total{outcome="busy",state="pending"} 1.0' in metrics
    # The row's result went to the tenant's signed webhook, like warnings do.
    assert posted.signature_ok
    row = posted.payload
    assert (row["campaign_id"], row["line"], row["outcome"], row["final"]) == (
        "c1",
        2,
        "busy",
        False,
    )
    assert row["number"] == "********0001"  # masked unless service.log_full_numbers


async def test_quiet_hours_hold_a_row_in_its_own_zone_while_another_is_dialled(
    tmp_path: Any,
) -> None:
    """Through the service, the SDK and the emulator: the quiet window is read in each row's
    time zone. It is placed around *now* in UTC, so the UTC row waits (its next try is the end
    of the window) while the row in UTC+6 (outside the window there) is dialled."""
    import datetime as dt

    import sqlalchemy as sa

    from callbridge.emulators.telcoflow.outbound import Callee
    from callbridge.service.serve import Service
    from callbridge.service.store import RecordStore, campaign_rows
    from tests.service.helpers import wait_ready

    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
    async with (
        TelcoflowEmulator(api_key="k", connector_uuid="c") as telco,
        GeminiLiveEmulator(script=REMINDER) as gemini,
        RecordStore(url) as store,
    ):
        data = sections(gemini)
        data["outbound"] = {"enabled": True, "instruction_template": "Remind {name}."}
        data["campaigns"] = {
            "enabled": True,
            "poll_s": 0.1,
            "quiet_start": start.strftime("%H:%M"),
            "quiet_end": end.strftime("%H:%M"),
        }
        config = load_config(overrides=data, env=secrets_env(telco), service=True)
        telco.expect_callee("+15550000001", Callee.busy())
        telco.expect_callee("+15550000002", Callee.busy())
        service = Service(config, store=store)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(service.run())
            await asyncio.wait_for(service.started.wait(), 15)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as probes,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.admin_port}") as http,
            ):
                await wait_ready(probes)
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                text = "number,name,tz\n+15550000001,Ada,UTC\n+15550000002,Bob,Etc/GMT-6\n"
                ok = await http.post("/campaigns", json={"rows": text, "id": "q1"}, headers=admin)
                assert ok.status_code == 201 and ok.json()["added"] == 2

                async def fetch() -> dict[str, Any]:
                    got: dict[str, Any] = (await http.get("/campaigns/q1", headers=admin)).json()
                    return got

                status = await poll_until(fetch, lambda s: s.get("dials", 0) >= 1, 30)
                await asyncio.sleep(1.0)  # ten more polls: the quiet row must stay put
                status = await fetch()
            service.request_drain("test over")
        assert task.result() == 0
        async with store.engine.connect() as conn:
            quiet = (
                await conn.execute(
                    sa.select(
                        campaign_rows.c.state, campaign_rows.c.attempts, campaign_rows.c.next_at
                    ).where(campaign_rows.c.number == "+15550000001")
                )
            ).one()
    assert [call.callee for call in telco.outbound_calls] == ["+15550000002"]
    assert status["dials"] == 1
    assert (quiet.state, quiet.attempts) == ("pending", 0)
    # Held until the window's end, to the minute (HH:MM), in the row's own zone (UTC).
    assert abs(quiet.next_at - end.replace(second=0, microsecond=0).timestamp()) < 1
