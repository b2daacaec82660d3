"""The webhook worker against a real HTTP receiver on 127.0.0.1: signing, retries, bounds."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import SecretStr

from callbridge.bridge.config import WarningSettings
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.service.webhook import (
    RetryPolicy,
    WebhookDelivery,
    encode_body,
    sign,
    verify_signature,
)
from tests.warnings.receiver import WebhookReceiver, free_port

SECRET = b"test-webhook-secret"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)


def warning(n: int = 0, code: WarningCode = WarningCode.SLOW_TOOL_CALL) -> BridgeWarning:
    return BridgeWarning(code, f"warning {n}", call_id=f"call-{n}", tenant="acme", details={"n": n})


async def run_worker(webhook: WebhookDelivery) -> asyncio.Task[None]:
    task = asyncio.create_task(webhook.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_signature_round_trip_and_tampering() -> None:
    body = encode_body(warning())
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature(b"other", body, header)
    assert not verify_signature(SECRET, body, None)


async def test_posts_signed_payload_with_headers() -> None:
    async with WebhookReceiver(SECRET) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET.decode(), retry=FAST_RETRY)
        task = await run_worker(webhook)
        try:
            sent = warning(7, WarningCode.TOOL_CALL_FAILED)
            before = int(time.time())
            webhook(sent)
            [got] = await receiver.wait_for(lambda r: True)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert got.method == "POST" and got.path == "/hooks/warnings"
    assert got.signature_ok
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-callbridge-signature"] == sign(SECRET, got.body)
    assert before <= int(got.headers["x-callbridge-timestamp"]) <= int(time.time())
    assert got.headers["x-callbridge-attempt"] == "1"
    assert len(got.headers["x-callbridge-delivery"]) == 32
    assert got.payload == {**sent.payload()}
    assert got.payload["type"] == "Warning" and got.payload["code"] == "TOOL_CALL_FAILED"
    assert json.loads(got.body)["details"] == {"n": 7}
    assert webhook.stats.delivered == 1 and webhook.stats.failed == 0


async def test_retries_5xx_with_the_same_delivery_id_then_succeeds() -> None:
    async with WebhookReceiver(SECRET, statuses=[503, 500]) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, retry=FAST_RETRY)
        task = await run_worker(webhook)
        try:
            webhook(warning())
            hits = await receiver.wait_for(lambda r: True, count=3)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert [h.headers["x-callbridge-attempt"] for h in hits] == ["1", "2", "3"]
    assert len({h.headers["x-callbridge-delivery"] for h in hits}) == 1
    assert len({h.body for h in hits}) == 1
    assert webhook.stats.delivered == 1 and webhook.stats.retries == 2


async def test_gives_up_after_bounded_attempts_and_goes_on() -> None:
    async with WebhookReceiver(SECRET, statuses=[500, 500, 500]) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, retry=FAST_RETRY)
        task = await run_worker(webhook)
        try:
            webhook(warning(1))
            webhook(warning(2))
            await receiver.wait_for(lambda r: r.payload["call_id"] == "call-2")
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert [r.payload["call_id"] for r in receiver.received] == ["call-1"] * 3 + ["call-2"]
    assert webhook.stats.failed == 1 and webhook.stats.delivered == 1


async def test_client_errors_are_not_retried() -> None:
    async with WebhookReceiver(SECRET, statuses=[400]) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, retry=FAST_RETRY)
        task = await run_worker(webhook)
        try:
            webhook(warning())
            await receiver.wait_for(lambda r: True)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert len(receiver.received) == 1
    assert webhook.stats.failed == 1 and webhook.stats.retries == 0


async def test_a_wrong_secret_is_refused_by_the_receiver() -> None:
    async with WebhookReceiver(SECRET) as receiver:
        webhook = WebhookDelivery(receiver.url, b"not-the-secret", retry=FAST_RETRY)
        task = await run_worker(webhook)
        try:
            webhook(warning())
            await receiver.wait_for(lambda r: True)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert not receiver.received[0].signature_ok
    assert webhook.stats.failed == 1  # 401 is final


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    async with WebhookReceiver(SECRET, statuses=[429], retry_after="120") as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, retry=FAST_RETRY, sleep=record_sleep)
        task = await run_worker(webhook)
        try:
            webhook(warning())
            await receiver.wait_for(lambda r: True, count=2)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert waits == [FAST_RETRY.max_delay_s]


async def test_timeouts_and_refused_connections_are_retried_with_backoff() -> None:
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    retry = RetryPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=10.0, jitter=0.0)
    webhook = WebhookDelivery(
        f"http://127.0.0.1:{free_port()}/down", SECRET, retry=retry, sleep=record_sleep
    )
    task = await run_worker(webhook)
    try:
        webhook(warning())
        assert await webhook.drain(10)
    finally:
        await stop(task)
    assert webhook.stats.attempts == 3 and webhook.stats.failed == 1
    assert waits == [0.5, 1.0]  # exponential

    async with WebhookReceiver(SECRET, delay_s=5.0) as receiver:
        slow = WebhookDelivery(
            receiver.url, SECRET, timeout_s=0.2, retry=RetryPolicy(2, 0.01, 0.01)
        )
        task = await run_worker(slow)
        try:
            started = time.monotonic()
            slow(warning())
            assert await slow.drain(5)
            took = time.monotonic() - started
        finally:
            await stop(task)
    assert len(receiver.received) == 2 and slow.stats.failed == 1
    assert took < 2.0, "each attempt is bounded by webhook_timeout_s"


async def test_full_queue_drops_the_oldest_and_counts() -> None:
    async with WebhookReceiver(SECRET) as receiver:
        webhook = WebhookDelivery(receiver.url, SECRET, queue_size=3, retry=FAST_RETRY)
        for n in range(10):  # no worker yet: the queue must not grow past its bound
            webhook(warning(n))
        assert webhook.pending == 3 and webhook.stats.dropped == 7
        task = await run_worker(webhook)
        try:
            await receiver.wait_for(lambda r: True, count=3)
            assert await webhook.drain(5)
        finally:
            await stop(task)
    assert [r.payload["call_id"] for r in receiver.received] == ["call-7", "call-8", "call-9"]


def test_from_settings_checks_url_and_secret() -> None:
    assert WebhookDelivery.from_settings(WarningSettings()) is None
    with pytest.raises(ConfigError, match="CALLBRIDGE_WEBHOOK_SECRET"):
        WebhookDelivery.from_settings(WarningSettings(webhook_url="https://example.test/h"))
    with pytest.raises(ConfigError, match=r"warnings\.webhook_url"):
        WebhookDelivery.from_settings(
            WarningSettings(webhook_url="ftp://example.test/h", webhook_secret=SecretStr("s"))
        )
    hook = WebhookDelivery.from_settings(
        WarningSettings(
            webhook_url="https://example.test/h?token=abc",
            webhook_secret=SecretStr("s3cret"),
            webhook_queue_size=5,
        )
    )
    assert hook is not None
    assert "s3cret" not in repr(hook) and "token" not in repr(hook)
