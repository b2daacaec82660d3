"""`callbridge demo --agent callbridge.examples.appointment_reminder`: two real outbound calls."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from callbridge.emulators.demo import TimelinePrinter
from callbridge.emulators.outbound_demo import run_reminder_demo
from callbridge.examples._data import DATA_ENV


async def test_reminder_demo_confirms_and_leaves_a_voicemail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert await run_reminder_demo(16000, str(tmp_path), TimelinePrinter(sys.stdout)) == 0
    out = capsys.readouterr().out
    assert "Outcomes: +15551230001 answered, +15551230002 voicemail_left" in out
    assert "'status': 'confirmed'" in out  # the agent's tool found the booking in the calendar
    assert "callee detected {'kind': 'machine'" in out
