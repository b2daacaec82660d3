"""call_flow.setup: the tenant declares what the connector handles, the platform obeys."""

from __future__ import annotations

import asyncio

import pytest

from callbridge.bridge.errors import ConfigError
from callbridge.bridge.outbound import DialOutcome
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause
from tests.e2e.scenarios import agent
from tests.outbound.kit import TO, outbound_stack
from tests.outbound.test_dial import SHORT_PERSON

GREETING = Script(greeting=Turn([agent("agent_greeting")]))


async def test_missed_only_takes_only_calls_a_human_missed() -> None:
    overrides = {"call_flow": {"inbound": "MISSED_ONLY"}}
    async with LocalStack(GREETING, overrides=overrides) as stack:
        flows = list(stack.telco.call_flows.values())
        assert flows == [
            [
                {
                    "inboundCall": "MISSED_ONLY",
                    "outboundCall": False,
                    "inboundMessage": False,
                    "outboundMessage": False,
                }
            ]
        ]
        taken = stack.place_call(CallerScript([Pause(0.5), HangUp()]), missed=True)
        by_human = stack.place_call(CallerScript([Pause(0.5), HangUp()]), missed=False)
        await taken.ended(timeout=15)
        await asyncio.sleep(1.0)  # several offer rounds
        assert by_human.notifies_sent == 0
        assert taken.record.answered_at is not None


async def test_no_declaration_is_sent_by_default_and_all_calls_are_offered() -> None:
    async with LocalStack(GREETING) as stack:
        assert list(stack.telco.call_flows.values()) == [[]]
        call = stack.place_call(CallerScript([Pause(0.5), HangUp()]), missed=False)
        await call.ended(timeout=15)
        assert call.record.answered_at is not None


async def test_outbound_off_refuses_to_dial() -> None:
    async with LocalStack(GREETING) as stack:
        assert stack.app is not None
        with pytest.raises(ConfigError, match=r"^outbound\.enabled: "):
            await stack.app.dial(TO)
    assert stack.telco.dialled == []


async def test_call_flow_is_declared_again_after_a_reconnect() -> None:
    """The SDK does not replay call_flow.setup on a new SM-WS; the dialler does."""
    async with outbound_stack() as stack:
        stack.telco.expect_callee(TO, SHORT_PERSON)
        app = stack.app
        assert app is not None
        first = set(stack.telco.call_flows)
        await stack.telco.drop_session_manager()
        for _ in range(100):
            if stack.telco.call_flows.keys() - first:
                break
            await asyncio.sleep(0.05)
        result = await app.dial(TO, variables={"name": "Ada"})
        flows = [f for sm, f in stack.telco.call_flows.items() if sm not in first]
    assert result.outcome is DialOutcome.ANSWERED, result
    assert flows[0][-1]["outboundCall"] is True
