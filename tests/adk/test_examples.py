"""The example agents: they load as tenants' agents, their tools work on their SQLite files, and
the after-hours voicemail takes a message and hangs up through an unmodified ADK Runner."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from callbridge.adapters.adk import AdkConnector
from callbridge.bridge.ports import CallCommand
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Turn
from callbridge.examples import appointment_booking, database_lookup
from callbridge.examples._data import DATA_ENV
from callbridge.examples.after_hours_voicemail import stored_messages
from tests.adk.helpers import (
    CALL_ID,
    MODEL_25,
    FakeCall,
    FakeControl,
    ListSink,
    request,
    speak,
    tenant_config,
    tool_context,
)

EXAMPLES = [
    "callbridge.examples.appointment_booking:root_agent",
    "callbridge.examples.database_lookup:root_agent",
    "callbridge.examples.human_escalation:root_agent",
    "callbridge.examples.after_hours_voicemail:app",
    "callbridge.examples.appointment_reminder:root_agent",
]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))


@pytest.mark.parametrize("target", EXAMPLES)
async def test_examples_load_as_tenant_agents(target: str, tmp_path: Path) -> None:
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "adk.sqlite", adk_agent=target)
        async with AdkConnector(config) as connector:
            assert connector.observed and connector.model == MODEL_25


def _next_weekday(weekday: int) -> str:
    today = dt.date.today()
    return (today + dt.timedelta(days=(weekday - today.weekday()) % 7 + 7)).isoformat()


async def test_appointment_booking_tools() -> None:
    monday, saturday = _next_weekday(0), _next_weekday(5)
    free = await appointment_booking.list_free_slots(monday)
    assert free["free"] == list(appointment_booking.HOURS)
    booked = await appointment_booking.book_appointment(monday, "10:00", "Ada")
    assert booked["status"] == "booked"
    again = await appointment_booking.book_appointment(monday, "10:00", "Bob")
    assert again["status"] == "refused"
    assert "10:00" not in (await appointment_booking.list_free_slots(monday))["free"]
    closed = await appointment_booking.list_free_slots(saturday)
    assert closed["free"] == [] and "closed" in closed["note"]
    assert (await appointment_booking.book_appointment(monday, "20:00", "Ada"))["status"] == (
        "refused"
    )
    assert "error" in await appointment_booking.list_free_slots("next tuesday")
    cancelled = await appointment_booking.cancel_appointment(monday, "10:00", "Ada")
    assert cancelled["status"] == "cancelled"
    assert (await appointment_booking.cancel_appointment(monday, "10:00", "Ada"))["status"] == (
        "not_found"
    )


async def test_database_lookup_tool() -> None:
    found = await database_lookup.lookup_order("a-1001")
    assert found == {
        "order_number": "A1001",
        "status": "shipped",
        "carrier": "express",
        "eta": "Thursday before noon",
    }
    assert (await database_lookup.lookup_order("Z9"))["status"] == "not_found"


async def test_after_hours_voicemail_takes_a_message_and_hangs_up(tmp_path: Path) -> None:
    args = {"name": "Ada", "callback_number": "+15550003333", "message": "Call me back."}
    script = Script(
        greeting=Turn(
            [
                speak("agent_greeting", 0.3),
                CallTool("take_message", args),
                speak("agent_farewell", 0.4),
                CallTool("end_call", {"reason": "message taken"}),
            ]
        )
    )
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(
            emu,
            MODEL_25,
            tmp_path / "adk.sqlite",
            adk_agent="callbridge.examples.after_hours_voicemail",
        )
        call = FakeCall()
        control = FakeControl(played=lambda: len(emu.sessions[0].tool_responses) == 2)
        ctx = tool_context(config, call, control, ListSink())
        async with (
            AdkConnector(config) as connector,
            connector.open(request()) as session,
        ):
            session.bind_call(ctx)
            await session.send_text("A caller is connected after hours.")
            async with asyncio.timeout(20):
                await control.done.wait()
        log = emu.sessions[0]

    (message,) = await stored_messages()
    assert {k: message[k] for k in args} == args and message["call_id"] == CALL_ID
    assert [r["name"] for r in log.tool_responses] == ["take_message", "end_call"]
    assert log.tool_responses[0]["response"]["status"] == "stored"
    assert call.sent() == [CallCommand.DISCONNECT]
    assert control.finished == [("agent_hangup", "none")]
