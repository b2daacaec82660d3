"""Non-fatal warnings: the catalogue and the per-call warner.

A warning means the call goes on but something degraded. Each code has a fixed meaning and a
recommended resolution (documented in the README; a test keeps the two in step). Delivery to
logs, metrics, hooks and webhooks happens off the audio path: :meth:`CallWarner.warn` only
records the warning and hands it to a non-blocking sink.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class WarningCode(enum.StrEnum):
    INJECT_MESSAGE_DURING_USER_SPEECH = "INJECT_MESSAGE_DURING_USER_SPEECH"
    INJECT_MESSAGE_DURING_AGENT_SPEECH = "INJECT_MESSAGE_DURING_AGENT_SPEECH"
    PROMPT_TOO_LONG = "PROMPT_TOO_LONG"
    MODEL_REQUEST_FAILED = "MODEL_REQUEST_FAILED"
    TOOL_CALL_FAILED = "TOOL_CALL_FAILED"
    SLOW_MODEL_RESPONSE = "SLOW_MODEL_RESPONSE"
    SLOW_TOOL_CALL = "SLOW_TOOL_CALL"
    MODEL_TURN_INCOMPLETE = "MODEL_TURN_INCOMPLETE"
    SEND_BUFFER_FULL = "SEND_BUFFER_FULL"
    CALL_COMMAND_FAILED = "CALL_COMMAND_FAILED"
    FALLBACK_MODEL_USED = "FALLBACK_MODEL_USED"
    CALL_ADMISSION_DELAYED = "CALL_ADMISSION_DELAYED"


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    when: str
    resolution: str


CATALOGUE: Mapping[WarningCode, CatalogueEntry] = {
    WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH: CatalogueEntry(
        "An injected agent message was refused because the caller was speaking.",
        "Wait for the caller to finish speaking, then inject the message again.",
    ),
    WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH: CatalogueEntry(
        "An injected agent message was refused because the agent was speaking.",
        "Wait for the agent to finish its current response, then inject again.",
    ),
    WarningCode.PROMPT_TOO_LONG: CatalogueEntry(
        "The system instruction exceeded the tenant's limit and was truncated.",
        "Shorten the system instruction or raise `limits.max_prompt_chars`.",
    ),
    WarningCode.MODEL_REQUEST_FAILED: CatalogueEntry(
        "The Gemini Live connection failed or closed with an error; the description "
        "gives the close code and what the bridge did (reconnected, fell back, ended the call).",
        "Check the close code: 1007 invalid setup or resumption handle, 1008 policy "
        "(e.g. audio during a blocking tool call), 1011 server deadline or keepalive. "
        "Configure a fallback model for outages.",
    ),
    WarningCode.TOOL_CALL_FAILED: CatalogueEntry(
        "A tool raised or timed out; the model received an error result.",
        "Fix the tool or raise its timeout; the description names the tool and the error.",
    ),
    WarningCode.SLOW_MODEL_RESPONSE: CatalogueEntry(
        "No model audio arrived within the threshold after the caller stopped speaking.",
        "Watch for ongoing slowness; consider another model or region.",
    ),
    WarningCode.SLOW_TOOL_CALL: CatalogueEntry(
        "A tool has been running longer than the threshold while the caller waits.",
        "Make the tool faster, or have the agent tell the caller it is working on it.",
    ),
    WarningCode.MODEL_TURN_INCOMPLETE: CatalogueEntry(
        "A model turn stalled: no audio and no turn end for the threshold, or a turn "
        "ended with no audio; the bridge nudged the model.",
        "Watch for repeats; if frequent, report the model version and consider another.",
    ),
    WarningCode.SEND_BUFFER_FULL: CatalogueEntry(
        "Agent audio arrived faster than the call could take it and the bridge's bounded "
        "queue filled; the oldest audio was dropped (counted in the description).",
        "Raise `audio.max_pending_agent_audio_s`, or check that the telephony side pulls audio.",
    ),
    WarningCode.CALL_COMMAND_FAILED: CatalogueEntry(
        "A call command (connect, whisper, barge, spy, disconnect, close, interrupt) failed; "
        "the description gives the command and its error_code.",
        "CALL_UNANSWERED/TIMEOUT: nobody picked up, retry later; other codes: check the "
        "connector's configuration with the telephony provider.",
    ),
    WarningCode.FALLBACK_MODEL_USED: CatalogueEntry(
        "The primary model could not be connected at call start; the fallback model "
        "serves the call.",
        "Check the primary model's status, quota and key.",
    ),
    WarningCode.CALL_ADMISSION_DELAYED: CatalogueEntry(
        "A new call waited for the tenant's model-connection rate limit.",
        "Raise `limits.model_connects_per_minute` if your Gemini quota allows, or add capacity.",
    ),
}


@dataclass(frozen=True, slots=True)
class BridgeWarning:
    """One warning, in the shape sent to hooks and webhooks."""

    code: WarningCode
    description: str
    call_id: str
    tenant: str
    at: float = field(default_factory=time.time)
    details: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """JSON body in the seed's ``{"type": "Warning", ...}`` shape plus our fields."""
        return {
            "type": "Warning",
            "code": self.code.value,
            "description": self.description,
            "call_id": self.call_id,
            "tenant": self.tenant,
            "timestamp": self.at,
            **({"details": dict(self.details)} if self.details else {}),
        }


class WarningSink(Protocol):
    """Where warnings go; ``submit`` must never block or raise."""

    def submit(self, warning: BridgeWarning) -> None: ...


class RateLimiter:
    """Lets a code through at most once per ``interval_s`` per call; counts the rest.

    A stuck condition can produce a warning per audio frame; operators need one line saying
    it happened and how often, not fifty lines a second.
    """

    __slots__ = ("_clock", "_interval", "_last", "_suppressed")

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: dict[WarningCode, float] = {}
        self._suppressed: dict[WarningCode, int] = {}

    def admit(self, code: WarningCode) -> int | None:
        """``None`` to suppress; otherwise how many were suppressed since the last one."""
        now = self._clock()
        last = self._last.get(code)
        if last is not None and now - last < self._interval:
            self._suppressed[code] = self._suppressed.get(code, 0) + 1
            return None
        self._last[code] = now
        return self._suppressed.pop(code, 0)


class CallWarner:
    """Raises warnings for one call: rate-limited, recorded, handed to the sink."""

    def __init__(
        self,
        *,
        call_id: str,
        tenant: str,
        sink: WarningSink,
        on_record: Callable[[BridgeWarning], None] | None = None,
        min_interval_s: float = 1.0,
    ) -> None:
        self.call_id = call_id
        self.tenant = tenant
        self._sink = sink
        self._on_record = on_record
        self._limiter = RateLimiter(min_interval_s)
        self.counts: dict[WarningCode, int] = {}

    def warn(self, code: WarningCode, description: str, **details: Any) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1
        suppressed = self._limiter.admit(code)
        if suppressed is None:
            return
        if suppressed:
            details = {**details, "suppressed_since_last": suppressed}
        warning = BridgeWarning(code, description, self.call_id, self.tenant, details=details)
        if self._on_record is not None:
            self._on_record(warning)
        self._sink.submit(warning)
