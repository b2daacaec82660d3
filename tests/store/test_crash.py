"""SIGKILL mid-call: everything appended at least 0.5 s before the kill is in the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from callbridge.service.store import RecordStore

REPO = Path(__file__).resolve().parents[2]
KILL_AFTER_ENTRIES = 300  # about 1.5 s of entries at the child's pace
MARGIN_S = 0.5


async def test_sigkill_mid_call_keeps_what_was_appended_before(
    sqlite_url: str, tmp_path: Path
) -> None:
    stderr_path = tmp_path / "child.stderr"
    with stderr_path.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.store.crash_child",
            sqlite_url,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    appended: dict[int, float] = {}
    killed_at: float | None = None
    try:
        while len(appended) < KILL_AFTER_ENTRIES:
            line = await child.stdout.readline()
            assert line, f"child exited early: {stderr_path.read_text()}"
            seq, at = line.split()
            appended[int(seq)] = float(at)
        # os.kill, not child.kill(): Popen.send_signal() polls first and can reap the child
        # behind asyncio's watcher, which then reports exit status 255.
        os.kill(child.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for line in (await child.stdout.read()).splitlines():  # printed before it died
            seq, at = line.split()
            appended[int(seq)] = float(at)
    finally:
        if killed_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with RecordStore(sqlite_url) as store:
        stored = await store.get_call("crash-1")
    assert stored is not None, stderr_path.read_text()
    early = [seq for seq, at in appended.items() if at <= killed_at - MARGIN_S]
    assert len(early) > 50, "the child appended too little before the margin to prove anything"
    # Committed entries form an unbroken prefix of what was appended, in order...
    assert len(stored.entries) <= len(appended)
    assert [_number(entry.data) for entry in stored.entries] == list(range(len(stored.entries)))
    # ...and that prefix reaches at least every entry appended 0.5 s before the kill.
    assert len(stored.entries) >= max(early) + 1
    assert stored.outcome == "in_progress" and stored.ended_at is None


def _number(data: dict[str, Any]) -> int:
    """The child's entry number: ``i`` in the data, or the last word of a transcript."""
    if "i" in data:
        return int(data["i"])
    return int(data["text"].rpartition(" ")[2])
