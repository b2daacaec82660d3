"""Tenant configuration, validated with pydantic.

One TOML file per tenant plus environment overrides (``CALLBRIDGE_<SECTION>__<FIELD>``).
Secrets (API keys, webhook secrets, admin tokens) are read from the environment or from
files named in the TOML, never from the TOML itself, so an image can ship its config safely.
Every invalid field is reported at once, each with its dotted path.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from callbridge.bridge.audio import Quality
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.heard import TruthfulMode
from callbridge.bridge.input_path import ModelInputRate, model_input_rate
from callbridge.bridge.line_watch import WatchSettings
from callbridge.bridge.models import (
    DEFAULT_MODEL,
    OVERRIDABLE,
    Capabilities,
    Provider,
    capabilities,
    setup_problems,
)
from callbridge.bridge.opening import OpeningSettings
from callbridge.bridge.privacy import Redactor

CallRate = Literal[8000, 16000, 24000]


class _Strict(BaseModel):
    # A field's docstring is its description: docs/config.md is generated from them.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class TelcoflowSettings(_Strict):
    """How to reach the Telcoflow platform: API key + connector, or mTLS cert + key."""

    base_url: str | None = None
    """Telcoflow endpoint (`wss://...`); default: the SDK's production endpoint. Env
    `TELCOFLOW_BASE_URL`."""
    connector_uuid: str | None = None
    """The connector whose calls this tenant answers. Env `TELCOFLOW_CONNECTOR_UUID`."""
    api_key: SecretStr | None = None
    """Telcoflow API key (secret: env `TELCOFLOW_API_KEY` only)."""
    cert_path: Path | None = None
    """Client certificate (PEM) for mTLS instead of the API key."""
    key_path: Path | None = None
    """Private key (PEM) of `cert_path`."""

    @model_validator(mode="after")
    def _one_auth_mode(self) -> TelcoflowSettings:
        if bool(self.api_key) != bool(self.connector_uuid):
            raise ValueError(
                "set both telcoflow.api_key (env TELCOFLOW_API_KEY) and "
                "telcoflow.connector_uuid (env TELCOFLOW_CONNECTOR_UUID), or neither"
            )
        if bool(self.cert_path) != bool(self.key_path):
            raise ValueError("set both telcoflow.cert_path and telcoflow.key_path, or neither")
        if not self.api_key and not self.cert_path:
            raise ValueError(
                "no Telcoflow credentials: set TELCOFLOW_API_KEY and TELCOFLOW_CONNECTOR_UUID, "
                "or telcoflow.cert_path and telcoflow.key_path"
            )
        return self


def _int_if_digits(value: object) -> object:
    """``"8000"`` from an environment variable means the number (a Literal does not coerce)."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


class AudioSettings(_Strict):
    """The audio path. Defaults favour low latency at good quality (see README)."""

    call_rate: CallRate = 16000
    """Sample rate of the Telcoflow leg (Hz); 8000 and 16000 go to the model as they are."""
    model_input_rate: Annotated[ModelInputRate, BeforeValidator(_int_if_digits)] = "auto"
    """Rate caller audio is sent to the model at (declared `audio/pcm;rate=N`); `auto`: the
    call's own rate for 8 and 16 kHz calls (no resampler delay), else 16000."""
    frame_ms: Annotated[int, Field(ge=10, le=200)] = 20
    """Caller audio goes to the model in frames of this many milliseconds."""
    resample_quality: Quality = "HQ"
    """soxr quality: HQ (about 21 ms delay 24 to 16 kHz), LQ (half), QQ (none, no anti-aliasing)."""
    playout_high_water_s: Annotated[float, Field(gt=0.1, le=30)] = 4.0
    """Agent audio is written into the SDK's send buffer only while it holds less than this."""
    max_pending_agent_audio_s: Annotated[float, Field(ge=5, le=600)] = 120.0
    """Agent audio queued beyond this is dropped, oldest first (`SEND_BUFFER_FULL`)."""
    clear_hold_s: Annotated[float, Field(ge=0.0, le=5)] = 0.5
    """After a barge-in, new agent audio waits at most this long for the buffer clear."""
    max_gated_caller_audio_s: Annotated[float, Field(ge=1, le=120)] = 20.0
    """Caller audio held while a BLOCKING tool runs; beyond it the oldest is dropped
    (`CALLER_AUDIO_DROPPED`)."""

    def model_rate(self) -> int:
        """The rate caller audio goes to the model at (see ``callbridge.bridge.input_path``)."""
        return model_input_rate(self.call_rate, self.model_input_rate)


