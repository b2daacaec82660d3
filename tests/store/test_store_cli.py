"""``callbridge calls list|show`` against a real records file (and once through PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callbridge.bridge.record import CallRecord
from callbridge.service.store import RecordStore
from callbridge.service.store_cli import URL_ENV, default_url, main
from tests.store.conftest import fill, full_record

REPO = Path(__file__).resolve().parents[2]


async def _populate(url: str) -> CallRecord:
    record = full_record()
    async with RecordStore(url) as store:
        record.listeners.append(store.listener())
        # finish() (in fill) stamps the end now: a 1m05s call. Set here, after the store has
        # opened (migrations can take a while on a loaded machine), not before.
        record.started_at = time.time() - 65.0
        fill(record)
        other = CallRecord("call-2", "acme", "+15550001111", "+15550002222")
        other.listeners.append(store.listener())
        other.note("call_started")
        await store.flush()
    return record


@pytest.fixture
def records(sqlite_url: str) -> str:
    asyncio.run(_populate(sqlite_url))
    return sqlite_url


def test_list_shows_newest_first_with_masked_caller(
    records: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--url", records]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CALL", "ID", "STARTED", "(UTC)", "DURATION", "OUTCOME", "CALLER"]
    newest, oldest = lines[1].split(), lines[2].split()
    assert newest[:1] + newest[3:] == ["call-2", "-", "in_progress", "********1111"]
    assert oldest[:1] + oldest[3:] == ["call-1", "1m05s", "completed", "*********0123"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", " ".join(oldest[1:3]))
    assert main(["list", "--url", records, "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_show_prints_header_and_readable_timeline(
    records: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "call-1", "--url", records]) == 0
    out = capsys.readouterr().out
    assert "call:     call-1" in out
    assert "caller:   *********0123" in out
    assert "duration: 1m05s" in out
    assert "usage:    input_tokens=120 output_tokens=48" in out
    timeline = out.split("timeline (10 entries):\n")[1].splitlines()
    kinds = [line.split()[1] for line in timeline]
    assert kinds == [
        *("timeline", "state", "transcript", "transcript", "tool", "command"),
        *("warning", "usage", "timeline", "state"),
    ]
    assert timeline[2].endswith("transcript  caller: Hello, I need help with my bill.")
    assert timeline[5].endswith(
        "command     connect failed (TIMEOUT) target=+441632960555 ring_s=30"
    )
    assert timeline[6].endswith("warning     SLOW_TOOL_CALL: transfer_to_human ran 6.1 s")
    assert timeline[9].endswith("state       ended outcome=completed")


def test_show_json_is_the_whole_call(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "call-1", "--json", "--url", records]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["call_id"] == "call-1" and body["outcome"] == "completed"
    assert body["duration"] == pytest.approx(65.2, abs=1.0)
    assert len(body["entries"]) == 10
    assert body["entries"][2] == {
        "kind": "transcript",
        "t": body["entries"][2]["t"],
        "data": {"speaker": "caller", "text": "Hello, I need help with my bill."},
    }


def test_unknown_call_is_a_clear_error(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "no-such-call", "--url", records]) == 1
    err = capsys.readouterr().err
    assert err.startswith("callbridge calls: no call 'no-such-call' in sqlite+aiosqlite:///")


def test_missing_sqlite_file_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'typo.sqlite'}"
    assert main(["list", "--url", url]) == 1
    assert "no records database at" in capsys.readouterr().err
    assert not (tmp_path / "typo.sqlite").exists()


def test_default_url_comes_from_the_environment() -> None:
    assert default_url({URL_ENV: "postgresql+asyncpg://h/db"}) == "postgresql+asyncpg://h/db"
    assert default_url({}) == "sqlite+aiosqlite:///callbridge-records.sqlite"


def test_callbridge_calls_through_the_main_cli_and_postgres(pg_url: str) -> None:
    """The real entry point, the env var default, and a PostgreSQL URL together."""
    asyncio.run(_populate(pg_url))
    result = subprocess.run(
        [sys.executable, "-m", "callbridge.service.cli", "calls", "show", "call-1"],
        cwd=REPO,
        env={"CALLBRIDGE_RECORDS_URL": pg_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "caller: Hello, I need help with my bill." in result.stdout
