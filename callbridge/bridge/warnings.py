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
    CALLER_AUDIO_DROPPED = "CALLER_AUDIO_DROPPED"
    TELEPHONY_CALL_ERROR = "TELEPHONY_CALL_ERROR"
    OUTBOUND_CALL_REFUSED = "OUTBOUND_CALL_REFUSED"
    MODEL_RESPONSE_REJECTED = "MODEL_RESPONSE_REJECTED"
    AGENT_AUDIO_NEAR_SILENT = "AGENT_AUDIO_NEAR_SILENT"
    MODEL_PHANTOM_INTERRUPTION = "MODEL_PHANTOM_INTERRUPTION"
    MODEL_TURN_CUT_MID_SENTENCE = "MODEL_TURN_CUT_MID_SENTENCE"
    AGENT_AUDIO_TONE = "AGENT_AUDIO_TONE"


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    when: str
    resolution: str


CATALOGUE: Mapping[WarningCode, CatalogueEntry] = {
    WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH: CatalogueEntry(
        "An injected agent message (`BridgedCall.inject`, `POST /calls/{id}/inject`) was "
        "refused because the caller was speaking.",
        "Wait for the caller to finish speaking, then inject the message again.",
    ),
    WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH: CatalogueEntry(
        "An injected agent message was refused because the agent was speaking (a turn in "
        "progress, or its audio still queued for the caller).",
        "Wait for the agent to finish its current response, then inject again.",
    ),
    WarningCode.PROMPT_TOO_LONG: CatalogueEntry(
        "The system instruction was longer than `limits.max_prompt_chars` (default 25,000) "
        "and was truncated to it before the model session opened.",
        "Shorten the system instruction (or its file), or raise `limits.max_prompt_chars`.",
    ),
    WarningCode.MODEL_REQUEST_FAILED: CatalogueEntry(
        "The Gemini Live connection failed or closed with an error. The description gives "
        "the close code and what the bridge did: reconnected and resumed, or, when no model "
        "(primary or fallback) could be connected or reconnected, ended the call cleanly "
        "with a disconnect.",
        "Check the close code: 1007 invalid setup or resumption handle, 1008 policy "
        "(unknown model, or audio during a blocking tool call), 1011 server deadline or "
        "keepalive. Configure `model.fallback_model` for outages.",
    ),
    WarningCode.TOOL_CALL_FAILED: CatalogueEntry(
        "A tool raised, timed out, was unknown to the bridge, or was refused because too "
        "many tool calls were running; the model received an error result.",
        "Fix the tool or raise its timeout (`tools.custom_timeouts_s`); the details name "
        "the tool and the description the error.",
    ),
    WarningCode.SLOW_MODEL_RESPONSE: CatalogueEntry(
        "No model audio arrived within `warnings.slow_model_response_s` after the caller "
        "stopped speaking.",
        "Watch for ongoing slowness; consider another model or region.",
    ),
    WarningCode.SLOW_TOOL_CALL: CatalogueEntry(
        "A tool has been running longer than `warnings.slow_tool_call_s` (it goes on, and "
        "may still succeed).",
        "Make the tool faster, or have the agent tell the caller it is working on it.",
    ),
    WarningCode.MODEL_TURN_INCOMPLETE: CatalogueEntry(
        "A model turn stalled: it started speaking, then sent neither audio nor a turn end "
        "for `warnings.model_turn_stall_s`; a turn ended without any audio; or no answer "
        "came after a barge-in. The bridge nudged the model once to answer.",
        "Watch for repeats; if frequent, report the model version and consider another.",
    ),
    WarningCode.SEND_BUFFER_FULL: CatalogueEntry(
        "Agent audio arrived faster than the call played it: the bridge's queue went over "
        "`audio.max_pending_agent_audio_s` and the oldest queued audio was dropped (bytes "
        "in the description), or the call's send buffer refused audio (held and retried).",
        "Raise `audio.max_pending_agent_audio_s`, or check that the telephony side pulls "
        "agent audio.",
    ),
    WarningCode.CALL_COMMAND_FAILED: CatalogueEntry(
        "A call command (connect, whisper, barge, spy, disconnect, close, agent.interrupt) "
        "failed; the details give the command and its error_code.",
        "CALL_UNANSWERED/TIMEOUT: nobody picked up, retry later; other codes: check the "
        "connector's configuration with the telephony provider.",
    ),
    WarningCode.FALLBACK_MODEL_USED: CatalogueEntry(
        "The primary model could not be connected at call start; `model.fallback_model` "
        "serves the call (the details name it).",
        "Check the primary model's name, status, quota and key.",
    ),
    WarningCode.CALL_ADMISSION_DELAYED: CatalogueEntry(
        "A new call waited (up to `limits.admission_wait_s`) for the tenant's "
        "model-connection rate limit before its model session opened.",
        "Raise `limits.model_connects_per_minute` if your Gemini quota allows, or add capacity.",
    ),
    WarningCode.CALLER_AUDIO_DROPPED: CatalogueEntry(
        "Caller audio held back while a BLOCKING tool call was pending went over "
        "`audio.max_gated_caller_audio_s`; the oldest was dropped, so the model missed part "
        "of what the caller said.",
        "Make the tool answer faster, declare tools NON_BLOCKING (`model.non_blocking_tools`), "
        "or raise `audio.max_gated_caller_audio_s`.",
    ),
    WarningCode.TELEPHONY_CALL_ERROR: CatalogueEntry(
        "The telephony platform reported an error on the live call (a `call.error` event, "
        "e.g. TTS_SESSION_ERROR); the call goes on.",
        "Check the error_code in the details with the telephony provider; repeated errors on "
        "one connector point at its media configuration.",
    ),
    WarningCode.OUTBOUND_CALL_REFUSED: CatalogueEntry(
        "The platform refused to place an outbound call (`session.create` failed with "
        "QUOTA_EXCEEDED, CHANNEL_NOT_CONFIGURED, OUTBOUND_OVERFLOW...), or the bridge was at "
        "capacity; the call's outcome is `failed` with that error_code.",
        "QUOTA_EXCEEDED / OUTBOUND_OVERFLOW: dial fewer calls at once (`outbound.max_concurrent_"
        "calls`) or raise the quota; CHANNEL_NOT_CONFIGURED: enable outbound calls for the "
        "connector with the telephony provider and set `outbound.enabled`.",
    ),
    WarningCode.MODEL_RESPONSE_REJECTED: CatalogueEntry(
        "The model ended a turn with `turnComplete` reason `RESPONSE_REJECTED` and no audio: "
        "the caller heard nothing. The bridge asked the model once to answer again (at most "
        "one recovery per turn and `warnings.max_recoveries_per_call` per call).",
        "Frequent rejections point at the system instruction or the caller's request "
        "tripping the model's filters; review the transcript and the instruction.",
    ),
    WarningCode.AGENT_AUDIO_NEAR_SILENT: CatalogueEntry(
        "The model sent `warnings.quiet_agent_audio_s` of agent audio in one turn, all below "
        "RMS `warnings.quiet_agent_rms` (near-zero amplitude): the caller heard silence while "
        "every other metric looked healthy. The bridge asked the model once to say it again.",
        "Report the model version and session to Google if it repeats; a fresh call usually "
        "recovers. Raise `warnings.quiet_agent_rms` only if your agent speaks very softly.",
    ),
    WarningCode.MODEL_PHANTOM_INTERRUPTION: CatalogueEntry(
        "The model reported `interrupted` although the caller had been silent for "
        "`warnings.phantom_interruption_window_s` and the bridge had sent nothing. If the "
        "model said nothing more within `warnings.phantom_resume_after_s`, the bridge asked "
        "it once to continue where it stopped.",
        "Line noise or echo can look like speech to the server's VAD: check the line, and "
        "consider lowering the start-of-speech sensitivity for the tenant.",
    ),
    WarningCode.MODEL_TURN_CUT_MID_SENTENCE: CatalogueEntry(
        "The model ended a turn (`turnComplete`, no barge-in, no tool call, no "
        "`generationComplete`) with its transcript stopping mid-sentence. The bridge asked "
        "the model once to continue from where it stopped. Judged once the back end has sent "
        "a `generationComplete` in the call (google-genai does; ADK does not pass it on).",
        "Report the model version if it repeats. Needs `model.output_transcription` (the "
        "transcript is how the bridge sees a sentence was not finished).",
    ),
    WarningCode.AGENT_AUDIO_TONE: CatalogueEntry(
        "The model sent `warnings.agent_tone_s` of a steady non-speech tone (one spectral "
        "peak, no transcript). The bridge cut the turn's audio, cleared the line and asked the "
        "model once to say its reply again.",
        "Report the model version and session; if it repeats, end such calls or start a "
        "fresh session.",
    ),
}


