"""Ready-made warning handlers for the :class:`~callbridge.service.delivery.WarningHub`.

- :func:`count_warnings`: a Prometheus counter by code (``callbridge_warnings_total``);
- :func:`hook`: adapts an embedder's ``on_warning(warning)`` callback, sync or async, so an
  exception in it is logged (with the warning's code and call) and goes no further;
- :func:`default_handlers`: the full set for a tenant: log, counter, hook, webhook.

All of them run in the hub's task, never in a call's: a handler can be slow or broken and
the audio does not notice.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CollectorRegistry, Counter

from callbridge.bridge.config import WarningSettings
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.service.delivery import WarningHandler, log_warning
from callbridge.service.webhook import WebhookDelivery

log = structlog.get_logger("callbridge.warnings")

WARNINGS_METRIC = "callbridge_warnings"
"""prometheus_client appends ``_total``: the series is ``callbridge_warnings_total{code}``."""

HOOK_TIMEOUT_S = 1.0
"""An async hook gets this long per warning; the hub must keep moving for the others."""

OnWarning = Callable[[BridgeWarning], Awaitable[object] | object]


def warnings_counter(registry: CollectorRegistry | None = None) -> Counter:
    """The ``callbridge_warnings_total{code}`` counter, in ``registry`` (a fresh one if None)."""
    return Counter(
        WARNINGS_METRIC,
        "Warnings delivered, by code.",
        ["code"],
        registry=registry if registry is not None else CollectorRegistry(),
    )


def count_warnings(counter: Counter) -> WarningHandler:
    """A handler counting each delivered warning under its code.

    Every code's series is created at zero up front, so a dashboard or an alert on
    ``increase(callbridge_warnings_total[5m])`` sees a code's *first* warning too.
    """
    for code in WarningCode:
        counter.labels(code=code.value)

    def count(warning: BridgeWarning) -> None:
        counter.labels(code=warning.code.value).inc()

    return count


def hook(on_warning: OnWarning, *, timeout_s: float = HOOK_TIMEOUT_S) -> WarningHandler:
    """Wrap an embedder's callback; it may be sync or async, and may raise.

    A raising or overrunning hook is logged as ``warning_hook_failed`` and otherwise ignored:
    it is the embedder's code, and it must not stop the log, the metrics or the webhook.
    """
    name = getattr(on_warning, "__qualname__", repr(on_warning))

    async def call_hook(warning: BridgeWarning) -> None:
        try:
            result = on_warning(warning)
            if inspect.isawaitable(result):
                async with asyncio.timeout(timeout_s):
                    await result
        except Exception as exc:
            error = (
                f"no answer within {timeout_s:g} s"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            log.error(
                "warning_hook_failed",
                hook=name,
                code=warning.code.value,
                call_id=warning.call_id,
                tenant=warning.tenant,
                error=error,
            )

    call_hook.__qualname__ = f"hook({name})"
    return call_hook


def default_handlers(
    settings: WarningSettings,
    *,
    counter: Counter | None = None,
    on_warning: OnWarning | None = None,
) -> list[WarningHandler]:
    """Log, counter (if given), hook (if given), webhook (if ``warnings.webhook_url``).

    The webhook is last and only enqueues; the hub runs its worker. Raises ``ConfigError``
    when the webhook is configured without its secret.
    """
    handlers: list[WarningHandler] = [log_warning]
    if counter is not None:
        handlers.append(count_warnings(counter))
    if on_warning is not None:
        handlers.append(hook(on_warning))
    webhook = WebhookDelivery.from_settings(settings)
    if webhook is not None:
        handlers.append(webhook)
    return handlers
