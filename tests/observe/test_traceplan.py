"""The trace plan as a table: record entries in, span tree out (no SDK involved)."""

from __future__ import annotations

from typing import Any

from callbridge.bridge.record import RecordEntry
from callbridge.bridge.traceplan import PII, CallFacts, SpanPlan, plan_trace

FACTS = CallFacts(
    call_id="c1",
    tenant="acme",
    caller="+15551234567",
    callee="+15550000000",
    started_at=1_700_000_000.0,
    outcome="caller_hangup",
    usage={"prompt_tokens": 10, "response_tokens": 5, "tokens_prompt_audio": 10},
    cost_usd=0.01,
)


def tl(t: float, event: str, **data: Any) -> RecordEntry:
    return RecordEntry("timeline", t, {"event": event, **data})


def entry(kind: str, t: float, **data: Any) -> RecordEntry:
    return RecordEntry(kind, t, data)  # type: ignore[arg-type]


def names(span: SpanPlan) -> list[str]:
    return [child.name for child in span.children]


def test_a_turn_runs_from_speech_end_even_when_the_end_is_noted_late() -> None:
    root = plan_trace(
        FACTS,
        [
            tl(0.2, "model_connected", model="m"),
            entry("state", 0.2, state="answered"),
            tl(3.0, "agent_turn_start"),
            tl(3.3, "caller_stopped_speaking", silence_ms=500),  # speech ended at 2.8
            tl(5.0, "agent_turn_end"),
            entry("state", 6.0, state="ended", outcome="caller_hangup"),
        ],
    )
    assert names(root) == ["model_connect", "answer", "turn"]
    turn = root.children[2]
    assert (turn.start, turn.end) == (2.8, 5.0)
    assert turn.attributes["turn.user_bot_latency_seconds"] == 0.2
    assert turn.attributes["turn.was_interrupted"] is False
    assert root.end == 6.0
    assert root.attributes["gen_ai.request.model"] == "m"
    assert root.attributes["gen_ai.usage.input_tokens"] == 10
    assert root.attributes["callbridge.cost.usd"] == 0.01


def test_a_barge_in_ends_the_turn_and_lasts_until_the_clear() -> None:
    root = plan_trace(
        FACTS,
        [
            tl(1.0, "caller_stopped_speaking", silence_ms=500),
            tl(1.2, "agent_turn_start"),
            tl(4.0, "barge_in", played_ms=2700, dropped_bytes=100),
            tl(4.01, "buffer_cleared", cleared_bytes=64000, interrupt_to_clear_ms=10.0),
            entry("warning", 4.5, code="SLOW_MODEL_RESPONSE", description="slow"),
        ],
    )
    [turn] = [c for c in root.children if c.name == "turn"]
    assert turn.attributes["turn.was_interrupted"] is True and turn.end == 4.0
    [barge] = turn.children
    assert barge.name == "barge_in" and (barge.start, barge.end) == (4.0, 4.01)
    assert barge.attributes["callbridge.barge_in.played_ms"] == 2700
    assert barge.attributes["callbridge.barge_in.clear_latency_ms"] == 10.0
    # The warning came after the turn ended: it belongs to the call.
    assert [e.name for e in root.events] == ["callbridge.warning"]


def test_tools_and_their_commands_nest_and_failures_are_errors() -> None:
    root = plan_trace(
        FACTS,
        [
            tl(1.0, "tool_call", name="transfer_to_human"),
            entry(
                "tool",
                1.0,
                name="transfer_to_human",
                call_id="f1",
                status="started",
                args={"reason": "card 4111"},
            ),
            tl(1.0, "transfer_requested", reason="wants a person", summary="billing"),
            entry(
                "command",
                3.0,
                command="connect",
                ok=False,
                error_code="CALL_UNANSWERED",
                elapsed_s=1.9,
            ),
            entry(
                "tool",
                3.1,
                name="transfer_to_human",
                call_id="f1",
                status="done",
                response={"status": "unanswered"},
            ),
        ],
    )
    [turn] = root.children
    [tool] = turn.children
    assert tool.name == "execute_tool transfer_to_human" and (tool.start, tool.end) == (1.0, 3.1)
    assert tool.attributes["callbridge.tool.result_status"] == "unanswered"
    [command] = tool.children
    assert command.name == "call_command connect" and command.error == "CALL_UNANSWERED"
    assert round(command.start, 3) == 1.1
    assert [e.name for e in tool.events] == ["transfer_requested"]
    every = [k for span in root.walk() for k in span.attributes]
    every += [k for span in root.walk() for e in span.events for k in e.attributes]
    assert not [k for k in every if k.startswith(PII)]


def test_caller_content_only_with_the_opt_in() -> None:
    entries = [
        entry("transcript", 0.9, speaker="caller", text="I want a person"),
        tl(1.0, "caller_stopped_speaking"),
        tl(1.5, "agent_turn_start"),
        entry("transcript", 2.0, speaker="agent", text="Connecting you"),
        entry("tool", 2.1, name="lookup", call_id="f2", status="started", args={"q": 1}),
        entry("tool", 2.2, name="lookup", call_id="f2", status="done", response={"a": 2}),
    ]
    plain = plan_trace(FACTS, entries)
    rich = plan_trace(FACTS, entries, include_content=True)
    assert not [k for s in plain.walk() for k in s.attributes if k.startswith(PII)]
    assert plain.attributes["callbridge.call.caller"] == "********4567"
    [turn] = [c for c in rich.children if c.name == "turn"]
    assert turn.attributes[PII + "caller_text"] == "I want a person"
    assert turn.attributes[PII + "agent_text"] == "Connecting you"
    [tool] = turn.children
    assert tool.attributes[PII + "tool.arguments"] == '{"q": 1}'
    assert tool.attributes[PII + "tool.result"] == '{"a": 2}'
    assert rich.attributes[PII + "caller"] == "+15551234567"


def test_rotations_are_spans_over_the_time_they_took_and_goaways_events() -> None:
    root = plan_trace(
        FACTS,
        [
            tl(10.0, "model_session", kind="go_away", time_left_s=60.0),
            tl(
                12.0,
                "model_session",
                kind="rotated",
                took_ms=250.0,
                handle_age_s=1.5,
                replayed_frames=3,
                resumed=True,
                close_code=None,
            ),
            tl(
                20.0,
                "model_session",
                kind="reconnected",
                took_ms=500.0,
                attempt=2,
                close_code=1011,
                resumed=True,
            ),
        ],
    )
    rotated, reconnected = root.children
    assert rotated.name == "model_session.rotated" and (rotated.start, rotated.end) == (11.75, 12.0)
    assert rotated.attributes["callbridge.model_session.handle_age_s"] == 1.5
    assert rotated.attributes["callbridge.model_session.replayed_frames"] == 3
    assert "callbridge.model_session.close_code" not in rotated.attributes
    assert reconnected.attributes["callbridge.model_session.close_code"] == 1011
    [go_away] = root.events
    assert go_away.name == "model_session.go_away"
    assert go_away.attributes["callbridge.model_session.time_left_s"] == 60.0
    assert root.end == 20.0  # no end entry (a crash): the last fact ends the call
