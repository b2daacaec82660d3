"""The Gemini emulator's 3.8 rules and its Vertex AI endpoint, through the unmodified clients.

3.8: setup fields it rejects, NON_BLOCKING by default, result scheduling, clientContent with
roles mid-session. Vertex: the LlmBidiService path, bearer tokens obtained by google-auth's
real service-account JWT exchange against the emulator's token endpoint (and refreshed),
``x-goog-user-project``, resource model names, transparent resumption, scheduling ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from google import genai
from google.genai import errors, types
from google.genai.live import AsyncSession
from google.oauth2 import service_account

from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Turn
from tests.emulators.test_gemini_live_emulator import (
    DECLARATION,
    SILENCE_1S,
    Inbox,
    _no_google_env,
    caller,
    client_for,
    is_turn_complete,
    live,
    live_config,
    send_audio,
    short_speech,
)

__all__ = ["_no_google_env"]  # the autouse fixture, re-exported so it applies here too

MODEL_38 = "gemini-3.8-live"
MODEL_31 = "gemini-3.1-flash-live-preview"
PROJECT = "acme-contact-centre"
LOCATION = "europe-west4"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


# ---------------------------------------------------------------------------- 3.8 setup


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"enable_affective_dialog": True}, "enableAffectiveDialog"),
        ({"proactivity": types.ProactivityConfig(proactive_audio=False)}, "proactive_audio"),
        ({"thinking_config": types.ThinkingConfig(thinking_budget=128)}, "thinking_config"),
    ],
    ids=["affective-dialog", "proactive-audio-off", "thinking-config"],
)
async def test_38_refuses_setup_fields_it_no_longer_accepts(
    extra: dict[str, Any], reason: str
) -> None:
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(errors.APIError) as refused:
            async with client_for(emu).aio.live.connect(
                model=MODEL_38, config=live_config(**extra)
            ):
                pass
    assert refused.value.code == 1007
    assert reason in str(refused.value)
    assert emu.sessions[0].close_code == 1007


async def test_38_accepts_proactive_audio_on_and_reports_its_family() -> None:
    on = types.ProactivityConfig(proactive_audio=True)
    async with GeminiLiveEmulator() as emu, live(emu, MODEL_38, proactivity=on):
        pass
    log = emu.sessions[0]
    assert log.profile == "3.8" and log.provider == "gemini_api"


@pytest.mark.parametrize(("model", "closed"), [(MODEL_38, None), (MODEL_31, 1008)])
async def test_a_declaration_without_behavior_is_non_blocking_on_38_only(
    model: str, closed: int | None
) -> None:
    """3.8 makes an undeclared tool asynchronous: caller audio may flow while it runs."""
    script = Script([Turn([CallTool("escalate_to_human", {"reason": "x"})])])
    tools = [types.Tool(function_declarations=[DECLARATION])]  # no behavior
    async with (
        GeminiLiveEmulator(script=script) as emu,
        live(emu, model, tools=tools) as (session, inbox),
    ):
        await session.send_realtime_input(text="get me a person")
        await inbox.wait_for(lambda m: m.tool_call is not None)
        await asyncio.sleep(0.35)  # past the grace for audio already in flight
        with contextlib.suppress(websockets.ConnectionClosed):  # 3.1 closes mid-send
            await send_audio(session, bytes(6400))
        await asyncio.sleep(0.3)
        assert emu.sessions[0].close_code == closed


async def _answer_with(
    emu: GeminiLiveEmulator, model: str, scheduling: types.FunctionResponseScheduling
) -> list[str]:
    decl = DECLARATION.model_copy(update={"behavior": types.Behavior.NON_BLOCKING})
    after = short_speech(0.3, "Nobody answered, sorry.")
    emu.set_script(Script([Turn([CallTool("escalate_to_human", {"reason": "x"}), after])]))
    async with live(emu, model, tools=[types.Tool(function_declarations=[decl])]) as (
        session,
        inbox,
    ):
        await session.send_realtime_input(text="get me a person")
        call = (await inbox.wait_for(lambda m: m.tool_call is not None)).tool_call
        assert call is not None and call.function_calls
        fc = call.function_calls[0]
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(
                    id=fc.id, name=fc.name, response={"status": "x"}, scheduling=scheduling
                )
            ]
        )
        await inbox.wait_for(is_turn_complete)
        return inbox.said()


async def test_38_silent_result_is_taken_without_a_word_when_idle_is_spoken() -> None:
    async with GeminiLiveEmulator() as emu:
        silent = await _answer_with(emu, MODEL_38, types.FunctionResponseScheduling.SILENT)
        idle = await _answer_with(emu, MODEL_38, types.FunctionResponseScheduling.WHEN_IDLE)
        now = await _answer_with(emu, MODEL_38, types.FunctionResponseScheduling.INTERRUPT)
    assert silent == []
    assert "".join(idle).strip() == "Nobody answered, sorry."
    assert "".join(now).strip() == "Nobody answered, sorry."
    assert [r["scheduling"] for s in emu.sessions for r in s.tool_responses] == [
        "SILENT",
        "WHEN_IDLE",
        "INTERRUPT",
    ]


async def test_38_client_content_with_roles_mid_session() -> None:
    """Role turns are accepted at any time; only ``turnComplete`` makes the model answer."""
    answer = short_speech(0.4, "Here is the answer.")
    script = Script([Turn([answer]), Turn([answer])])
    async with GeminiLiveEmulator(script=script) as emu, live(emu, MODEL_38) as (session, inbox):
        await send_audio(session, caller("caller_greeting") + SILENCE_1S)
        await inbox.wait_for(is_turn_complete)
        context = [
            types.Content(role="model", parts=[types.Part(text="(I was cut off after 'Your'.)")]),
            types.Content(role="user", parts=[types.Part(text="The caller said: wait.")]),
        ]
        await session.send_client_content(turns=context, turn_complete=False)
        await asyncio.sleep(0.4)
        assert inbox.count(is_turn_complete) == 1, "without turnComplete the server waits"
        await session.send_client_content(
            turns=[types.Content(role="user", parts=[types.Part(text="Go on.")])],
            turn_complete=True,
        )
        await inbox.wait_count(is_turn_complete, 2)
    log = emu.sessions[0]
    assert log.client_turns == [
        ("model", "(I was cut off after 'Your'.)", False),
        ("user", "The caller said: wait.", False),
        ("user", "Go on.", True),
    ]
    assert log.close_code in (None, 1000)


# ---------------------------------------------------------------------------- Vertex


def vertex_client(
    emu: GeminiLiveEmulator, credentials: Any, project: str = PROJECT
) -> genai.Client:
    """What callbridge builds for Vertex: explicit project and location, a credentials object."""
    return genai.Client(
        vertexai=True,
        project=project,
        location=LOCATION,
        credentials=credentials,
        http_options=types.HttpOptions(
            base_url=emu.base_url, async_client_args={"ssl": emu.client_ssl_context()}
        ),
    )


def key_credentials(emu: GeminiLiveEmulator, tmp_path: Path) -> service_account.Credentials:
    key = emu.oauth.service_account_key(tmp_path / "sa.json", PROJECT)
    creds = service_account.Credentials.from_service_account_file(str(key), scopes=[SCOPE])
    return creds.with_quota_project(PROJECT)


@asynccontextmanager
async def vertex_live(
    client: genai.Client, model: str = MODEL_38, **config: Any
) -> AsyncIterator[tuple[AsyncSession, Inbox]]:
    async with client.aio.live.connect(model=model, config=live_config(**config)) as session:
        inbox = Inbox(session)
        pump = asyncio.create_task(inbox.pump())
        try:
            yield session, inbox
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def test_vertex_service_account_exchange_runs_end_to_end(tmp_path: Path) -> None:
    """google-auth signs a JWT grant, the emulator verifies it and issues a bearer token;
    one credentials object serves several connections with one token."""
    answer = short_speech(0.4, "Vertex here.")
    async with GeminiLiveEmulator(script=Script([Turn([answer])] * 3)) as emu:
        client = vertex_client(emu, key_credentials(emu, tmp_path))
        for _ in range(3):
            async with vertex_live(client) as (session, inbox):
                await session.send_realtime_input(text="hello")
                await inbox.wait_for(is_turn_complete)
                usage = await inbox.wait_for(lambda m: m.usage_metadata is not None)
    assert emu.oauth.tokens_issued == 1, "the cached token is reused, not fetched per call"
    assert emu.oauth.requests[0]["scope"] == SCOPE
    log = emu.sessions[0]
    assert log.path == "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    assert log.provider == "vertex" and log.profile == "3.8"
    assert (
        log.model == f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL_38}"
    )
    assert log.headers["authorization"].startswith("<redacted")
    assert log.headers["x-goog-user-project"] == PROJECT
    # Vertex's usage names (candidatesTokenCount) reach the SDK's response count.
    assert usage.usage_metadata is not None and usage.usage_metadata.response_token_count


async def test_vertex_token_is_refreshed_when_it_expires(tmp_path: Path) -> None:
    # google-auth treats a token as expired 225 s early: a 226 s token is good for ~1 s.
    async with GeminiLiveEmulator(token_ttl_s=226) as emu:
        creds = key_credentials(emu, tmp_path)
        client = vertex_client(emu, creds)
        async with vertex_live(client):
            pass
        first = creds.token
        await asyncio.sleep(1.3)
        async with vertex_live(client):
            pass
    assert emu.oauth.tokens_issued == 2 and creds.token != first
    assert len(emu.sessions) == 2 and not emu.vertex_refusals


async def test_vertex_refuses_a_token_it_did_not_issue() -> None:
    from google.oauth2.credentials import Credentials

    forged = Credentials(token="ya29.not-from-google")
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with vertex_live(vertex_client(emu, forged)):
                pass
    assert refused.value.response.status_code == 401
    assert emu.vertex_refusals == ["unknown or expired bearer token"] and not emu.sessions


async def test_vertex_refuses_a_quota_project_other_than_the_models(tmp_path: Path) -> None:
    async with GeminiLiveEmulator() as emu:
        creds = key_credentials(emu, tmp_path).with_quota_project("someone-else")
        with pytest.raises(errors.APIError) as refused:
            async with vertex_live(vertex_client(emu, creds)):
                pass
    assert refused.value.code == 1008 and "someone-else" in str(refused.value)


async def test_vertex_offers_transparent_resumption_the_sdk_refuses_it_elsewhere(
    tmp_path: Path,
) -> None:
    transparent = types.SessionResumptionConfig(transparent=True)
    async with GeminiLiveEmulator(script=Script([Turn([short_speech(0.3, "Hi.")])])) as emu:
        client = vertex_client(emu, key_credentials(emu, tmp_path))
        async with vertex_live(client, session_resumption=transparent) as (session, inbox):
            await send_audio(session, bytes(3200))
            await session.send_realtime_input(text="hello")
            await inbox.wait_for(is_turn_complete)
            await inbox.wait_count(
                lambda m: (
                    m.session_resumption_update is not None
                    and m.session_resumption_update.resumable
                ),
                2,
            )
            updates = [
                m.session_resumption_update
                for m in inbox.messages
                if m.session_resumption_update and m.session_resumption_update.resumable
            ]
        # google-genai refuses it before dialing the Developer API (the emulator would 1007).
        with pytest.raises(ValueError, match="transparent"):
            async with live(emu, MODEL_38, session_resumption=transparent):
                pass
    assert updates[-1] is not None and updates[-1].last_consumed_client_message_index == 6


async def test_vertex_ignores_result_scheduling(tmp_path: Path) -> None:
    """A SILENT result still gets spoken on Vertex: it ignores the field (LiveKit warns)."""
    decl = DECLARATION.model_copy(update={"behavior": types.Behavior.NON_BLOCKING})
    after = short_speech(0.3, "Spoken anyway.")
    script = Script([Turn([CallTool("escalate_to_human", {"reason": "x"}), after])])
    async with GeminiLiveEmulator(script=script) as emu:
        client = vertex_client(emu, key_credentials(emu, tmp_path))
        tools = [types.Tool(function_declarations=[decl])]
        async with vertex_live(client, tools=tools) as (session, inbox):
            await session.send_realtime_input(text="get me a person")
            call = (await inbox.wait_for(lambda m: m.tool_call is not None)).tool_call
            assert call is not None and call.function_calls
            fc = call.function_calls[0]
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=fc.id,
                        name=fc.name,
                        response={"status": "x"},
                        scheduling=types.FunctionResponseScheduling.SILENT,
                    )
                ]
            )
            await inbox.wait_for(is_turn_complete)
    assert "".join(inbox.said()).strip() == "Spoken anyway."


@pytest.mark.parametrize(
    ("model", "provider_name"),
    [
        ("gemini-2.5-flash-native-audio-preview-12-2025", "vertex"),
        ("gemini-live-2.5-flash-native-audio", "gemini_api"),
    ],
)
async def test_a_model_the_provider_does_not_offer_is_not_found(
    model: str, provider_name: str, tmp_path: Path
) -> None:
    async with GeminiLiveEmulator() as emu:
        with pytest.raises(errors.APIError) as refused:
            if provider_name == "vertex":
                async with vertex_live(vertex_client(emu, key_credentials(emu, tmp_path)), model):
                    pass
            else:
                async with live(emu, model):
                    pass
    # The reason ("<model> is not found for API version ...") is cut to a close frame's size.
    assert refused.value.code == 1008 and model in str(refused.value)
