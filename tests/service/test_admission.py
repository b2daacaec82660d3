"""The per-tenant model-connect limiter: bucket arithmetic on a fake clock, and the decorator.

The decorator wraps an in-memory model connector (a fake of our own port, no sockets) and is
given a fake sleep that advances the fake clock, so waits are checked exactly, not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from callbridge.bridge.config import LimitSettings
from callbridge.bridge.errors import ModelUnavailable
from callbridge.bridge.ports import ModelSession, SessionRequest
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.service.admission import AdmittedConnector, ConnectRateLimiter, admit_all


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Sink:
    def __init__(self) -> None:
        self.warnings: list[BridgeWarning] = []

    def submit(self, warning: BridgeWarning) -> None:
        self.warnings.append(warning)


class FakeConnector:
    """Counts opens; the yielded session is never used by these tests."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    @asynccontextmanager
    async def open(self, request: SessionRequest) -> AsyncIterator[ModelSession]:
        self.opened.append(request.call_id)
        yield object()  # type: ignore[misc]


def request(call_id: str) -> SessionRequest:
    return SessionRequest(call_id=call_id, tenant="acme", system_instruction="hi")


def test_bucket_allows_a_burst_then_spaces_connects_at_the_rate() -> None:
    clock = Clock()
    limiter = ConnectRateLimiter(60, burst=2, clock=clock)
    waits = [limiter.reserve(max_wait_s=10) for _ in range(4)]
    assert waits == [0.0, 0.0, pytest.approx(1.0), pytest.approx(2.0)]
    # The next would wait 3 s: over a 2.5 s limit it is refused and takes nothing.
    assert limiter.reserve(max_wait_s=2.5) is None
    assert limiter.tokens == pytest.approx(-2.0)
    clock.now += 60
    assert limiter.tokens == 2.0  # refilled, but never above the burst


def test_a_reservation_handed_back_is_reused() -> None:
    clock = Clock()
    limiter = ConnectRateLimiter(6, burst=1, clock=clock)
    assert limiter.reserve(0) == 0.0
    assert limiter.reserve(0) is None
    limiter.give_back()
    assert limiter.reserve(0) == 0.0


def test_default_burst_is_ten_seconds_of_the_rate() -> None:
    assert LimitSettings(model_connects_per_minute=600).connect_burst() == 100
    assert LimitSettings(model_connects_per_minute=5).connect_burst() == 1
    assert LimitSettings(model_connects_per_minute=60, model_connects_burst=7).connect_burst() == 7


async def test_a_call_over_the_rate_waits_and_is_warned_about() -> None:
    clock, sink, inner = Clock(), Sink(), FakeConnector()
    limiter = ConnectRateLimiter(30, burst=1, clock=clock)
    connector = AdmittedConnector(inner, limiter, max_wait_s=5, sink=sink, sleep=clock.sleep)
    async with connector.open(request("c1")):
        pass
    started = clock.now
    async with connector.open(request("c2")):
        assert clock.now - started == pytest.approx(2.0)  # 30 a minute: one every 2 s
    assert inner.opened == ["c1", "c2"]
    [warning] = sink.warnings
    assert warning.code is WarningCode.CALL_ADMISSION_DELAYED
    assert (warning.call_id, warning.tenant) == ("c2", "acme")
    assert warning.details["wait_s"] == pytest.approx(2.0)
    assert "30 connects per minute" in warning.description
    assert (connector.stats.admitted, connector.stats.delayed) == (2, 1)


async def test_a_call_that_would_wait_too_long_is_refused_without_connecting() -> None:
    clock, sink, inner = Clock(), Sink(), FakeConnector()
    limiter = ConnectRateLimiter(6, burst=1, clock=clock)
    connector = AdmittedConnector(inner, limiter, max_wait_s=3, sink=sink, sleep=clock.sleep)
    async with connector.open(request("c1")):
        pass
    with pytest.raises(ModelUnavailable, match=r"limits\.model_connects_per_minute = 6"):
        async with connector.open(request("c2")):
            pass
    assert inner.opened == ["c1"]
    assert connector.stats.refused == 1
    assert sink.warnings == []  # the runner reports the refusal (MODEL_REQUEST_FAILED)


async def test_a_caller_gone_while_waiting_hands_its_token_back() -> None:
    sink, inner = Sink(), FakeConnector()
    limiter = ConnectRateLimiter(60, burst=1)
    connector = AdmittedConnector(inner, limiter, max_wait_s=30, sink=sink)
    async with connector.open(request("c1")):
        pass
    entered = asyncio.Event()

    async def wait_for_admission() -> None:
        async with connector.open(request("c2")):
            entered.set()

    async with asyncio.TaskGroup() as group:
        task = group.create_task(wait_for_admission())
        await asyncio.sleep(0.05)
        task.cancel()
    assert not entered.is_set()
    assert inner.opened == ["c1"]
    assert limiter.tokens > -0.5  # the reservation came back


async def test_wrapped_connectors_share_one_tenant_limit() -> None:
    sink = Sink()
    primary, fallback = FakeConnector(), FakeConnector()
    wrapped, limiter, stats = admit_all(
        [primary, fallback], per_minute=6, burst=1, max_wait_s=0, sink=sink
    )
    async with wrapped[0].open(request("c1")):
        pass
    with pytest.raises(ModelUnavailable):
        async with wrapped[1].open(request("c1")):
            pass
    assert stats.refused == 1
    assert limiter.burst == 1
