"""Appointment booking: an ADK phone agent over a small SQLite calendar.

Opening hours are weekdays 09:00-17:00, one appointment per hour; the ``bookings`` table holds
what is taken. The agent lists free times, books, cancels, and hangs up when the caller is done.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from google.adk.agents import Agent

from callbridge.adapters.adk.tools import call_control_tools
from callbridge.examples._data import run_db

DB_FILE = "appointments.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    day TEXT NOT NULL,
    time TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (day, time)
);
"""
HOURS = tuple(f"{hour:02d}:00" for hour in range(9, 17))


def _parse_day(day: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(day.strip())
    except ValueError:
        return None


def _opening_times(day: dt.date) -> tuple[str, ...]:
    return HOURS if day.weekday() < 5 else ()


async def list_free_slots(day: str) -> dict[str, Any]:
    """List the free appointment times on a day.

    Args:
      day: The date as YYYY-MM-DD.
    """
    date = _parse_day(day)
    if date is None:
        return {"error": "say the date as YYYY-MM-DD"}

    def query(db: sqlite3.Connection) -> list[str]:
        taken = {row[0] for row in db.execute("SELECT time FROM bookings WHERE day = ?", (day,))}
        return [t for t in _opening_times(date) if t not in taken]

    free = await run_db(DB_FILE, SCHEMA, query)
    if not _opening_times(date):
        return {"day": day, "free": [], "note": "closed at weekends"}
    return {"day": day, "free": free}


async def book_appointment(day: str, time: str, name: str) -> dict[str, Any]:
    """Book an appointment for the caller.

    Args:
      day: The date as YYYY-MM-DD.
      time: The start time as HH:00, one of the free times.
      name: The caller's name.
    """
    date = _parse_day(day)
    if date is None or time not in _opening_times(date):
        return {"status": "refused", "reason": "that time is outside opening hours"}

    def insert(db: sqlite3.Connection) -> bool:
        try:
            db.execute("INSERT INTO bookings (day, time, name) VALUES (?, ?, ?)", (day, time, name))
        except sqlite3.IntegrityError:
            return False
        return True

    if not await run_db(DB_FILE, SCHEMA, insert):
        return {"status": "refused", "reason": "that time is already taken"}
    return {"status": "booked", "day": day, "time": time, "name": name}


async def cancel_appointment(day: str, time: str, name: str) -> dict[str, Any]:
    """Cancel the caller's appointment.

    Args:
      day: The date as YYYY-MM-DD.
      time: The start time as HH:00.
      name: The name the appointment was booked under.
    """

    def delete(db: sqlite3.Connection) -> int:
        cursor = db.execute(
            "DELETE FROM bookings WHERE day = ? AND time = ? AND name = ?", (day, time, name)
        )
        return cursor.rowcount

    if not await run_db(DB_FILE, SCHEMA, delete):
        return {"status": "not_found"}
    return {"status": "cancelled", "day": day, "time": time}


root_agent = Agent(
    name="appointment_desk",
    description="Books, lists and cancels appointments by phone.",
    instruction=(
        "You answer the phone for a small practice and manage appointments. Ask for the day, "
        "offer free times with list_free_slots, confirm the time and the caller's name, then "
        "book_appointment. Keep answers short: this is a phone call. When the caller is done, "
        "say goodbye and call end_call."
    ),
    tools=[
        list_free_slots,
        book_appointment,
        cancel_appointment,
        *call_control_tools(names=["end_call"]),
    ],
)
