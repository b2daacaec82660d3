"""The console's pure parts: sessions and CSRF, the live summary, the timeline, filters."""

from __future__ import annotations

import pytest

from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.service.console import auth
from callbridge.service.console.app import dbfs
from callbridge.service.console.history import HistoryFilter
from callbridge.service.console.live import ConsoleHub, Summary, fold
from callbridge.service.console.timeline import timeline_svg

TOKEN = "admin-token-0123456789abcdef"


def test_a_session_round_trips_and_any_change_to_it_is_refused() -> None:
    cookie, session = auth.new_session(TOKEN, "Ada", now=1000.0)
    assert auth.read_session(TOKEN, cookie, now=1001.0) == session
    payload, signature = cookie.split(".")
    tampered = [
        "",
        None,
        payload,
        f"{payload}.{signature[:-2]}AA",
        f"{payload[:-2]}AA.{signature}",
        cookie + ".x",
    ]
    for value in tampered:
        assert auth.read_session(TOKEN, value, now=1001.0) is None, value
    assert auth.read_session("another-admin-token-012345", cookie, now=1001.0) is None
    assert auth.read_session(TOKEN, cookie, now=1000.0 + auth.SESSION_TTL_S) is None


def test_a_csrf_token_belongs_to_one_session() -> None:
    _, ada = auth.new_session(TOKEN, "Ada")
    _, bob = auth.new_session(TOKEN, "Ada")
    token = auth.csrf_token(TOKEN, ada)
    assert auth.csrf_ok(TOKEN, ada, token)
    assert not auth.csrf_ok(TOKEN, bob, token)
    assert not auth.csrf_ok(TOKEN, ada, None)
    assert not auth.csrf_ok(TOKEN, ada, "")
    assert not auth.csrf_ok("another-admin-token-012345", ada, token)


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),
        ("http://127.0.0.1:8080", True),
        ("https://127.0.0.1:8080", True),
        ("null", False),
        ("http://127.0.0.1:9999", False),
        ("https://evil.example", False),
    ],
)
def test_only_this_origin_may_post(origin: str | None, ok: bool) -> None:
    assert auth.same_origin(origin, "127.0.0.1:8080", "http") is ok


def e(kind: str, t: float = 0.0, **data: object) -> RecordEntry:
    return RecordEntry(kind, t, dict(data))  # type: ignore[arg-type]


STATES = [
    ([], "connecting"),
    ([e("state", state="answered"), e("timeline", event="model_connected", model="m")], "greeting"),
    ([e("timeline", event="agent_turn_end")], "talking"),
    ([e("tool", name="lookup", call_id="1", status="started")], "tool running"),
    ([e("tool", name="lookup", call_id="1", status="done")], "talking"),
    ([e("tool", name="transfer_to_human", call_id="2", status="started")], "transferring"),
    ([e("command", command="connect", ok=True)], "human connected"),  # before the tool returns
    ([e("tool", name="transfer_to_human", call_id="2", status="done")], "human connected"),
    ([e("command", command="whisper", ok=True)], "human connected (whisper)"),
    ([e("command", command="spy", ok=False)], "human connected (whisper)"),
    ([e("state", state="ended", outcome="x")], "ended"),
]


def test_the_live_state_follows_the_record_entry_by_entry() -> None:
    summary = Summary()
    seen = []
    for entries, _ in STATES:
        for entry in entries:
            fold(summary, entry)
        seen.append(summary.state)
    assert seen == [state for _, state in STATES]


def test_a_barge_in_ends_the_greeting_and_warnings_are_counted() -> None:
    summary = Summary()
    for entry in [
        e("state", state="answered"),
        e("timeline", event="model_connected", model="m"),
        e("timeline", event="barge_in"),
        e("warning", code="SLOW_RESPONSE"),
        e("warning", code="SLOW_RESPONSE"),
        e("timeline", event="transfer_requested"),
    ]:
        fold(summary, entry)
    assert (summary.barge_ins, dict(summary.warnings)) == (1, {"SLOW_RESPONSE": 2})
    assert summary.state == "transferring"
    fold(summary, e("command", command="connect", ok=False, error_code="CALL_UNANSWERED"))
    assert summary.state == "talking"


def test_the_hub_wakes_only_the_streams_watching_that_call() -> None:
    hub = ConsoleHub(max_streams=1)
    a = CallRecord("a", "t", "+1555", "+1666", listeners=[hub])
    b = CallRecord("b", "t", "+1555", "+1666", listeners=[hub])
    with hub.watch("a") as wake_a:
        b.note("x")
        assert not wake_a.is_set()
        a.note("x")
        assert wake_a.is_set()
        assert hub.summary(a).cursor == 1
    a.note("y")  # nobody watching: nothing to wake, nothing kept
    assert hub._watchers == {}
    with hub.stream():
        assert hub.full
    assert not hub.full
    hub.forget_except(set())
    assert hub._summaries == {}


def test_the_timeline_draws_every_lane_and_escapes_what_it_quotes() -> None:
    entries = [
        e("timeline", 0.1, event="model_connected", model="m"),
        e("timeline", 0.5, event="agent_turn_start"),
        e("timeline", 2.0, event="barge_in"),
        e("transcript", 2.5, speaker="caller", text="<script>alert(1)</script>"),
        e("tool", 3.0, name="lookup", call_id="1", status="started"),
        e("tool", 4.0, name="lookup", call_id="1", status="done"),
        e("command", 5.0, command="disconnect", ok=True, error_code=None),
        e("timeline", 5.5, event="operator_action", action="end", by="Ada & Co", result="ok"),
        e("warning", 6.0, code="SLOW_RESPONSE", description="slow"),
    ]
    svg = timeline_svg(entries, 10.0)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "Ada &amp; Co" in svg
    for lane in ("agent", "caller", "barge-in", "tools", "commands", "operator", "model"):
        assert f'class="mark {lane}"' in svg, lane
    assert 'class="mark warnings"' in svg
    assert "agent turn (cut by barge-in)" in svg
    assert "10s" in svg  # the axis reaches the call's end


def test_history_filters_name_the_field_that_is_wrong() -> None:
    wanted = HistoryFilter.parse({"from": "2026-13-01", "to": "", "outcome": " agent_hangup "})
    assert wanted.problems == ("from: expected a date like 2026-12-03, got '2026-13-01'",)
    assert wanted.outcome == "agent_hangup" and wanted.day_to is None


def test_levels_are_in_dbfs_floored_at_silence() -> None:
    assert dbfs(0.0) == -90.0
    assert dbfs(32768.0) == 0.0
    assert dbfs(3276.8) == -20.0
