"""The live-calls table says which way a call goes: a call the bridge placed is outbound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbridge.emulators.gemini_live import GeminiLiveEmulator
from callbridge.emulators.telcoflow import TelcoflowEmulator
from tests.console.kit import BASE, console_service, sse_events
from tests.outbound.kit import REMINDER, TO, person
from tests.service.helpers import API_KEY, CONNECTOR


async def test_a_placed_call_is_listed_as_outbound(tmp_path: Path) -> None:
    outbound = {"enabled": True, "instruction_template": "Remind {name}."}
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=REMINDER) as gemini,
        console_service(telco, gemini, tmp_path, outbound=outbound) as console,
    ):
        telco.expect_callee(TO, person())
        headers = await console.login()
        console.service.app.start_dial(TO, variables={"name": "Ada"})

        def placed(events: list[tuple[str, Any]]) -> bool:
            return any(name == "calls" and rows for name, rows in events)

        events = await sse_events(console.http, f"{BASE}/stream", headers, placed)
    [rows] = [rows for name, rows in events if name == "calls" and rows]
    assert [row["direction"] for row in rows] == ["outbound"]
