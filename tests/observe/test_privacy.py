"""Privacy: redaction before anything is stored, erasure of one caller, retention by age.

Erasure and retention run on SQLite and on the real PostgreSQL the store tests start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callbridge.bridge.config import PrivacySettings
from callbridge.bridge.privacy import Redactor, caller_key
from callbridge.bridge.record import CallRecord, mask_number
from callbridge.service.retention import purge
from callbridge.service.store import RecordStore
from callbridge.service.store_cli import main as calls_main

ALICE = "+15551230001"
BOB = "+15559870002"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("my card is 4111 1111 1111 1111 thanks", "my card is [card] thanks"),
        ("4111-1111-1111-1111", "[card]"),
        ("5500005555555559", "[card]"),
        # Not Luhn-valid: an order number, kept.
        ("order 1234 5678 9012 3456", "order 1234 5678 9012 3456"),
        ("call me on +1 (555) 123-4567 please", "call me on [phone] please"),
        ("it's 020 7946 0958", "it's [phone]"),
        ("write to jane.doe+bills@example.co.uk now", "write to [email] now"),
        # Short numbers are not phone numbers.
        ("order 4471, 3 items", "order 4471, 3 items"),
    ],
)
def test_redactor_replaces_cards_phones_and_emails(text: str, redacted: str) -> None:
    assert Redactor(cards=True, phones=True, emails=True)(text) == redacted


def test_only_the_chosen_kinds_are_redacted() -> None:
    text = "card 4111111111111111, phone +15551234567, mail a@b.io"
    assert Redactor()(text) == "card [card], phone +15551234567, mail a@b.io"
    assert Redactor(cards=False, emails=True)(text) == (
        "card 4111111111111111, phone +15551234567, mail [email]"
    )
    assert PrivacySettings().redactor() == Redactor(cards=True, phones=False, emails=False)


def test_transcript_retention_may_not_outlive_the_call() -> None:
    with pytest.raises(ValueError, match="transcript_retention_days"):
        PrivacySettings(transcript_retention_days=30, call_retention_days=7)


def test_caller_key_ignores_formatting_and_depends_on_the_secret() -> None:
    assert caller_key("+1 555 123 0001", "s") == caller_key("+15551230001", "s")
    assert caller_key(ALICE, "s") != caller_key(ALICE, "t")
    assert caller_key(ALICE, "s") != caller_key(BOB, "s")


# ── On the store ──────────────────────────────────────────────────────────────────


def make_call(call_id: str, caller: str, *, age_days: float = 0.0) -> CallRecord:
    record = CallRecord(call_id, "acme", caller, "+15550009999", redact=Redactor())
    record.started_at = time.time() - age_days * 86400
    return record


def converse(record: CallRecord, recording: Path | None = None) -> None:
    record.mark_answered()
    record.transcript("caller", "Hi, my card number is 4111 1111 1111 1111.")
    record.transcript("agent", "Thank you.")
    record.note("agent_turn_start")
    record.finish("caller_hangup")
    if recording is not None:
        record.note("recording_saved", uri=recording.resolve().as_uri(), seconds=1.0)


async def fill_store(url: str, records: list[tuple[CallRecord, Path | None]]) -> None:
    async with RecordStore(url) as store:
        for record, recording in records:
            record.listeners.append(store.listener())
            converse(record, recording)
        await store.flush()


async def test_redacted_transcripts_are_what_the_store_keeps(store_url: str) -> None:
    record = make_call("call-r", ALICE)
    await fill_store(store_url, [(record, None)])
    async with RecordStore(store_url) as store:
        stored = await store.get_call("call-r")
    assert stored is not None
    lines = [e.data["text"] for e in stored.entries if e.kind == "transcript"]
    assert lines == ["Hi, my card number is [card].", "Thank you."]
    assert "4111" not in repr(stored)


async def test_erase_removes_one_callers_records_transcripts_and_recordings(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recordings = tmp_path / "recordings"
    linked = recordings / "acme" / "2026-12-01" / "call-a1.flac"
    unlinked = recordings / "acme" / "2026-12-02" / "call-a2.flac.part"  # a crashed writer
    kept = recordings / "acme" / "2026-12-02" / "call-b1.flac"
    for path in (linked, unlinked, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fLaC")
    await fill_store(
        store_url,
        [
            (make_call("call-a1", ALICE), linked),
            (make_call("call-a2", ALICE), None),
            (make_call("call-b1", BOB), kept),
        ],
    )
    status = await asyncio.to_thread(
        calls_main,
        [
            "erase",
            "--caller",
            "+1 555 123 0001",
            "--url",
            store_url,
            "--recordings",
            str(recordings),
        ],
    )
    out = capsys.readouterr().out
    assert status == 0
    assert f"erased caller {mask_number(ALICE)}: 2 calls" in out
    assert "(4 transcript lines), 2 recording files" in out
    assert "call call-a1" in out and "call call-a2" in out and "call-b1" not in out
    assert f"deleted {linked}" in out and f"deleted {unlinked}" in out
    assert not linked.exists() and not unlinked.exists() and kept.exists()
    async with RecordStore(store_url) as store:
        left = await store.list_calls()
        bob = await store.get_call("call-b1")
    assert [c.call_id for c in left] == ["call-b1"]
    assert bob is not None and len([e for e in bob.entries if e.kind == "transcript"]) == 2
    # Asked again: nothing left, and it says so.
    assert (
        await asyncio.to_thread(calls_main, ["erase", "--caller", ALICE, "--url", store_url]) == 0
    )
    assert f"no calls of caller {mask_number(ALICE)}" in capsys.readouterr().out


async def test_transcripts_expire_before_the_rest_of_the_record(store_url: str) -> None:
    await fill_store(
        store_url,
        [
            (make_call("call-old", ALICE, age_days=40), None),
            (make_call("call-mid", ALICE, age_days=10), None),
            (make_call("call-new", BOB), None),
        ],
    )
    now = time.time()
    async with RecordStore(store_url) as store:
        purged = await purge(
            store, transcripts_before=now - 7 * 86400, calls_before=now - 30 * 86400
        )
        left = {c.call_id: await store.get_call(c.call_id) for c in await store.list_calls()}
    assert purged.calls == 1 and purged.transcript_lines == 4
    assert sorted(left) == ["call-mid", "call-new"]
    mid, new = left["call-mid"], left["call-new"]
    assert mid is not None and new is not None
    assert [e.kind for e in mid.entries if e.kind == "transcript"] == []
    assert mid.outcome == "caller_hangup" and any(e.kind == "state" for e in mid.entries)
    assert len([e for e in new.entries if e.kind == "transcript"]) == 2