class ModelSettings(_Strict):
    """The model, where it is served, and how a session is set up.

    ``provider`` is the Gemini Developer API (an API key) or Vertex AI (``project``,
    ``location``, and Application Default Credentials or ``credentials_file``, a service
    account key file). What the model accepts comes from :mod:`callbridge.bridge.models`;
    ``capabilities`` overrides single fields of it for a model the table does not know.
    """

    backend: Literal["gemini", "adk"] = "gemini"
    """`gemini`: Gemini Live directly; `adk`: your ADK agent (`adk_agent`) through
    `Runner.run_live`."""
    model: str = DEFAULT_MODEL
    """Gemini Live model name; what it accepts is the table in `callbridge.bridge.models`."""
    fallback_model: str | None = None
    """Model used when `model` cannot be connected at call start (`FALLBACK_MODEL_USED`)."""
    provider: Provider = "gemini_api"
    """`gemini_api` (the Gemini Developer API, an API key) or `vertex` (Vertex AI)."""
    project: str | None = None
    """Google Cloud project of the Vertex AI endpoint (required with `provider = "vertex"`)."""
    location: str = "us-central1"
    """Vertex AI region of the endpoint."""
    credentials_file: Path | None = None
    """Service account key file for Vertex AI; unset: Application Default Credentials."""
    capabilities: dict[str, bool | int | str] = Field(default_factory=dict)
    """Override single fields of the model table, for a model the table does not know."""
    proactive_audio: bool | None = None
    """Proactive audio (the model may choose not to answer); unset: the model's default."""
    affective_dialog: bool = False
    """Affective dialog (the model adapts to the caller's tone), where the model supports it."""
    api_key: SecretStr | None = None
    """Gemini API key (secret: env `GEMINI_API_KEY` only)."""
    fallback_api_key: SecretStr | None = None
    """Key for `fallback_model` (secret: env `GEMINI_FALLBACK_API_KEY`); default: `api_key`."""
    base_url: str | None = None
    """Gemini endpoint override (the emulator, a proxy); default: Google's."""
    ca_file: Path | None = None
    """A CA bundle (PEM) to trust for `base_url` (the emulator's `ca.pem`)."""
    voice: str | None = "Puck"
    """Prebuilt voice name; unset: the model's default."""
    language: str | None = None
    """BCP-47 language code for speech; unset: the model decides."""
    system_instruction: str = "You are a helpful, concise phone agent."
    """The system instruction (prompt)."""
    system_instruction_file: Path | None = None
    """Read the system instruction from this file instead."""
    greeting_prompt: str | None = "The caller has just been connected. Greet them briefly."
    """Sent when the call is answered so the model greets first; unset: wait for the caller."""
    input_transcription: bool = True
    """Ask for transcripts of the caller (call record, logs)."""
    output_transcription: bool = True
    """Ask for transcripts of the agent."""
    session_resumption: bool = True
    """Resume the model session on goAway and drops (keeps long calls up)."""
    context_compression: bool = True
    """Sliding-window context compression (long calls)."""
    compression_trigger_tokens: Annotated[int, Field(ge=1000)] = 25600
    """Compress when the context reaches this many tokens."""
    compression_target_tokens: Annotated[int, Field(ge=500)] = 12800
    """...down to this many."""
    non_blocking_tools: bool | None = None
    """Declare tools NON_BLOCKING; unset: where the model table says the model has them."""
    adk_agent: str | None = None
    """`module:attribute` of an ADK `Agent` or `App` (with `backend = "adk"`)."""
    adk_session_db: str = "sqlite+aiosqlite:///callbridge-adk.sqlite"
    """SQLAlchemy URL of ADK's session store (conversations survive a restart)."""
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0
    """Give up connecting to the model after this long."""
    keepalive_interval_s: Annotated[float, Field(gt=0, le=300)] = 20.0
    """WebSocket ping interval to the model."""
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=300)] = 60.0
    """A ping unanswered this long drops the connection (then it reconnects)."""
    max_reconnect_attempts: Annotated[int, Field(ge=0, le=20)] = 5
    """Reconnect attempts after an unplanned drop before the call ends."""
    truthful_barge_in: TruthfulMode = "auto"
    """Tell the model what the caller heard of an interrupted reply: `auto`: where the model
    table says it accepts role content mid-session (3.8); `on`: a short note for other models
    too; `off`."""
    # The server's own turn-taking controls (realtimeInputConfig), call-wide; None: its default.
    start_of_speech_sensitivity: Literal["low", "high"] | None = None
    """Server VAD start-of-speech sensitivity, for the whole call; unset: the server's."""
    end_of_speech_sensitivity: Literal["low", "high"] | None = None
    """Server VAD end-of-speech sensitivity, for the whole call; unset: the server's."""
    prefix_padding_ms: Annotated[int, Field(ge=0, le=5000)] | None = None
    """Speech needed before the server VAD commits to a start of speech; unset: the server's."""
    silence_duration_ms: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Silence that ends the caller's speech for the server VAD; unset: the server's."""

    @model_validator(mode="after")
    def _check(self) -> ModelSettings:
        if self.backend == "adk" and not self.adk_agent:
            raise ValueError("model.backend = 'adk' needs model.adk_agent = 'module:attribute'")
        if self.compression_target_tokens >= self.compression_trigger_tokens:
            raise ValueError(
                "model.compression_target_tokens must be below model.compression_trigger_tokens"
            )
        problems = []
        unknown = sorted(set(self.capabilities) - OVERRIDABLE)
        if unknown:
            problems.append(
                f"model.capabilities: unknown fields {unknown}; choose from {sorted(OVERRIDABLE)}"
            )
        if self.provider == "vertex" and not self.project:
            problems.append(
                "model.project: Vertex AI needs the Google Cloud project "
                "(set model.project, or model.provider = 'gemini_api')"
            )
        if self.provider != "vertex" and self.credentials_file is not None:
            problems.append(
                "model.credentials_file: only used with model.provider = 'vertex'; remove it"
            )
        if not unknown:
            for name in filter(None, (self.model, self.fallback_model)):
                problems += setup_problems(
                    self.caps(name),
                    model=name,
                    provider=self.provider,
                    proactive_audio=self.proactive_audio,
                    affective_dialog=self.affective_dialog,
                )
        if problems:
            raise ValueError("\n".join(dict.fromkeys(problems)))
        return self

    def caps(self, model: str | None = None) -> Capabilities:
        """What ``model`` (default: ``model.model``) accepts on this provider."""
        return capabilities(model or self.model, self.provider, self.capabilities)

    def resolved_instruction(self) -> str:
        if self.system_instruction_file is not None:
            return self.system_instruction_file.read_text(encoding="utf-8")
        return self.system_instruction

    def tools_non_blocking(self, model: str | None = None) -> bool:
        """NON_BLOCKING declarations where the model honours them (:mod:`callbridge.bridge.models`);
        ``model.non_blocking_tools`` forces the choice."""
        if self.non_blocking_tools is not None:
            return self.non_blocking_tools
        return self.caps(model).tools_non_blocking()


class OpeningConfig(_Strict):
    """The protected opening (``callbridge.bridge.opening``): the greeting is not cut by a short
    sound. Inbound calls with a `model.greeting_prompt` only (outbound calls have their own)."""

    protect_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    """Protect the first agent turn this long after its audio starts; 0: no protection."""
    min_barge_in_s: Annotated[float, Field(gt=0, le=10)] = 0.8
    """Caller speech this long during the opening is a real barge-in (shorter is muted)."""
    run_gap_s: Annotated[float, Field(gt=0, le=2)] = 0.3
    """Quiet this long ends a run of caller speech during the opening."""

    def guard(self) -> OpeningSettings:
        return OpeningSettings(self.protect_s, self.min_barge_in_s, self.run_gap_s)


TransferMode = Literal["leave", "whisper", "spy"]


class ToolsSettings(_Strict):
    transfer_to_human: bool = True
    """Offer the `transfer_to_human` tool."""
    end_call: bool = True
    """Offer the `end_call` tool."""
    set_agent_mode: bool = True
    """Offer the `set_agent_mode` tool (whisper, barge, spy after a transfer)."""
    ring_time_s: Annotated[int, Field(ge=1, le=120)] = 30
    """How long the human's phone rings on a transfer."""
    after_transfer: TransferMode = "leave"
    """What the agent does once a human answers: `leave`, `whisper` or `spy`."""
    farewell_drain_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """`end_call` waits at most this long for the farewell to play."""
    default_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    """A custom tool running longer is cancelled and fails (`TOOL_CALL_FAILED`)."""
    custom: dict[str, str] = Field(
        default_factory=dict,
        description="name -> 'module:function' of user async tools",
    )
    custom_timeouts_s: dict[str, float] = Field(default_factory=dict)
    """Per-tool timeouts (seconds) for `custom` tools, by tool name."""


