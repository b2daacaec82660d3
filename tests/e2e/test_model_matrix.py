"""The same call on every model family, provider and back end: {2.5, 3.1, 3.8} x {Developer
API, Vertex AI} x {raw Live, ADK}, through the unmodified telcoflow, google-genai, google-adk
and google-auth clients (Vertex: a service-account key whose token endpoint is the emulator's).

One call per combination covers the five things a phone agent does: a greeting; an answer
during which the model starts a 3 s tool while caller audio keeps flowing; a barge-in during
that tool; a transfer (nobody answers: the result is spoken at once); ``end_call`` after a
farewell. Combinations the real service does not offer are skipped, with the reason taken
from the model table (:mod:`callbridge.bridge.models`).

Where tools are asynchronous (2.5, 3.8) the call must not hold caller audio during the tool:
the largest gap between caller frames reaching the model while it runs is under 100 ms, and
the barge-in clears the line within a few milliseconds of ``interrupted``, on ADK too (its
receive loop would otherwise hold ``interrupted`` back until the tool returned). 3.1 has no
asynchronous tools: there the bridge holds caller audio during the call, by design.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from callbridge.bridge.models import EXAMPLE_MODELS, capabilities
from callbridge.emulators.gemini_live import CallTool, Script, Speak, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    Pause,
    Say,
    WaitForAgentAudio,
)
from callbridge.emulators.voices import load_phrase
from tests.e2e.adk_agent import SLOW_LOOKUP_S
from tests.e2e.scenarios import caller_pcm

MAX_CALLER_GAP_S = 0.100
"""Largest gap in caller audio at the model while an asynchronous tool runs."""
MAX_CLEAR_S = 0.100
"""``interrupted`` sent by the model -> ``agent.interrupt`` received by the platform. Measured
at about 1 ms on an idle machine (README); the ADK trap this guards against costs seconds."""


def cut(name: str, seconds: float, text: str) -> Speak:
    """The first ``seconds`` of an agent phrase: real speech, short audio."""
    pcm = load_phrase(name).pcm
    return Speak(pcm=pcm[: int(seconds * 24000) * 2], text=text)


def script() -> Script:
    transfer = {"reason": "wants a person", "summary": "Order question."}
    return Script(
        greeting=Turn([cut("agent_greeting", 1.2, "Hello, Acme here.")]),
        turns=[
            Turn(
                [
                    cut("agent_answer_long", 4.0, "Let me look that up for you, one moment."),
                    CallTool("slow_lookup", {"order_id": "A-1"}),
                ],
                input_transcript="Where is my order?",
            ),
            Turn(
                [
                    cut("agent_transfer", 0.8, "Connecting you."),
                    CallTool("transfer_to_human", transfer),
                    cut("agent_unanswered", 1.0, "Nobody is available."),
                    cut("agent_farewell", 1.0, "Goodbye."),
                    CallTool("end_call", {"reason": "done"}),
                ],
                input_transcript="Wait, put me through to a person.",
            ),
        ],
    )


def caller() -> CallerScript:
    return CallerScript(
        [
            WaitForAgentAudio(min_s=0.6, timeout_s=20),
            Pause(1.0),
            Say(caller_pcm("caller_bye", 16000)),
            # The answer plays (4 s); the 3 s tool starts once it is sent. Barge in during both.
            WaitForAgentAudio(min_s=1.5, timeout_s=20),
            Say(caller_pcm("caller_bye", 16000)),
            Pause(30),
        ]
    )


def combos() -> list[Any]:
    params = []
    for family, provider, backend in itertools.product(
        ("2.5", "3.1", "3.8"), ("gemini_api", "vertex"), ("gemini", "adk")
    ):
        model = EXAMPLE_MODELS[family][provider]
        caps = capabilities(model, provider)
        marks = (
            [pytest.mark.skip(reason=f"{provider} does not offer {model}")]
            if not caps.offered
            else []
        )
        name = f"{family}-{'vertex' if provider == 'vertex' else 'devapi'}-{backend}"
        params.append(pytest.param(model, provider, backend, id=name, marks=marks))
    return params


@pytest.mark.parametrize(("model", "provider", "backend"), combos())
async def test_the_same_call_on_every_model_provider_and_back_end(
    model: str, provider: str, backend: str, tmp_path: Path
) -> None:
    section: dict[str, Any] = {
        "model": model,
        "provider": provider,
        "backend": backend,
        "greeting_prompt": "Greet the caller.",
    }
    tools: dict[str, Any] = {"ring_time_s": 1}
    if backend == "adk":
        section["adk_agent"] = "tests.e2e.adk_agent:root_agent"
        section["adk_session_db"] = f"sqlite+aiosqlite:///{tmp_path}/adk.sqlite"
    else:
        tools["custom"] = {"slow_lookup": "tests.e2e.adk_agent:slow_lookup"}
    caps = capabilities(model, provider)  # type: ignore[arg-type]
    async with LocalStack(script(), overrides={"model": section, "tools": tools}) as stack:
        call = stack.place_call(caller(), connect_outcomes=[ConnectOutcome.unanswered()])
        record = await call.ended(timeout=90)
    sessions = stack.gemini.sessions
    log = sessions[0]

    # The provider and the model family the emulator saw.
    assert log.provider == provider and log.profile == caps.family
    if provider == "vertex":
        assert log.path.endswith("LlmBidiService/BidiGenerateContent")
        assert log.model.startswith("projects/callbridge-local/locations/us-central1/")
        assert stack.gemini.oauth.tokens_issued == 1 and not stack.gemini.vertex_refusals
    setup = log.setup
    assert "enable_affective_dialog" not in setup["generation_config"]
    assert "thinking_config" not in setup["generation_config"]
    if caps.proactive_audio != "optional":
        assert "proactivity" not in setup

    # Greeting, transfer (unanswered), farewell, end_call.
    assert record.end_reason == "agent_disconnect"
    connects = record.commands_named("call.connect")
    assert [c.error_code for c in connects] == ["CALL_UNANSWERED"]
    responses = {r["name"]: r for s in sessions for r in s.tool_responses}
    assert responses["transfer_to_human"]["response"]["status"] == "unanswered"
    assert responses["end_call"]["response"] == {"status": "ending_call"}

    declared = {
        d["name"]: d.get("behavior") for t in setup["tools"] for d in t["function_declarations"]
    }
    if not caps.async_tools:
        # Declared BLOCKING, or left undeclared (ADK keeps a plain tool as it is): on 3.1
        # both are BLOCKING (the table: no asynchronous calls, BLOCKING by default).
        assert declared["slow_lookup"] in ("BLOCKING", None) and not caps.async_tools_default
        assert "scheduling" not in responses["transfer_to_human"]
        return  # 3.1: the bridge holds caller audio while a BLOCKING call is pending

    # Asynchronous tools: declared so, results scheduled per outcome.
    assert declared["slow_lookup"] == declared["transfer_to_human"] == "NON_BLOCKING"
    assert responses["transfer_to_human"]["scheduling"] == "INTERRUPT"
    assert responses["end_call"]["scheduling"] == "SILENT"

    # Caller audio kept reaching the model while the 3 s tool ran...
    call_sent = next(t for t, kind in log.sent if kind == "toolCall")
    window = call_sent + SLOW_LOOKUP_S
    during = [t for s in sessions for t, _ in s.audio_in if call_sent <= t <= window]
    gap = max(b - a for a, b in itertools.pairwise([call_sent, *during]))
    # ...and the barge-in during it cleared the line at once.
    assert len(log.interrupted_at) == 1 and len(record.interrupts) == 1
    interrupted = log.interrupted_at[0]
    clear = record.interrupts[0] - interrupted
    measured = f"caller-audio gap {gap * 1000:.0f} ms, line cleared {clear * 1000:.1f} ms"
    assert len(during) > SLOW_LOOKUP_S / 0.05, f"caller audio flowed during the tool; {measured}"
    assert call_sent < interrupted < window, f"barge-in during the tool; {measured}"
    assert gap < MAX_CALLER_GAP_S and 0 <= clear < MAX_CLEAR_S, measured


async def test_the_vertex_tenant_example_serves_a_call(tmp_path: Path) -> None:
    """examples/tenants/vertex.toml, as shipped, on the emulators (endpoint and key file are
    the only additions: a deployment has the real ones)."""
    import tomllib

    from callbridge.service.config_cli import main as check_config

    example = Path(__file__).parents[2] / "examples" / "tenants" / "vertex.toml"
    assert check_config(["--without-secrets", str(example)]) == 0
    model = tomllib.loads(example.read_text())["model"]
    async with LocalStack(
        script(), overrides={"model": model, "tools": {"ring_time_s": 1}}
    ) as stack:
        assert stack.config is not None and stack.config.model.provider == "vertex"
        call = stack.place_call(caller(), connect_outcomes=[ConnectOutcome.unanswered()])
        record = await call.ended(timeout=90)
    log = stack.gemini.sessions[0]
    assert log.provider == "vertex" and log.profile == "3.8"
    where = f"projects/{model['project']}/locations/{model['location']}"
    assert log.model == f"{where}/publishers/google/models/gemini-3.8-live"
    assert log.headers["x-goog-user-project"] == model["project"]
    assert record.end_reason == "agent_disconnect"
