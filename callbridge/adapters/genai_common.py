"""google-genai plumbing both model back ends share: one place for each rule.

- how the genai client is built for a tenant: the Gemini Developer API (an API key) or Vertex
  AI (project, location and a google-auth credentials object), the websocket options
  (relaxed keepalive, 16 MiB frames) and the trust for a private endpoint;
- Vertex credentials: built once per tenant process from a service-account key file or
  Application Default Credentials, and refreshed off the event loop before a connect, so a
  call never waits for a token fetch on the loop and no call fetches its own token;
- the setup pieces both back ends send (speech, compression, resumption, the server's
  activity detection knobs, the optional fields the model table allows);
- what a Live close code means, and vendor exceptions turned into ``ModelUnavailable``.

The raw back end (:mod:`callbridge.adapters.gemini_live`) and the ADK back end
(:mod:`callbridge.adapters.adk`)
import from here; neither repeats any of it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import google.auth
import google.auth.exceptions
import websockets
from google import genai
from google.auth.credentials import Credentials
from google.auth.transport.requests import Request
from google.genai import errors, types

from callbridge.bridge.config import ModelSettings
from callbridge.bridge.errors import ConfigError, ModelUnavailable
from callbridge.bridge.models import Capabilities

MAX_FRAME = 16 * 2**20
"""Accept server frames up to 16 MiB (websockets' default is 1 MiB)."""

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

RETRYABLE_CLOSE = frozenset({1000, 1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which a reconnect (with the resumption handle) may succeed."""
CLOSE_REASONS = {
    1007: "invalid argument (bad setup, or a rejected resumption handle)",
    1008: "policy violation (e.g. audio sent while a BLOCKING tool call was pending)",
    1011: "server deadline expired or keepalive ping timeout",
}


# ── The client ──────────────────────────────────────────────────────────────────────────────


def keepalive_args(settings: ModelSettings) -> dict[str, Any]:
    """websockets options for the Live socket from the tenant's keepalive settings.

    Gemini's pongs have been seen to take 8-30 s; websockets' default 20 s timeout would
    close healthy sessions with 1011. Defaults: ping every 20 s, allow 60 s for the pong.
    """
    return {
        "ping_interval": settings.keepalive_interval_s,
        "ping_timeout": settings.keepalive_timeout_s,
        "max_size": MAX_FRAME,
    }


def socket_args(settings: ModelSettings, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``HttpOptions.async_client_args``: keepalive, frame size and the endpoint's trust."""
    args: dict[str, Any] = {**keepalive_args(settings), **(extra or {})}
    if settings.ca_file is not None:
        try:
            args["ssl"] = ssl.create_default_context(cafile=str(settings.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"model.ca_file: cannot use {settings.ca_file}: {exc}") from None
    return args


_CREDENTIALS: dict[tuple[str, str | None], Credentials] = {}


def vertex_credentials(settings: ModelSettings) -> Credentials:
    """The tenant's Vertex credentials: a key file, or Application Default Credentials.

    Built once per (key file, project) and process, and shared by both back ends, the primary
    and the fallback model: one cached token serves every call until it nears expiry. The
    quota project is the tenant's project (sent as ``x-goog-user-project``). Raises
    ``ConfigError`` naming the setting when none can be found. Never logs a secret.
    """
    key = (str(settings.credentials_file or ""), settings.project)
    cached = _CREDENTIALS.get(key)
    if cached is None:
        cached = _CREDENTIALS[key] = _load_credentials(settings)
    return cached


def _load_credentials(settings: ModelSettings) -> Credentials:
    try:
        if settings.credentials_file is not None:
            creds, _ = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                str(settings.credentials_file), scopes=[CLOUD_PLATFORM]
            )
        else:
            creds, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
    except google.auth.exceptions.DefaultCredentialsError as exc:
        field = "model.credentials_file" if settings.credentials_file else "model.provider"
        raise ConfigError(
            f"{field}: no usable Google Cloud credentials for Vertex AI ({exc}); set "
            "model.credentials_file to a service-account key file, or provide Application "
            "Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)"
        ) from None
    with_quota = getattr(creds, "with_quota_project", None)
    if settings.project and callable(with_quota):
        creds = with_quota(settings.project)
    return creds  # type: ignore[no-any-return]


def client_kwargs(
    settings: ModelSettings,
    *,
    api_key: str | None = None,
    credentials: Credentials | None = None,
    socket: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``genai.Client(**kwargs)`` for the tenant's provider (ADK's ``client_kwargs`` too).

    Vertex gets ``project`` and ``location`` explicitly: without them a custom base URL puts
    google-genai into a credential-less "proxy" mode that dials the URL verbatim.
    """
    options: dict[str, Any] = {"async_client_args": socket_args(settings, socket)}
    if settings.base_url:
        options["base_url"] = settings.base_url
    if settings.provider == "vertex":
        return {
            "vertexai": True,
            "project": settings.project,
            "location": settings.location,
            "credentials": credentials or vertex_credentials(settings),
            "http_options": options,
        }
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise ConfigError("model.api_key: not set (env GEMINI_API_KEY)")
    return {"api_key": key, "http_options": options}


def make_client(
    settings: ModelSettings,
    *,
    api_key: str | None = None,
    credentials: Credentials | None = None,
    keepalive: dict[str, Any] | None = None,
) -> genai.Client:
    """A genai client for the tenant's provider; build one per tenant and reuse it."""
    kwargs = client_kwargs(settings, api_key=api_key, credentials=credentials, socket=keepalive)
    kwargs["http_options"] = types.HttpOptions(**kwargs["http_options"])
    return genai.Client(**kwargs)


_REFRESH_LOCK: asyncio.Lock | None = None


async def fresh_credentials(credentials: Credentials | None) -> None:
    """Refresh an expiring token in a worker thread before google-genai needs it.

    google-genai refreshes an invalid token inside ``live.connect`` with a blocking HTTP call
    on the event loop, which would stall every call's audio for the round trip. Refreshed
    here first, the SDK finds a valid token and only reads it.
    """
    global _REFRESH_LOCK
    if credentials is None or credentials.valid:
        return
    if _REFRESH_LOCK is None:
        _REFRESH_LOCK = asyncio.Lock()
    async with _REFRESH_LOCK:
        if not credentials.valid:
            await asyncio.to_thread(credentials.refresh, Request())


# ── Setup pieces ────────────────────────────────────────────────────────────────────────────


def speech_config(settings: ModelSettings) -> types.SpeechConfig | None:
    if not (settings.voice or settings.language):
        return None
    voice = (
        types.VoiceConfig(
            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=settings.voice)
        )
        if settings.voice
        else None
    )
    return types.SpeechConfig(voice_config=voice, language_code=settings.language)


def compression_config(settings: ModelSettings) -> types.ContextWindowCompressionConfig | None:
    """Sliding-window compression (lifts the 15-minute audio session cap), if enabled."""
    if not settings.context_compression:
        return None
    return types.ContextWindowCompressionConfig(
        trigger_tokens=settings.compression_trigger_tokens,
        sliding_window=types.SlidingWindow(target_tokens=settings.compression_target_tokens),
    )


def resumption_config(
    settings: ModelSettings, caps: Capabilities, handle: str | None = None
) -> types.SessionResumptionConfig | None:
    """Resumption, transparent where the provider offers it (Vertex)."""
    if not settings.session_resumption:
        return None
    return types.SessionResumptionConfig(
        handle=handle, transparent=True if caps.transparent_resumption else None
    )


def activity_config(settings: ModelSettings) -> types.RealtimeInputConfig | None:
    """The server's VAD knobs when the tenant set any (``None`` keeps every server default)."""
    knobs: dict[str, Any] = {}
    if settings.start_of_speech_sensitivity:
        name = f"START_SENSITIVITY_{settings.start_of_speech_sensitivity.upper()}"
        knobs["start_of_speech_sensitivity"] = types.StartSensitivity(name)
    if settings.end_of_speech_sensitivity:
        name = f"END_SENSITIVITY_{settings.end_of_speech_sensitivity.upper()}"
        knobs["end_of_speech_sensitivity"] = types.EndSensitivity(name)
    if settings.prefix_padding_ms is not None:
        knobs["prefix_padding_ms"] = settings.prefix_padding_ms
    if settings.silence_duration_ms is not None:
        knobs["silence_duration_ms"] = settings.silence_duration_ms
    if not knobs:
        return None
    return types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=False, **knobs),
        activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
    )


