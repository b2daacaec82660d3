"""The per-tenant warning webhook: signed JSON POSTs from a bounded queue, off the audio path.

A tenant's receiver can be slow, down or misbehaving, and none of that may reach a call.
So the :class:`WarningHub` only *enqueues* here (:meth:`WebhookDelivery.__call__` never
awaits), and one worker task (:meth:`WebhookDelivery.run`, owned by the hub's TaskGroup)
posts the warnings one at a time. When the receiver cannot keep up the queue drops its
*oldest* warning (the newest says most about the call's present state), and counts it.

Each POST carries ``warning.payload()`` as its body, and:

- ``X-Callbridge-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body with the tenant's
  ``warnings.webhook_secret`` (env ``CALLBRIDGE_WEBHOOK_SECRET``). Receivers must compare it
  in constant time (:func:`verify_signature`) before trusting the body.
- ``X-Callbridge-Timestamp``: when this attempt was sent (Unix seconds). The body's own
  ``timestamp`` (when the warning was raised) is covered by the signature; use it to refuse
  replays of old bodies.
- ``X-Callbridge-Delivery``: one id per warning, the same on every retry, to deduplicate.

Retries (tenacity): connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff (with jitter, honouring ``Retry-After`` up to the cap) for a bounded
number of attempts; any other status is final. Redirects are not followed, so a signed body
never goes elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from callbridge.bridge.config import WarningSettings
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.warnings import BridgeWarning
from callbridge.service.logs import safe_url

log = structlog.get_logger("callbridge.webhook")

SIGNATURE_HEADER = "X-Callbridge-Signature"
TIMESTAMP_HEADER = "X-Callbridge-Timestamp"
DELIVERY_HEADER = "X-Callbridge-Delivery"
ATTEMPT_HEADER = "X-Callbridge-Attempt"
USER_AGENT = "callbridge-webhook/1"

RETRY_STATUSES = frozenset({408, 429})
DROP_LOG_INTERVAL_S = 10.0
"""A flood of drops is logged at most this often (with the running count), not per drop."""


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Receiver side: does ``header`` sign ``body`` with ``secret``? (constant time)"""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def encode_body(warning: BridgeWarning) -> bytes:
    """The exact bytes posted (and signed): compact JSON of the warning's payload."""
    return json.dumps(warning.payload(), separators=(",", ":"), default=str).encode()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded attempts with capped exponential backoff and jitter."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        delay: float = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def wait(self, state: RetryCallState) -> float:
        """A tenacity ``wait``: :meth:`delay_s`, honouring the failed attempt's Retry-After
        (tenacity's own waits have no notion of a server asking for a delay)."""
        error = state.outcome.exception() if state.outcome is not None else None
        return self.delay_s(state.attempt_number, getattr(error, "retry_after_s", None))


@dataclass
class WebhookStats:
    """Counts since start (for metrics and tests)."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    """Warnings given up on: a final status, or every attempt failed."""
    dropped: int = 0
    """Warnings dropped from a full queue (oldest first) before any attempt."""
    attempts: int = 0
    retries: int = 0


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _Final(Exception):
    """One attempt failed in a way retrying cannot fix (e.g. 400, 401, 404)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: rare for webhooks; fall back to our own backoff


class WebhookDelivery:
    """A warning handler (``__call__`` enqueues) plus the worker that posts (``run``)."""

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.url = url
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not self._secret:
            raise ValueError("the webhook secret is empty")
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._queue: deque[BridgeWarning] = deque()
        self._queue_size = queue_size
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_drop_log = float("-inf")
        self.stats = WebhookStats()

    @classmethod
    def from_settings(cls, settings: WarningSettings) -> WebhookDelivery | None:
        """The tenant's webhook, or ``None`` when ``warnings.webhook_url`` is not set."""
        url = settings.webhook_url
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"warnings.webhook_url: expected an http(s) URL, got {url!r}")
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if not secret:
            raise ConfigError(
                "warnings.webhook_secret: not set; webhooks are signed, so set "
                "CALLBRIDGE_WEBHOOK_SECRET in the environment (or unset warnings.webhook_url)"
            )
        return cls(
            url,
            secret,
            timeout_s=settings.webhook_timeout_s,
            queue_size=settings.webhook_queue_size,
        )

    def __repr__(self) -> str:  # never show the secret, nor a password in the URL
        return f"WebhookDelivery({safe_url(self.url)})"

    @property
    def pending(self) -> int:
        """Warnings queued and not yet attempted."""
        return len(self._queue)

    # ── The hub's side: never blocks ─────────────────────────────────────────────────────

    def __call__(self, warning: BridgeWarning) -> None:
        """Queue ``warning`` for delivery; when full, the oldest queued one is dropped."""
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
            self._log_drop()
        self._queue.append(warning)
        self.stats.enqueued += 1
        self._idle.clear()
        self._ready.set()

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning(
                "warning_webhook_dropped",
                url=repr(self),
                dropped_total=self.stats.dropped,
                queue_size=self._queue_size,
            )

    # ── The worker ───────────────────────────────────────────────────────────────────────

    async def run(self) -> None:
        """Post queued warnings one at a time, until cancelled (with the hub)."""
        timeout = httpx.Timeout(self._timeout_s)
        async with httpx.AsyncClient(
            timeout=timeout,
            transport=self._transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        ) as client:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                warning = self._queue.popleft()
                try:
                    await self._deliver(client, warning)
                except Exception as exc:  # a bug here must not stop later deliveries
                    self.stats.failed += 1
                    log.error(
                        "warning_webhook_error",
                        code=warning.code.value,
                        call_id=warning.call_id,
                        error=f"{type(exc).__name__}: {exc}",
                    )

    async def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until everything queued was attempted; ``False`` on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _deliver(self, client: httpx.AsyncClient, warning: BridgeWarning) -> None:
        body = encode_body(warning)
        delivery_id = uuid.uuid4().hex
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=self._retry.wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        attempt = 0
        try:
            async for trying in retrying:
                with trying:
                    attempt = trying.retry_state.attempt_number
                    self.stats.attempts += 1
                    await self._post(client, body, delivery_id, attempt)
        except (_Retry, _Final) as failed:
            self._give_up(warning, attempt, failed.reason)
            return
        self.stats.delivered += 1

    def _count_retry(self, _state: RetryCallState) -> None:
        self.stats.retries += 1

    async def _post(
        self, client: httpx.AsyncClient, body: bytes, delivery_id: str, attempt: int
    ) -> None:
        headers = {
            SIGNATURE_HEADER: sign(self._secret, body),
            TIMESTAMP_HEADER: str(int(self._clock())),
            DELIVERY_HEADER: delivery_id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            # httpx's timeout bounds each phase; this bounds the whole attempt (a receiver
            # that drips its answer a byte at a time must not hold the queue forever).
            async with asyncio.timeout(self._timeout_s):
                response = await client.post(self.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise _Retry(f"no answer within {self._timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        raise _Final(f"HTTP {status} (not retried)")

    def _give_up(self, warning: BridgeWarning, attempts: int, reason: str) -> None:
        self.stats.failed += 1
        log.error(
            "warning_webhook_failed",
            code=warning.code.value,
            call_id=warning.call_id,
            tenant=warning.tenant,
            attempts=attempts,
            reason=reason,
            url=repr(self),
        )