class WarningSettings(_Strict):
    slow_model_response_s: Annotated[float, Field(gt=0)] = 3.0
    """`SLOW_MODEL_RESPONSE` when no model audio comes this long after the caller stopped."""
    slow_tool_call_s: Annotated[float, Field(gt=0)] = 5.0
    """`SLOW_TOOL_CALL` when a tool runs longer than this."""
    model_turn_stall_s: Annotated[float, Field(gt=0)] = 2.0
    """`MODEL_TURN_INCOMPLETE` when a started turn sends nothing this long."""
    min_interval_s: Annotated[float, Field(ge=0)] = 1.0
    """At most one warning of a code per call per interval (the rest are counted)."""
    webhook_url: str | None = None
    """POST every warning here (signed with `webhook_secret`)."""
    webhook_secret: SecretStr | None = None
    """HMAC secret for webhook signatures (secret: env `CALLBRIDGE_WEBHOOK_SECRET`)."""
    webhook_allow_private: bool = Field(
        default=False,
        description="allow a webhook on a loopback, private or link-local address",
    )
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Each webhook attempt gives up after this long."""
    webhook_queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Warnings waiting for delivery; the oldest is dropped when full."""
    quiet_agent_rms: Annotated[float, Field(ge=0, le=5000)] = 30.0
    """Agent audio below this RMS is near-silent (`AGENT_AUDIO_NEAR_SILENT`)."""
    quiet_agent_audio_s: Annotated[float, Field(gt=0, le=60)] = 1.5
    """`AGENT_AUDIO_NEAR_SILENT` after this much near-silent agent audio in one turn."""
    agent_tone_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    """`AGENT_AUDIO_TONE` after this much steady tone without a transcript."""
    phantom_interruption_window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    """`interrupted` with no caller voice and no bridge input for this long is a phantom
    (`MODEL_PHANTOM_INTERRUPTION`)."""
    phantom_resume_after_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    """After a phantom interruption, ask the model to continue if it is silent this long."""
    max_recoveries_per_call: Annotated[int, Field(ge=0, le=20)] = 3
    """Silent-failure recoveries (nudges) per call; past it a symptom is only reported."""

    def line_watch(self) -> WatchSettings:
        """The silent-failure thresholds (``callbridge.bridge.line_watch``)."""
        return WatchSettings(
            quiet_rms=self.quiet_agent_rms,
            quiet_after_s=self.quiet_agent_audio_s,
            tone_after_s=self.agent_tone_s,
            phantom_window_s=self.phantom_interruption_window_s,
            resume_after_s=self.phantom_resume_after_s,
            max_recoveries=self.max_recoveries_per_call,
        )


