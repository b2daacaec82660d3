"""Appointment reminder: an outbound ADK agent over the booking example's calendar.

The bridge dials the patient (``app.dial`` / ``POST /calls`` / a campaign row). A person who
picks up hears the reminder and can confirm or move the appointment (both against the
``bookings`` table of ``callbridge.examples.appointment_booking``); a mailbox gets a short message
after
the beep (the bridge's outbound etiquette decides which, not the agent). Run it on the
emulators with ``callbridge demo --agent callbridge.examples.appointment_reminder``.

Tenant settings for it: ``model.backend = "adk"``, ``model.adk_agent =
"callbridge.examples.appointment_reminder:root_agent"``, ``outbound.enabled = true``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from google.adk.agents import Agent

from callbridge.adapters.adk.tools import call_control_tools
from callbridge.examples._data import run_db
from callbridge.examples.appointment_booking import (
    DB_FILE,
    SCHEMA,
    book_appointment,
    cancel_appointment,
)


async def confirm_appointment(day: str, time: str, name: str) -> dict[str, Any]:
    """Confirm that the person keeps their appointment.

    Args:
      day: The date as YYYY-MM-DD.
      time: The start time as HH:00.
      name: The name the appointment is booked under.
    """

    def find(db: sqlite3.Connection) -> bool:
        row = db.execute(
            "SELECT 1 FROM bookings WHERE day = ? AND time = ? AND name = ?", (day, time, name)
        ).fetchone()
        return row is not None

    if not await run_db(DB_FILE, SCHEMA, find):
        return {"status": "not_found"}
    return {"status": "confirmed", "day": day, "time": time, "name": name}


async def reschedule_appointment(
    day: str, time: str, name: str, new_day: str, new_time: str
) -> dict[str, Any]:
    """Move the person's appointment to a free time (book the new one, then cancel the old).

    Args:
      day: The current date as YYYY-MM-DD.
      time: The current start time as HH:00.
      name: The name the appointment is booked under.
      new_day: The new date as YYYY-MM-DD.
      new_time: The new start time as HH:00.
    """
    booked = await book_appointment(new_day, new_time, name)
    if booked["status"] != "booked":
        return booked
    await cancel_appointment(day, time, name)
    return {"status": "rescheduled", "day": new_day, "time": new_time, "name": name}


root_agent = Agent(
    name="appointment_reminder",
    description="Calls patients to confirm or move their appointment.",
    instruction=(
        "You are calling a patient of a small practice about their appointment. Say who you "
        "are and when the appointment is, and ask whether they can make it. If yes, call "
        "confirm_appointment; if not, offer another time and call reschedule_appointment. "
        "Keep it short, then say goodbye and call end_call. If you are told you reached an "
        "answering machine, leave a short reminder and ask them to call back to reschedule."
    ),
    tools=[
        confirm_appointment,
        reschedule_appointment,
        *call_control_tools(names=["end_call"]),
    ],
)
