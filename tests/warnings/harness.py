"""What every end-to-end warning test observes, in one place.

A :class:`WarningProbe` is the full delivery chain a tenant would run: the structlog event,
the Prometheus counter, an embedder hook and the signed webhook to a real HTTP receiver on
127.0.0.1. Its handlers go into ``LocalStack(warning_handlers=...)``, so the bridge's own
hub runs the webhook worker, exactly as in production. :meth:`WarningProbe.expect` asserts
that one code made it through every channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.typing import EventDict

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.emulators.gemini_live import Script
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import EmulatedCall
from callbridge.service.delivery import WarningHandler, log_warning
from callbridge.service.warning_handlers import count_warnings, hook, warnings_counter
from callbridge.service.webhook import RetryPolicy, WebhookDelivery
from tests.warnings.receiver import Received, WebhookReceiver

SECRET = b"e2e-webhook-secret"
TENANT = "local"


class WarningProbe:
    def __init__(
        self,
        receiver: WebhookReceiver,
        logs: list[EventDict],
        *,
        url: str | None = None,
        webhook_timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.receiver = receiver
        self.logs = logs
        self.registry = CollectorRegistry()
        self.hooked: list[BridgeWarning] = []
        self.webhook = WebhookDelivery(
            url or receiver.url,
            SECRET,
            timeout_s=webhook_timeout_s,
            retry=retry or RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2),
        )
        self.handlers: list[WarningHandler] = [
            log_warning,
            count_warnings(warnings_counter(self.registry)),
            hook(self.hooked.append),
            self.webhook,
        ]

    def count(self, code: WarningCode) -> float:
        value = self.registry.get_sample_value("callbridge_warnings_total", {"code": code.value})
        return value or 0.0

    def raised(self, code: WarningCode) -> list[BridgeWarning]:
        return [w for w in self.hooked if w.code == code]

    async def wait_raised(self, code: WarningCode, timeout: float = 15.0) -> BridgeWarning:
        async with asyncio.timeout(timeout):
            while not self.raised(code):
                await asyncio.sleep(0.02)
        return self.raised(code)[0]

    async def expect(self, code: WarningCode, *, timeout: float = 15.0) -> Received:
        """``code`` reached the log, the counter, the hook and the signed webhook."""
        warning = await self.wait_raised(code, timeout)
        [got] = (await self.receiver.wait_for(lambda r: r.code == code.value, timeout=timeout))[:1]
        assert got.signature_ok, "the webhook signature must verify"
        payload = got.payload
        assert payload["type"] == "Warning"
        assert payload["description"] == warning.description and payload["description"]
        assert payload["call_id"] == warning.call_id and payload["tenant"] == TENANT
        assert isinstance(payload["timestamp"], float)
        events = [e for e in self.logs if e["event"] == "bridge_warning" and e["code"] == code]
        assert events, f"no bridge_warning log event for {code}"
        assert events[0]["log_level"] == "warning"
        assert events[0]["call_id"] == warning.call_id and events[0]["tenant"] == TENANT
        assert self.count(code) >= 1
        return got


@asynccontextmanager
async def probed_stack(
    script: Script,
    logs: list[EventDict],
    *,
    overrides: Mapping[str, Any] | None = None,
    receiver: WebhookReceiver | None = None,
    probe_kwargs: Mapping[str, Any] | None = None,
    **stack_kwargs: Any,
) -> AsyncIterator[tuple[LocalStack, WarningProbe]]:
    """A LocalStack whose warnings go through a :class:`WarningProbe`."""
    async with WebhookReceiver(SECRET) if receiver is None else _existing(receiver) as rx:
        probe = WarningProbe(rx, logs, **(probe_kwargs or {}))
        async with LocalStack(
            script, overrides=overrides, warning_handlers=probe.handlers, **stack_kwargs
        ) as stack:
            yield stack, probe


@asynccontextmanager
async def _existing(receiver: WebhookReceiver) -> AsyncIterator[WebhookReceiver]:
    yield receiver


async def live_call(stack: LocalStack, call: EmulatedCall, timeout: float = 10.0) -> BridgedCall:
    """The bridge's :class:`BridgedCall` for an emulated call, once it is bridging."""
    assert stack.app is not None
    async with asyncio.timeout(timeout):
        while call.call_id not in stack.app.runner.live:
            await asyncio.sleep(0.01)
    return stack.app.runner.live[call.call_id]