class LimitSettings(_Strict):
    max_concurrent_calls: Annotated[int, Field(ge=1, le=10_000)] = 50
    """This process never claims more calls; other replicas take the rest."""
    claim_spread_ms: Annotated[float, Field(ge=0, le=1000)] = 20.0
    """Before claiming an offered call, wait this long times the share of
    `max_concurrent_calls` in use: every replica (and every `service.workers` process) is
    offered every call and the first to claim gets it, so the least loaded one should be
    first. 0: claim at once."""
    model_connects_per_minute: Annotated[int, Field(ge=1)] = 600
    """New model connections per minute for the tenant; over it calls wait."""
    admission_wait_s: Annotated[float, Field(ge=0, le=30)] = 3.0
    """A call waits at most this long for the connect rate limit (`CALL_ADMISSION_DELAYED`)."""
    max_prompt_chars: Annotated[int, Field(ge=100)] = 25_000
    """Longer system instructions are truncated (`PROMPT_TOO_LONG`)."""
    drain_grace_s: Annotated[float, Field(ge=0, le=3600)] = 120.0
    """On SIGTERM live calls get this long to finish before they are hung up."""
    model_failures_unready: Annotated[int, Field(ge=1, le=1000)] = 3
    """Model connects failing in a row before ``/readyz`` says ``model_unavailable``."""
    model_retry_after_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """How long an unreachable model keeps the replica unready before it tries again."""
    model_connects_burst: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="connects allowed back to back; default: 10 seconds' worth of the rate",
    )

    def connect_burst(self) -> int:
        """The token bucket's size: a short burst, so a restart does not spend a minute's quota."""
        if self.model_connects_burst is not None:
            return self.model_connects_burst
        return max(1, -(-self.model_connects_per_minute // 6))


MAX_WORKERS = 256
"""``service.workers`` above this is a typo, not a machine."""


class ServiceSettings(_Strict):
    """Listeners, records and logs. Probes+metrics bind every interface (the kubelet and
    Prometheus reach them); the admin API binds loopback unless told otherwise."""

    http_host: str = "0.0.0.0"
    """Address of the HTTP server (`/healthz`, `/readyz`, `/metrics`, admin API)."""
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Its port (0: any free port)."""
    admin_host: str = "127.0.0.1"
    """Address of the admin listener (admin API, console); loopback unless told otherwise."""
    admin_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    """Port of the admin listener (0: any free port); must differ from `http_port`."""
    admin_token: SecretStr | None = None
    """Bearer token for the admin API, at least 16 characters (secret: env
    `CALLBRIDGE_ADMIN_TOKEN`)."""
    http_max_connections: Annotated[int, Field(ge=1, le=10_000)] = 64
    """Open HTTP connections per listener; one more is closed before anything is read."""
    http_read_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    """A request (headers and body) not fully read in this long closes the connection."""
    http_max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    """Larger request bodies are refused with 413."""
    records_url: str = "sqlite+aiosqlite:///callbridge-records.sqlite"
    """SQLAlchemy URL of the call-record store (SQLite or PostgreSQL); migrated at start."""
    records_flush_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    """At shutdown, give the record store this long to write what is queued (the rest is
    logged as lost)."""
    log_full_numbers: bool = False
    """Log and store phone numbers unmasked (default: last four digits only)."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """`json`, `console`, or `auto` (JSON when stderr is not a terminal)."""
    workers: int | Literal["auto"] = 1
    """Bridge processes for this tenant (one core each), behind these listeners: a whole number
    >= 1, or `auto` (the cores the container may use: CPU affinity capped by the cgroup CPU
    limit, rounded up). Each takes its share of `limits.max_concurrent_calls`. Default 1: one
    process, as sized by memory limits set for one."""

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())  # from CALLBRIDGE_SERVICE__WORKERS
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            raise ValueError(
                f'expected a whole number from 1 to {MAX_WORKERS} or "auto" (got {value!r})'
            )
        return value

    @model_validator(mode="after")
    def _distinct_listeners(self) -> ServiceSettings:
        if self.admin_port and self.admin_port == self.http_port:
            raise ValueError(
                "service.admin_port must differ from service.http_port: the admin API has "
                "its own listener, apart from probes and metrics"
            )
        return self


class OutboundSettings(_Strict):
    """Placing calls (``app.dial``, ``POST /calls``, ``callbridge call``) and their etiquette."""

    enabled: bool = False
    """Allow this tenant to place calls (declared to Telcoflow with ``call_flow.setup``)."""
    instruction_template: str | None = None
    """The system instruction of outbound calls, with ``{name}`` placeholders filled per call;
    unset: ``model.system_instruction`` (then a call may pass no variables)."""
    opening_prompt: str = (
        "The person you called has picked up the phone. Introduce yourself briefly and say "
        "why you are calling."
    )
    """Sent to the model once a person has picked up and said hello (or stayed silent)."""
    opening_silence_s: Annotated[float, Field(gt=0, le=10)] = 2.0
    """Start the opening after this much silence if the callee says nothing."""
    end_of_hello_s: Annotated[float, Field(gt=0.1, le=3)] = 0.7
    """Silence that ends the callee's first words: shorter speech than `machine_speech_s`
    followed by this much silence is a person."""
    opening_barge_in_s: Annotated[float, Field(gt=0, le=10)] = 1.2
    """Callee speech this long during the opening is a real interruption (barge-in); shorter
    speech is held until the opening has played."""
    machine_speech_s: Annotated[float, Field(gt=0.5, le=15)] = 3.0
    """First words that go on this long are an answering machine's greeting."""
    voicemail: Literal["leave", "hang_up"] = "leave"
    """On an answering machine: `leave` a message after the beep (`voicemail_left`), or
    `hang_up` at once (`no_answer`)."""
    voicemail_prompt: str = (
        "You reached an answering machine and the beep has sounded. Leave a short message: "
        "who you are and why you called, then say goodbye."
    )
    """Sent to the model when the beep has ended (with `voicemail = "leave"`)."""
    ring_timeout_s: Annotated[float, Field(ge=5, le=120)] = 30.0
    """Give up on a call nobody picks up after this long (`no_answer`)."""
    max_concurrent_calls: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Outbound calls at once; they also count against ``limits.max_concurrent_calls``."""


class CampaignSettings(_Strict):
    """Dialling campaign rows from the record store (``callbridge campaign submit``)."""

    enabled: bool = False
    """Run the campaign dialler in this replica (needs `outbound.enabled`)."""
    calls_per_minute: Annotated[int, Field(ge=1, le=6000)] = 10
    """Campaign calls started per minute by this replica (a token bucket)."""
    max_concurrent_calls: Annotated[int, Field(ge=1, le=10_000)] = 5
    """Campaign calls of this replica at once (within ``outbound.max_concurrent_calls``)."""
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Dial a row at most this many times (only `no_answer` and `busy` are retried)."""
    retry_after_s: Annotated[float, Field(ge=1)] = 600.0
    """Wait before a retry (then longer with each attempt)."""
    quiet_start: str = "21:00"
    """Start of the quiet hours (HH:MM, in the callee's zone): no campaign call then."""
    quiet_end: str = "09:00"
    """End of the quiet hours (HH:MM, in the callee's zone)."""
    default_tz: str = "UTC"
    """Time zone of a row that names none (IANA name, e.g. `Europe/London`)."""
    poll_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    """Look for due rows this often."""
    stale_after_s: Annotated[float, Field(ge=60)] = 3600.0
    """A row left `dialling` this long (its replica died mid-call) becomes `interrupted`,
    never dialled again on its own: the callee may have been reached."""
    replica: str | None = None
    """This replica's name in the rows it claims; default: the host name."""


class CallFlowSettings(_Strict):
    """What the bridge declares with ``call_flow.setup``; sent when ``inbound`` is set or
    outbound calls are enabled. ``MISSED_ONLY``: the agent only gets calls a human missed."""

    inbound: Literal["ALL", "MISSED_ONLY", "NO"] | None = None
    """Which inbound calls the agent gets; unset: the platform's default (nothing declared)."""


class TracingSettings(_Strict):
    """OpenTelemetry traces, one per call (see README "Tracing"). Off unless an endpoint is set.

    ``include_content`` puts caller content (transcripts, tool arguments and results, the
    full phone number) into ``callbridge.pii.*`` attributes; without it they are left out.
    """

    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces"
    )
    service_name: str = "callbridge"
    """The `service.name` resource attribute of every span."""
    include_content: bool = False
    """Put transcripts, tool arguments and results and the full number in `callbridge.pii.*`."""
    queue_size: Annotated[int, Field(ge=64, le=1_000_000)] = 8192
    """Spans waiting for export; when full the newest are dropped (never a wait on a call)."""
    export_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Each export, and the final flush at shutdown, gives up after this long."""

    @model_validator(mode="after")
    def _check(self) -> TracingSettings:
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"tracing.otlp_endpoint: must be an http:// or https:// URL "
                f"(got {self.otlp_endpoint!r})"
            )
        return self


class ModelPrice(_Strict):
    """US dollars per million tokens, by direction and modality."""

    input_text: Annotated[float, Field(ge=0)]
    input_audio: Annotated[float, Field(ge=0)]
    output_text: Annotated[float, Field(ge=0)]
    output_audio: Annotated[float, Field(ge=0)]
    input_image: Annotated[float, Field(ge=0)] | None = None
    input_video: Annotated[float, Field(ge=0)] | None = None


_NATIVE_AUDIO_25 = ModelPrice(
    input_text=0.50, input_audio=3.00, output_text=2.00, output_audio=12.00
)

DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gemini-2.5-flash-native-audio": _NATIVE_AUDIO_25,
    "gemini-live-2.5-flash-native-audio": _NATIVE_AUDIO_25,
}
"""Price table defaults, matched by the longest key the model name starts with.

Source: the Gemini API pricing page (ai.google.dev/gemini-api/docs/pricing), "Gemini 2.5
Flash Native Audio (Live API)", as remembered for late 2025: input $0.50 text, $3.00
audio/video; output $2.00 text, $12.00 audio per 1M tokens. Not re-checked on 2026-12-03
(no network to the page from the build machine): set ``cost.prices`` from your own price list.
"""


class CostSettings(_Strict):
    """Per-model prices; entries here are merged over :data:`DEFAULT_PRICES`."""

    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """USD per million tokens by model name prefix (`input_text`, `input_audio`, `output_text`,
    `output_audio`); merged over the built-in table, which has no 3.x prices yet."""

    def price_for(self, model: str) -> ModelPrice | None:
        table = {**DEFAULT_PRICES, **self.prices}
        if model in table:
            return table[model]
        matches = [key for key in table if model.startswith(key)]
        return table[max(matches, key=len)] if matches else None


class RecordingSettings(_Strict):
    """Stereo call recordings (caller left, agent right, as the phone heard it); opt-in.

    Files go to ``directory/<tenant>/<YYYY-MM-DD>/<call id>.<format>`` and are deleted
    ``retention_days`` after they were written by a purge that runs every
    ``purge_interval_s``. ``queue_s`` bounds the audio waiting for the disk (per call); past
    it the newest audio is recorded as silence and counted (see ``callbridge.bridge.recording``).
    """

    enabled: bool = False
    """Record every call as stereo audio (caller left, agent right)."""
    directory: Path = Path("recordings")
    """Where recordings go (`<tenant>/<YYYY-MM-DD>/<call id>.<format>` below it)."""
    format: Literal["flac", "wav"] = "flac"
    """`flac` (lossless and smaller) or `wav`."""
    retention_days: Annotated[float, Field(gt=0, le=36500)] = 30.0
    """Recordings older than this are deleted."""
    purge_interval_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    """How often the recording purge runs."""
    queue_s: Annotated[float, Field(ge=1, le=600)] = 60.0
    """Audio per call waiting for the disk; past it audio is recorded as silence and counted."""


class PrivacySettings(_Strict):
    """Transcript redaction and retention (see README "Privacy").

    Redaction applies to transcript lines before any listener sees them (store, traces,
    console). Retention: transcript lines are deleted ``transcript_retention_days`` after the
    call started, the rest of the call's record after ``call_retention_days``; ``None``
    keeps them. The purge runs every ``purge_interval_s`` in the service.
    """

    redact_card_numbers: bool = True
    """Replace payment card numbers (Luhn-checked) in transcripts before anything sees them."""
    redact_phone_numbers: bool = False
    """Replace phone numbers in transcripts."""
    redact_emails: bool = False
    """Replace e-mail addresses in transcripts."""
    transcript_retention_days: Annotated[float, Field(gt=0)] | None = None
    """Delete transcript lines this long after the call started; unset: keep them."""
    call_retention_days: Annotated[float, Field(gt=0)] | None = None
    """Delete the whole call record this long after the call started; unset: keep it."""
    purge_interval_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    """How often the retention purge runs."""

    @model_validator(mode="after")
    def _check(self) -> PrivacySettings:
        calls, transcripts = self.call_retention_days, self.transcript_retention_days
        if calls is not None and transcripts is not None and transcripts > calls:
            raise ValueError(
                "privacy.transcript_retention_days must not exceed privacy.call_retention_days "
                "(transcripts go with the call's record)"
            )
        return self

    def redactor(self) -> Redactor:
        return Redactor(
            cards=self.redact_card_numbers,
            phones=self.redact_phone_numbers,
            emails=self.redact_emails,
        )


class TenantConfig(BaseSettings):
    """Everything one tenant's bridge process needs."""

    model_config = SettingsConfigDict(
        env_prefix="CALLBRIDGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    tenant: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    telcoflow: TelcoflowSettings
    audio: AudioSettings = AudioSettings()
    model: ModelSettings = ModelSettings()
    tools: ToolsSettings = ToolsSettings()
    warnings: WarningSettings = WarningSettings()
    opening: OpeningConfig = OpeningConfig()
    limits: LimitSettings = LimitSettings()
    service: ServiceSettings = ServiceSettings()
    outbound: OutboundSettings = OutboundSettings()
    call_flow: CallFlowSettings = CallFlowSettings()
    campaigns: CampaignSettings = CampaignSettings()
    tracing: TracingSettings = TracingSettings()
    cost: CostSettings = CostSettings()
    recording: RecordingSettings = RecordingSettings()
    privacy: PrivacySettings = PrivacySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, so a deployment can override any field.
        return env_settings, init_settings


SECRET_ENV = {
    ("telcoflow", "api_key"): "TELCOFLOW_API_KEY",
    ("telcoflow", "connector_uuid"): "TELCOFLOW_CONNECTOR_UUID",
    ("telcoflow", "base_url"): "TELCOFLOW_BASE_URL",
    ("model", "api_key"): "GEMINI_API_KEY",
    ("model", "fallback_api_key"): "GEMINI_FALLBACK_API_KEY",
    ("warnings", "webhook_secret"): "CALLBRIDGE_WEBHOOK_SECRET",
    ("service", "admin_token"): "CALLBRIDGE_ADMIN_TOKEN",
}
"""Well-known environment variables for secrets and endpoints (section, field) -> name."""

SECRET_FIELDS = {
    ("telcoflow", "api_key"),
    ("model", "api_key"),
    ("model", "fallback_api_key"),
    ("warnings", "webhook_secret"),
    ("service", "admin_token"),
}


def _apply_env(data: dict[str, Any], env: dict[str, str]) -> None:
    for (section, key), name in SECRET_ENV.items():
        if env.get(name):
            data.setdefault(section, {})[key] = env[name]


def _reject_inline_secrets(data: dict[str, Any]) -> list[str]:
    problems = []
    for section, key in sorted(SECRET_FIELDS):
        if key in data.get(section, {}):
            problems.append(
                f"{section}.{key}: secrets must not be in the TOML file; set "
                f"{SECRET_ENV[(section, key)]} in the environment instead"
            )
    return problems


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per problem, each starting with the dotted field path."""
    lines = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = str(item["msg"]).removeprefix("Value error, ")
        # A validator that checks several fields reports one problem per line, each
        # already naming its own (deeper) field.
        for line in message.split("\n"):
            named = re.match(rf"{re.escape(path)}\.[\w.]+: ", line) is not None
            lines.append(line if named else f"{path}: {line}")
    return lines


class ConfigInvalid(ConfigError):
    """Several problems at once; ``problems`` has one line per problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def config_problems(error: ConfigError) -> list[str]:
    """One line per problem, whichever way ``error`` was raised."""
    if isinstance(error, ConfigInvalid):
        return list(error.problems)
    return [line for line in str(error).splitlines() if line.strip()]


MIN_ADMIN_TOKEN_CHARS = 16
"""A shorter bearer token is guessable; the admin API can end calls."""

_FILE_FIELDS = (
    ("telcoflow", "cert_path"),
    ("telcoflow", "key_path"),
    ("model", "ca_file"),
    ("model", "credentials_file"),
    ("model", "system_instruction_file"),
)


def _effective(data: dict[str, Any], env: dict[str, str], section: str, key: str) -> Any:
    """A field's value as the settings will see it: ``CALLBRIDGE_<SECTION>__<KEY>`` wins."""
    from_env = env.get(f"CALLBRIDGE_{section.upper()}__{key.upper()}")
    if from_env:
        return from_env
    block = data.get(section)
    return block.get(key) if isinstance(block, dict) else None


def service_problems(data: dict[str, Any], env: dict[str, str]) -> list[str]:
    """What a running service needs beyond a well-formed file: its secrets and its files.

    Checked on the merged raw data so that these are reported together with any schema
    errors, in one pass, instead of one restart per problem.
    """
    problems = []
    backend = _effective(data, env, "model", "backend") or "gemini"
    provider = _effective(data, env, "model", "provider") or "gemini_api"
    if (
        backend == "gemini"
        and provider != "vertex"
        and not _effective(data, env, "model", "api_key")
    ):
        problems.append(
            "model.api_key: not set; set GEMINI_API_KEY in the environment "
            "(the Gemini Live back end needs it)"
        )
    for section, key in _FILE_FIELDS:
        value = _effective(data, env, section, key)
        if isinstance(value, str | Path) and value and not Path(value).is_file():
            problems.append(f"{section}.{key}: file not found: {value}")
    base_url = _effective(data, env, "telcoflow", "base_url")
    if isinstance(base_url, str) and not base_url.startswith(("ws://", "wss://")):
        problems.append(
            f"telcoflow.base_url: must start with ws:// or wss:// (got {base_url!r}; "
            "env TELCOFLOW_BASE_URL)"
        )
    agent = _effective(data, env, "model", "adk_agent")
    if backend == "adk" and isinstance(agent, str) and agent.count(":") != 1:
        problems.append(f"model.adk_agent: expected 'module:attribute', got {agent!r}")
    token = _effective(data, env, "service", "admin_token")
    if isinstance(token, str) and token:
        weakness = token_weakness(token)
        if weakness:
            problems.append(
                f"service.admin_token: {weakness}; set a random CALLBRIDGE_ADMIN_TOKEN "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    webhook = _effective(data, env, "warnings", "webhook_url")
    if isinstance(webhook, str) and webhook:
        allow = _effective(data, env, "warnings", "webhook_allow_private")
        allowed = allow is True or (isinstance(allow, str) and allow.lower() in ("1", "true"))
        problem = webhook_url_problem(webhook, allow_private=allowed)
        if problem:
            problems.append(f"warnings.webhook_url: {problem}")
        if not _effective(data, env, "warnings", "webhook_secret"):
            problems.append(
                "warnings.webhook_secret: not set; webhooks are signed, so set "
                "CALLBRIDGE_WEBHOOK_SECRET in the environment (or unset warnings.webhook_url)"
            )
    return problems


MIN_TOKEN_DISTINCT = 8
"""A token of at least 16 characters drawn from fewer than 8 distinct ones is a pattern."""


def token_weakness(token: str) -> str | None:
    """Why ``token`` is too weak for the admin API (which can end calls), or ``None``."""
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        return f"too short ({len(token)} characters; at least {MIN_ADMIN_TOKEN_CHARS})"
    if token != token.strip() or any(ch.isspace() for ch in token):
        return "contains whitespace"
    if not token.isprintable() or not token.isascii():
        return "contains non-printable or non-ASCII characters"
    if len(set(token)) < MIN_TOKEN_DISTINCT:
        distinct = len(set(token))
        return f"too little variety ({distinct} distinct characters; at least {MIN_TOKEN_DISTINCT})"
    return None


_LOCAL_NAMES = ("localhost", "localhost.localdomain", "metadata.google.internal")


def webhook_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not receive warnings, or ``None``: http(s) only, and no internal target.

    Loopback, private, link-local (``169.254.169.254``: the cloud metadata service) and other
    non-global addresses are refused unless ``warnings.webhook_allow_private`` is set: the
    bridge runs inside the cluster, and its POSTs must not become a way in. Names are checked
    as written (no DNS lookup here: ``check-config`` never touches the network).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not host:
        return f"expected an http(s) URL, got scheme {parts.scheme or '(none)'!r}"
    if allow_private:
        return None
    internal = host.lower().rstrip(".") in _LOCAL_NAMES or host.lower().endswith(".localhost")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        internal = not address.is_global
    if internal:
        return (
            f"{host} is a loopback, private or link-local address; set "
            "warnings.webhook_allow_private = true if that is really the receiver"
        )
    return None


def load_config(
    path: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    service: bool = False,
) -> TenantConfig:
    """Read, merge and validate; raise ``ConfigError`` listing every problem.

    With ``service`` also check what serving needs (:func:`service_problems`): the model's
    key and the files the settings name. ``callbridge serve`` and ``check-config`` set it.
    """
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        problems += _reject_inline_secrets(data)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    _apply_env(data, env)
    data.setdefault("telcoflow", {})
    try:
        config = TenantConfig(**data)
    except ValidationError as exc:
        problems += format_validation_error(exc)
        if service:
            problems += service_problems(data, env)
        raise ConfigInvalid(problems) from None
    if service:
        problems += service_problems(data, env)
    if problems:
        raise ConfigInvalid(problems)
    return config
