"""Console actions that steer the call through the platform: transfer, whisper/barge/spy; and
the per-replica cap on console streams."""

from __future__ import annotations

from pathlib import Path

from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, ConnectOutcome, Pause, TelcoflowEmulator
from tests.console.kit import BASE, console_service
from tests.e2e.scenarios import agent
from tests.kit import eventually
from tests.service.helpers import API_KEY, CONNECTOR


async def test_transfer_then_barge_through_the_console_reach_the_platform_and_are_audited(
    tmp_path: Path,
) -> None:
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
        console_service(
            telco, gemini, tmp_path, tools={"after_transfer": "whisper", "ring_time_s": 5}
        ) as console,
    ):
        call = telco.place_call(
            CallerScript([Pause(30)]), connect_outcomes=[ConnectOutcome.answered(0.3)]
        )
        headers = await console.login("Lin")
        live = console.service.app.runner.live
        await eventually(lambda: call.call_id in live, what="the live call")
        bridged = live[call.call_id]
        headers["X-CSRF-Token"] = await console.csrf(headers)
        url = f"{BASE}/calls/{call.call_id}"

        early = await console.http.post(f"{url}/mode", headers=headers, data={"mode": "barge"})
        assert early.status_code == 409
        assert "no human is on the call yet" in early.json()["reason"]

        transfer = await console.http.post(
            f"{url}/transfer", headers=headers, data={"summary": "wants a refund"}
        )
        assert transfer.status_code == 200, transfer.text
        assert transfer.json()["status"] == "connected" and transfer.json()["mode"] == "whisper"
        barge = await console.http.post(f"{url}/mode", headers=headers, data={"mode": "barge"})
        assert (barge.status_code, barge.json()) == (200, {"status": "ok", "mode": "barge"})
        bogus = await console.http.post(f"{url}/mode", headers=headers, data={"mode": "shout"})
        assert bogus.status_code == 409

        hub = console.service.console_hub
        await eventually(
            lambda: hub.summary(bridged.record).state == "human connected (barge)",
            what="the state after the barge",
        )
        page = await console.http.get(f"{BASE}/", headers=headers)
        assert "human connected (barge)" in page.text

        ended = await console.http.post(f"{url}/end", headers=headers)
        assert ended.status_code == 200
        record = await call.ended(timeout=20)

    commands = [c.name for c in record.commands]
    assert commands[:4] == ["call.answer", "call.connect", "agent.whisper", "agent.barge"]
    audits = [
        (e.data["action"], e.data["by"], e.data["result"])
        for e in bridged.record.entries
        if e.data.get("event") == "operator_action"
    ]
    assert audits == [
        ("mode barge", "Lin", "refused"),
        ("transfer", "Lin", "connected"),
        ("mode barge", "Lin", "ok"),
        ("mode shout", "Lin", "refused"),
        ("end", "Lin", "ending"),
    ]


async def test_one_stream_over_the_replicas_cap_is_refused(tmp_path: Path) -> None:
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        hub = console.service.console_hub
        hub.max_streams = 1
        headers = await console.login()
        async with console.http.stream("GET", f"{BASE}/stream", headers=headers) as first:
            assert first.status_code == 200
            await eventually(lambda: hub.open_streams == 1, what="the first stream counted")
            second = await console.http.get(f"{BASE}/stream", headers=headers)
            assert second.status_code == 503
            assert "too many console streams" in second.json()["error"]
        await eventually(lambda: hub.open_streams == 0, what="the closed stream released")