def catalogue_markdown() -> str:
    """The README table of every code, generated from :data:`CATALOGUE` (one row per code)."""
    rows = ["| Code | When | Recommended resolution |", "|---|---|---|"]
    for code in WarningCode:
        entry = CATALOGUE[code]
        when = entry.when.replace("|", "\\|")
        resolution = entry.resolution.replace("|", "\\|")
        rows.append(f"| `{code.value}` | {when} | {resolution} |")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True, slots=True)
class BridgeWarning:
    """One warning, in the shape sent to hooks and webhooks."""

    code: WarningCode
    description: str
    call_id: str
    tenant: str
    at: float = field(default_factory=time.time)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """Its name in logs (the webhook's ``Deliverable``)."""
        return self.code.value

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

    def take_suppressed(self) -> dict[WarningCode, int]:
        """The suppressed counts not yet reported (and forget them); for the call's end."""
        pending, self._suppressed = self._suppressed, {}
        return pending


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
        self._emit(BridgeWarning(code, description, self.call_id, self.tenant, details=details))

    def flush_suppressed(self) -> None:
        """Report what the rate limiter held back since each code's last warning.

        Without this a burst that stops (a queue that overflowed for half a second) would be
        reported once, with the count of its repeats lost. Call it when the call ends.
        """
        for code, count in self._limiter.take_suppressed().items():
            self._emit(
                BridgeWarning(
                    code,
                    f"{count} more {code.value} warning(s) were suppressed by the rate limit",
                    self.call_id,
                    self.tenant,
                    details={"suppressed_since_last": count, "summary": True},
                )
            )

    def _emit(self, warning: BridgeWarning) -> None:
        if self._on_record is not None:
            self._on_record(warning)
        self._sink.submit(warning)
