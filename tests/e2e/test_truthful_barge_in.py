"""Truthful barge-in: after the caller cuts in, the model is told what the caller heard.

gemini-3.8-live accepts content with explicit roles all session: the bridge sends the truncated
reply as the model's own turn (``clientContent``, role ``model``, no ``turnComplete``). Other
families get a short user-role note when the tenant opts in. The record keeps both texts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from callbridge.emulators.voices import load_phrase
from tests.e2e.scenarios import agent, caller_pcm

FULL = load_phrase("agent_answer_long").text


async def _barge_in(
    model: str, truthful: str = "auto", backend: dict[str, str] | None = None
) -> tuple[Any, Any]:
    script = Script(
        turns=[
            Turn([agent("agent_answer_long")], input_transcript="When does it arrive?"),
            Turn([agent("agent_transfer")], input_transcript="I need a person."),
        ]
    )
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_pcm("caller_question", 16000)),
            WaitForAgentAudio(min_s=2.0, timeout_s=15),  # about a third of the answer
            Say(caller_pcm("caller_bargein", 16000)),
            WaitForAgentAudio(min_s=0.5, timeout_s=15),
            Pause(0.3),
            HangUp(),
        ]
    )
    section = {"model": model, "greeting_prompt": None, "truthful_barge_in": truthful}
    overrides = {"model": section | (backend or {})}
    records: list[Any] = []

    class Keep:
        def on_entry(self, record: Any, entry: Any) -> None:
            if record not in records:
                records.append(record)

    async with LocalStack(script, overrides=overrides, record_listeners=[Keep()]) as stack:
        call = stack.place_call(caller)
        await call.ended(timeout=60)
        for _ in range(100):
            if records and records[0].ended_at is not None:
                break
            await asyncio.sleep(0.05)
    return stack.gemini.sessions[0], records[0]


def _interrupted_line(record: Any) -> dict[str, Any]:
    [line] = [e.data for e in record.events("transcript") if "heard" in e.data]
    return line


@pytest.mark.parametrize("backend", ["gemini", "adk"])
async def test_the_model_is_told_only_what_the_caller_heard(backend: str, tmp_path: Path) -> None:
    adk = {
        "backend": "adk",
        "adk_agent": "tests.e2e.adk_agent:root_agent",  # names no model: the tenant's
        "adk_session_db": f"sqlite+aiosqlite:///{tmp_path}/adk.sqlite",
    }
    session, record = await _barge_in("gemini-3.8-live", backend=adk if backend == "adk" else None)
    line = _interrupted_line(record)
    heard, generated = line["heard"], line["generated"]
    assert generated == FULL, "the whole answer had been generated (4x burst)"
    assert heard and FULL.startswith(heard) and len(heard) < len(FULL) * 0.7
    # The model received the truncated reply as its own turn, not the full answer.
    assert session.client_turns == [("model", heard + "...", False)]
    assert FULL not in "".join(text for _, text, _ in session.client_turns)
    [note] = [e.data for e in record.events("timeline") if e.data["event"] == "barge_in_heard"]
    assert 2.0 <= note["heard_s"] < note["generated_s"], note
    assert line["text"] == heard + " [interrupted]"
    assert record.outcome == "caller_hangup"


async def test_other_families_get_a_note_only_when_the_tenant_opts_in() -> None:
    model = "gemini-2.5-flash-native-audio-preview-12-2025"
    session, record = await _barge_in(model, truthful="on")
    heard = _interrupted_line(record)["heard"]
    [(role, text, complete)] = session.client_turns
    assert (role, complete) == ("user", False)
    assert f'They heard only: "{heard}"' in text
    quiet, _ = await _barge_in(model)  # auto: 2.5 does not take role content mid-session
    assert quiet.client_turns == []
