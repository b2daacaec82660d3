"""Tenant configuration, validated with pydantic.

One TOML file per tenant plus environment overrides (``CALLBRIDGE_<SECTION>__<FIELD>``).
Secrets (API keys, webhook secrets, admin tokens) are read from the environment or from
files named in the TOML, never from the TOML itself, so an image can ship its config safely.
Every invalid field is reported at once, each with its dotted path.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from callbridge.bridge.audio import Quality
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.heard import TruthfulMode
from callbridge.bridge.input_path import ModelInputRate, model_input_rate
from callbridge.bridge.line_watch import WatchSettings
from callbridge.bridge.opening import OpeningSettings

CallRate = Literal[8000, 16000, 24000]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelcoflowSettings(_Strict):
    """How to reach the Telcoflow platform: API key + connector, or mTLS cert + key."""

    base_url: str | None = None
    connector_uuid: str | None = None
    api_key: SecretStr | None = None
    cert_path: Path | None = None
    key_path: Path | None = None

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
    model_input_rate: Annotated[ModelInputRate, BeforeValidator(_int_if_digits)] = Field(
        default="auto",
        description="rate caller audio is sent to the model at (declared audio/pcm;rate=N); "
        "auto: the call's own rate for 8 and 16 kHz calls (no resampler delay), else 16000",
    )
    frame_ms: Annotated[int, Field(ge=10, le=200)] = 20
    resample_quality: Quality = "HQ"
    playout_high_water_s: Annotated[float, Field(gt=0.1, le=30)] = 4.0
    max_pending_agent_audio_s: Annotated[float, Field(ge=5, le=600)] = 120.0
    clear_hold_s: Annotated[float, Field(ge=0.0, le=5)] = 0.5
    max_gated_caller_audio_s: Annotated[float, Field(ge=1, le=120)] = 20.0

    def model_rate(self) -> int:
        """The rate caller audio goes to the model at (see ``callbridge.bridge.input_path``)."""
        return model_input_rate(self.call_rate, self.model_input_rate)


class ModelSettings(_Strict):
    backend: Literal["gemini", "adk"] = "gemini"
    model: str = "gemini-2.5-flash-native-audio-preview-12-2025"
    fallback_model: str | None = None
    api_key: SecretStr | None = None
    fallback_api_key: SecretStr | None = None
    base_url: str | None = None
    ca_file: Path | None = None
    voice: str | None = "Puck"
    language: str | None = None
    system_instruction: str = "You are a helpful, concise phone agent."
    system_instruction_file: Path | None = None
    greeting_prompt: str | None = "The caller has just been connected. Greet them briefly."
    input_transcription: bool = True
    output_transcription: bool = True
    session_resumption: bool = True
    context_compression: bool = True
    compression_trigger_tokens: Annotated[int, Field(ge=1000)] = 25600
    compression_target_tokens: Annotated[int, Field(ge=500)] = 12800
    non_blocking_tools: bool | None = None
    adk_agent: str | None = None
    adk_session_db: str = "sqlite+aiosqlite:///callbridge-adk.sqlite"
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0
    keepalive_interval_s: Annotated[float, Field(gt=0, le=300)] = 20.0
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=300)] = 60.0
    max_reconnect_attempts: Annotated[int, Field(ge=0, le=20)] = 5
    truthful_barge_in: TruthfulMode = Field(
        default="auto",
        description="tell the model what the caller heard of an interrupted reply: auto = on "
        "for families that accept role content mid-session (gemini-3.8-live), on = also a "
        "short note for other families, off",
    )
    # The server's own turn-taking controls (realtimeInputConfig), call-wide; None: its default.
    start_of_speech_sensitivity: Literal["low", "high"] | None = None
    end_of_speech_sensitivity: Literal["low", "high"] | None = None
    prefix_padding_ms: Annotated[int, Field(ge=0, le=5000)] | None = None
    silence_duration_ms: Annotated[int, Field(ge=0, le=10000)] | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSettings:
        if self.backend == "adk" and not self.adk_agent:
            raise ValueError("model.backend = 'adk' needs model.adk_agent = 'module:attribute'")
        if self.compression_target_tokens >= self.compression_trigger_tokens:
            raise ValueError(
                "model.compression_target_tokens must be below model.compression_trigger_tokens"
            )
        return self

    def resolved_instruction(self) -> str:
        if self.system_instruction_file is not None:
            return self.system_instruction_file.read_text(encoding="utf-8")
        return self.system_instruction

    def tools_non_blocking(self) -> bool:
        """NON_BLOCKING declarations where the model family supports them (2.5 does, 3.x not)."""
        if self.non_blocking_tools is not None:
            return self.non_blocking_tools
        return "gemini-3" not in self.model


class OpeningConfig(_Strict):
    """The protected opening (``callbridge.bridge.opening``): the greeting is not cut by a short
    sound."""

    protect_s: Annotated[float, Field(ge=0, le=30)] = Field(
        default=2.0, description="protect the first agent turn this long after its audio starts"
    )
    min_barge_in_s: Annotated[float, Field(gt=0, le=10)] = 0.8
    run_gap_s: Annotated[float, Field(gt=0, le=2)] = 0.3

    def guard(self) -> OpeningSettings:
        return OpeningSettings(self.protect_s, self.min_barge_in_s, self.run_gap_s)


TransferMode = Literal["leave", "whisper", "spy"]


class ToolsSettings(_Strict):
    transfer_to_human: bool = True
    end_call: bool = True
    set_agent_mode: bool = True
    ring_time_s: Annotated[int, Field(ge=1, le=120)] = 30
    after_transfer: TransferMode = "leave"
    farewell_drain_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    default_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    custom: dict[str, str] = Field(
        default_factory=dict,
        description="name -> 'module:function' of user async tools",
    )
    custom_timeouts_s: dict[str, float] = Field(default_factory=dict)


class WarningSettings(_Strict):
    slow_model_response_s: Annotated[float, Field(gt=0)] = 3.0
    slow_tool_call_s: Annotated[float, Field(gt=0)] = 5.0
    model_turn_stall_s: Annotated[float, Field(gt=0)] = 2.0
    min_interval_s: Annotated[float, Field(ge=0)] = 1.0
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    webhook_queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    quiet_agent_rms: Annotated[float, Field(ge=0, le=5000)] = 30.0
    quiet_agent_audio_s: Annotated[float, Field(gt=0, le=60)] = 1.5
    agent_tone_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    phantom_interruption_window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    phantom_resume_after_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    max_recoveries_per_call: Annotated[int, Field(ge=0, le=20)] = 3

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
    model_connects_per_minute: Annotated[int, Field(ge=1)] = 600
    admission_wait_s: Annotated[float, Field(ge=0, le=30)] = 3.0
    max_prompt_chars: Annotated[int, Field(ge=100)] = 25_000
    drain_grace_s: Annotated[float, Field(ge=0, le=3600)] = 120.0
    model_connects_burst: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="connects allowed back to back; default: 10 seconds' worth of the rate",
    )

    def connect_burst(self) -> int:
        """The token bucket's size: a short burst, so a restart does not spend a minute's quota."""
        if self.model_connects_burst is not None:
            return self.model_connects_burst
        return max(1, -(-self.model_connects_per_minute // 6))


class ServiceSettings(_Strict):
    http_host: str = "0.0.0.0"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    admin_token: SecretStr | None = None
    records_url: str = "sqlite+aiosqlite:///callbridge-records.sqlite"
    log_full_numbers: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"


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
        lines.append(f"{path}: {message}".replace("\n", " "))
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
    if backend == "gemini" and not _effective(data, env, "model", "api_key"):
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
    if isinstance(token, str) and 0 < len(token) < MIN_ADMIN_TOKEN_CHARS:
        problems.append(
            f"service.admin_token: too short ({len(token)} characters; at least "
            f"{MIN_ADMIN_TOKEN_CHARS}); set a random CALLBRIDGE_ADMIN_TOKEN"
        )
    return problems


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
