"""The hub and the ready-made handlers: counter, embedder hook, webhook worker ownership."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from structlog.testing import capture_logs

from callbridge.bridge.config import WarningSettings
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.service.delivery import BackgroundHandler, WarningHub, log_warning
from callbridge.service.warning_handlers import (
    count_warnings,
    default_handlers,
    hook,
    warnings_counter,
)
from callbridge.service.webhook import WebhookDelivery
from tests.warnings.receiver import WebhookReceiver

SECRET = b"handler-secret"


def warning(code: WarningCode = WarningCode.SLOW_MODEL_RESPONSE) -> BridgeWarning:
    return BridgeWarning(code, "something slowed down", call_id="call-1", tenant="acme")


def sample(registry: CollectorRegistry, code: str) -> float | None:
    return registry.get_sample_value("callbridge_warnings_total", {"code": code})


def test_counter_counts_by_code_and_starts_every_code_at_zero() -> None:
    registry = CollectorRegistry()
    count = count_warnings(warnings_counter(registry))
    assert all(sample(registry, code.value) == 0 for code in WarningCode)
    count(warning(WarningCode.SEND_BUFFER_FULL))
    count(warning(WarningCode.SEND_BUFFER_FULL))
    count(warning(WarningCode.PROMPT_TOO_LONG))
    assert sample(registry, "SEND_BUFFER_FULL") == 2
    assert sample(registry, "PROMPT_TOO_LONG") == 1
    assert sample(registry, "TOOL_CALL_FAILED") == 0


async def test_hook_accepts_sync_and_async_callbacks() -> None:
    seen: list[str] = []

    def sync_hook(w: BridgeWarning) -> None:
        seen.append("sync:" + w.code.value)

    async def async_hook(w: BridgeWarning) -> None:
        await asyncio.sleep(0)
        seen.append("async:" + w.code.value)

    await hook(sync_hook)(warning())  # type: ignore[misc]
    await hook(async_hook)(warning())  # type: ignore[misc]
    assert seen == ["sync:SLOW_MODEL_RESPONSE", "async:SLOW_MODEL_RESPONSE"]


async def test_a_raising_or_hanging_hook_is_logged_and_the_others_still_run() -> None:
    def broken(_: BridgeWarning) -> None:
        raise RuntimeError("embedder bug")

    async def hanging(_: BridgeWarning) -> None:
        await asyncio.Event().wait()

    registry = CollectorRegistry()
    after: list[BridgeWarning] = []
    hub = WarningHub(
        [
            hook(broken),
            hook(hanging, timeout_s=0.1),
            count_warnings(warnings_counter(registry)),
            after.append,
        ]
    )
    with capture_logs() as logs:
        async with asyncio.TaskGroup() as group:
            task = group.create_task(hub.run())
            hub.submit(warning())
            assert await hub.drain(5)
            task.cancel()
    failures = [e for e in logs if e["event"] == "warning_hook_failed"]
    assert [f["error"] for f in failures] == [
        "RuntimeError: embedder bug",
        "no answer within 0.1 s",
    ]
    assert all(f["code"] == "SLOW_MODEL_RESPONSE" and f["call_id"] == "call-1" for f in failures)
    assert "broken" in failures[0]["hook"]
    assert sample(registry, "SLOW_MODEL_RESPONSE") == 1
    assert len(after) == 1


async def test_the_hub_owns_the_webhook_worker_and_the_log_does_not_wait_for_it() -> None:
    async with WebhookReceiver(SECRET, delay_s=5.0) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, timeout_s=10.0)
        assert isinstance(webhook, BackgroundHandler)
        assert not isinstance(log_warning, BackgroundHandler)
        hub = WarningHub([log_warning, webhook])
        with capture_logs() as logs:
            async with asyncio.TaskGroup() as group:
                task = group.create_task(hub.run())
                for _ in range(3):
                    hub.submit(warning())
                await receiver.wait_for(lambda r: True)  # the first POST is now stalled
                async with asyncio.timeout(1):
                    while sum(e["event"] == "bridge_warning" for e in logs) < 3:
                        await asyncio.sleep(0.01)
                # Shutdown drain is bounded and never raises, even with a stalled receiver.
                assert await hub.drain(0.2) is False
                task.cancel()
        assert webhook.pending == 2
    assert len(receiver.received) == 1


def test_default_handlers_build_the_webhook_from_settings() -> None:
    plain = default_handlers(WarningSettings())
    assert plain == [log_warning]
    settings = WarningSettings(
        webhook_url="https://hooks.example.test/w", webhook_secret=SecretStr("s")
    )
    seen: list[BridgeWarning] = []
    handlers = default_handlers(settings, counter=warnings_counter(), on_warning=seen.append)
    assert len(handlers) == 4
    assert isinstance(handlers[-1], WebhookDelivery)


async def test_background_handlers_must_be_added_before_the_hub_runs() -> None:
    hub = WarningHub([])
    async with asyncio.TaskGroup() as group:
        task = group.create_task(hub.run())
        await asyncio.sleep(0)
        hub.add_handler(log_warning)  # plain handlers are fine at any time
        with pytest.raises(RuntimeError, match="before the hub runs"):
            hub.add_handler(WebhookDelivery("http://127.0.0.1:9/", b"s"))
        task.cancel()
