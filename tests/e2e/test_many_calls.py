"""One bridge process must keep taking calls: the SDK's event-bus history trap (issue 9)."""

from __future__ import annotations

import asyncio
import time

import telcoflow

from callbridge.emulators.gemini_live import Script
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, TelcoflowEmulator

SEQUENTIAL_CALLS = 150


async def test_150_sequential_calls_are_all_answered_and_completed() -> None:
    async with LocalStack(Script(), overrides={"model": {"greeting_prompt": None}}) as stack:
        for index in range(SEQUENTIAL_CALLS):
            call = stack.place_call(CallerScript([Pause(0.1), HangUp()]))
            record = await call.ended(timeout=20)
            assert record.answered_at is not None, f"call {index} was never answered"
            assert record.end_reason == "caller_hangup", f"call {index}: {record.end_reason}"
        assert stack.app is not None
        stats = stack.app.source.stats
        # Every call's task has finished and released its capacity slot.
        async with asyncio.timeout(5):
            while stack.app.source.active_calls or stack.app.source.reserved:
                await asyncio.sleep(0.02)
        manager = stack.app.source._manager
        assert manager is not None
        assert len(manager._registry) <= 1, "closed sessions must not pile up in the SDK"
    assert stats.calls_started == SEQUENTIAL_CALLS
    assert stats.calls_finished == SEQUENTIAL_CALLS


async def test_unfixed_sdk_goes_deaf_after_about_33_calls() -> None:
    """The emulator reproduces the trap, so the test above would fail without the fix."""
    delivered: list[str] = []
    async with TelcoflowEmulator(api_key="k", connector_uuid="c") as emu:
        manager = telcoflow.SessionManager(
            telcoflow.SessionManagerConfig.create(
                api_key="k", connector_uuid="c", base_url=emu.base_url
            )
        )

        async def on_notify(notice: telcoflow.SessionNotification) -> None:
            session = await manager.open_session(notice.session_id)

            async def on_call(call: telcoflow.Call) -> None:
                delivered.append(call.id)
                await call.answer()

            session.on_incoming_call(on_call)
            await session.ready()

        manager.on_session_notification(on_notify)
        async with manager:
            for _ in range(40):
                call = emu.place_call(CallerScript([HangUp()]))
                deadline = time.monotonic() + 3
                try:
                    await call.ended(timeout=3)
                except TimeoutError:
                    break
                while time.monotonic() < deadline and call.record.answered_at is None:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
    print("delivered to the unfixed SDK:", len(delivered))
    assert 25 <= len(delivered) < 40, f"{len(delivered)} calls delivered to the unfixed SDK"


async def test_a_claim_lost_to_another_replica_does_not_cost_a_capacity_slot() -> None:
    """SESSION_BUSY (another replica won the race) must release the reserved slot.

    With one slot, a leaked reservation leaves the process refusing every later call as "at
    capacity": the call lost once is re-offered and must then be taken, and so must the next.
    """
    telco = TelcoflowEmulator(api_key="stack-key", connector_uuid="conn-1", renotify_after_s=0.3)
    overrides = {"model": {"greeting_prompt": None}, "limits": {"max_concurrent_calls": 1}}
    async with LocalStack(Script(), overrides=overrides, telcoflow=telco) as stack:
        lost_once = stack.place_call(CallerScript([Pause(0.1), HangUp()]))
        lost_once.fail_next("session.open", "SESSION_BUSY")
        first = await lost_once.ended(timeout=20)
        after = await stack.place_call(CallerScript([Pause(0.1), HangUp()])).ended(timeout=20)
        assert stack.app is not None
        source = stack.app.source
        async with asyncio.timeout(5):
            while source.reserved:
                await asyncio.sleep(0.02)
    assert first.answered_at is not None and after.answered_at is not None
    assert first.end_reason == after.end_reason == "caller_hangup"
    assert source.stats.busy_elsewhere == 1
    assert source.stats.claimed == 2
    assert lost_once.notifies_sent >= 2  # re-offered after the lost race, then taken