def optional_setup(settings: ModelSettings, caps: Capabilities) -> dict[str, Any]:
    """``LiveConnectConfig`` fields only some models accept, sent only where they are.

    Configuration validation (:func:`callbridge.bridge.models.setup_problems`) has already refused a
    setting the model rejects; here a model that keeps proactive audio always on gets no
    ``proactivity`` at all, and nothing is sent that the tenant did not ask for.
    """
    extra: dict[str, Any] = {}
    if settings.proactive_audio is not None and caps.proactive_audio == "optional":
        extra["proactivity"] = types.ProactivityConfig(proactive_audio=settings.proactive_audio)
    if settings.affective_dialog and caps.affective_dialog:
        extra["enable_affective_dialog"] = True
    return extra


# ── Errors ──────────────────────────────────────────────────────────────────────────────────


def close_code(exc: BaseException) -> int | None:
    """The WebSocket close code behind a google-genai or websockets error, if any."""
    if isinstance(exc, errors.APIError):
        return int(exc.code) if exc.code is not None else None
    if isinstance(exc, websockets.ConnectionClosed):
        return exc.rcvd.code if exc.rcvd else 1006
    return None


def unavailable(exc: BaseException, model: str) -> ModelUnavailable:
    """Vendor exceptions -> ours, with the close code when there is one."""
    if isinstance(exc, errors.APIError):
        code = close_code(exc)
        return ModelUnavailable(
            f"{model}: Live connection closed with {code}: {exc.message or exc}", close_code=code
        )
    if isinstance(exc, websockets.ConnectionClosed):
        code = close_code(exc)
        return ModelUnavailable(f"{model}: Live connection closed with {code}", close_code=code)
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        return ModelUnavailable(f"{model}: connection refused with HTTP {status}")
    if isinstance(exc, OSError | websockets.WebSocketException):
        return ModelUnavailable(f"{model}: cannot connect: {exc}")
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return ModelUnavailable(f"{model}: Google Cloud credentials failed: {exc}")
    return ModelUnavailable(f"{model}: {type(exc).__name__}: {exc}")
