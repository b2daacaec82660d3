"""The operator console in a real headless Chromium, against a running bridge and both emulators.

One operator's session end to end: log in, see a live call appear in the table, open it and
watch its transcript grow, inject a message, end the call, and find it in history with its
timeline. Screenshots of each page are written beside the test's files; with
``CALLBRIDGE_SCREENSHOTS=<dir>`` set they are also copied there (that is how the ones in
``docs/`` were made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from selenium.webdriver.common.by import By

from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import (
    CallerScript,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from tests.console.browser import Browser, find_browser
from tests.console.kit import BASE, console_service
from tests.e2e.scenarios import agent, caller_pcm
from tests.service.helpers import ADMIN_TOKEN, API_KEY, CONNECTOR, poll_until

CALLER = "+15550009876"


def conversation() -> Script:
    return Script(
        greeting=Turn([agent("agent_greeting")]),
        turns=[
            Turn(
                [agent("agent_answer_long")], input_transcript="Hello, I'd like to check my order."
            )
        ],
        fallback=Turn([agent("agent_farewell")]),
    )


def caller() -> CallerScript:
    return CallerScript(
        [
            WaitForAgentAudio(min_s=1.5, timeout_s=20),
            Pause(1.0),
            Say(caller_pcm("caller_greeting", 16000)),
            Pause(120),
        ]
    )


async def test_an_operator_watches_steers_and_ends_a_call_then_finds_it_in_history(
    tmp_path: Path,
) -> None:
    find_browser()  # skip before starting anything when there is no browser
    shots = tmp_path / "shots"
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=conversation(), burst_speed=1.0) as gemini,
        console_service(telco, gemini, tmp_path / "svc") as console,
        Browser(tmp_path / "profile") as b,
    ):
        # Log in: the console sends an unauthenticated browser to the login form.
        await b.get(f"{console.url}{BASE}/")
        await b.wait_for(lambda: b.d.current_url.endswith(f"{BASE}/login"), what="login form")
        await b.run(lambda: b.d.find_element(By.ID, "operator-name").send_keys("Grace Hopper"))
        await b.run(lambda: b.d.find_element(By.ID, "admin-token").send_keys(ADMIN_TOKEN))
        await b.run(lambda: b.d.find_element(By.ID, "login").click())
        await b.wait_for(lambda: b.d.find_elements(By.ID, "live-calls"), what="live calls page")
        cookies = await b.run(b.d.get_cookies)
        assert [(c["secure"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            (True, True, "Strict")
        ]
        assert await b.texts("#operator") == ["Grace Hopper"]
        assert await b.texts("#live-calls tbody tr") == []

        # A call arrives: the table shows it without a reload (server-sent events).
        call = telco.place_call(caller(), caller=CALLER)
        rows = await b.wait_for(
            lambda: b.d.find_elements(By.CSS_SELECTOR, "#live-calls tbody tr[data-call-id]"),
            what="the live call's row",
        )
        assert rows[0].get_attribute("data-call-id") == call.call_id
        row_text = await b.run(lambda: rows[0].text)
        assert "******9876" in row_text and CALLER not in row_text
        await b.wait_for(
            lambda: "gemini" in b.d.find_element(By.CSS_SELECTOR, "#live-calls tbody tr").text,
            what="the model in the row",
        )
        await b.wait_for(lambda: b.d.find_element(By.ID, "stream-status").text == "live")
        await b.screenshot(shots / "console-live-calls.png")

        # One call, live: the transcript grows as the agent and the caller speak.
        await b.run(lambda: b.d.find_element(By.CSS_SELECTOR, "#live-calls tbody a").click())
        await b.wait_for(lambda: b.d.find_elements(By.ID, "feed"), what="the call page")
        await b.wait_for(
            lambda: b.d.find_elements(By.CSS_SELECTOR, "#feed li.transcript.agent"),
            what="the greeting's transcript",
        )
        first = len(await b.texts("#feed li"))
        await b.wait_for(
            lambda: b.d.find_elements(By.CSS_SELECTOR, "#feed li.transcript.caller"),
            timeout=30,
            what="the caller's transcript",
        )
        assert len(await b.texts("#feed li")) > first
        assert any("model connected" in t for t in await b.texts("#feed li.model"))

        # Inject a message once the agent has answered; a refusal names its reason.
        await b.wait_for(
            lambda: len(b.d.find_elements(By.CSS_SELECTOR, "#feed li.transcript.agent")) >= 2,
            timeout=40,
            what="the agent's answer",
        )
        await b.run(
            lambda: b.d.find_element(By.ID, "inject-text").send_keys("Your parcel ships today.")
        )
        outcome = ""
        for _ in range(20):
            await b.run(lambda: b.d.find_element(By.ID, "inject").click())
            outcome = await b.wait_for(
                lambda: (t := b.d.find_element(By.ID, "action-result").text) != "…" and t,
                what="the inject result",
            )
            if outcome.startswith("Done"):
                break
            assert "INJECT_MESSAGE_DURING" in outcome, outcome  # shown as a speech conflict
            await b.wait_for(lambda: b.d.find_element(By.ID, "meter-agent").text == "silent")
        assert outcome.startswith("Done"), outcome
        await b.wait_for(
            lambda: [
                li
                for li in b.d.find_elements(By.CSS_SELECTOR, "#feed li.operator")
                if "Grace Hopper: inject → taken" in li.text
            ],
            what="the audited inject in the feed",
        )
        await b.screenshot(shots / "console-call.png")

        # End the call (after confirming), then follow it into history.
        await b.run(lambda: b.d.find_element(By.ID, "end").click())
        await b.run(lambda: b.d.switch_to.alert.accept())
        try:
            link = await b.wait_for(
                lambda: b.d.find_elements(By.ID, "history-link"), what="the call's end"
            )
        except AssertionError:
            state = await b.texts("#stream-status, #call-state, #action-result, #call-ended")
            logs = await b.run(lambda: b.d.get_log("browser"))  # type: ignore[no-untyped-call]
            raise AssertionError(f"the page never heard the end: {state} {logs}") from None
        assert "ended_by_operator" in await b.run(
            lambda: b.d.find_element(By.ID, "call-state").text
        )
        record = await call.ended(timeout=20)
        assert record.end_reason != "caller_hangup"
        await poll_until(  # the store's writer commits within ~200 ms of the end
            lambda: console.store.get_call(call.call_id),
            lambda c: c is not None and c.ended_at is not None,
            what="the stored record",
        )
        await b.run(lambda: link[0].click())
        marks = await b.wait_for(
            lambda: b.d.find_elements(By.CSS_SELECTOR, "#timeline svg rect.mark"),
            what="the timeline",
        )
        assert len(marks) >= 5
        kinds = {
            cls
            for m in await b.run(lambda: [m.get_attribute("class") for m in marks])
            for cls in (m or "").split()
        }
        assert {"agent", "caller", "operator", "commands"} <= kinds
        assert await b.texts("#outcome") == ["ended_by_operator"]
        feed = "\n".join(await b.texts("#feed li"))
        assert "Your parcel ships today." in feed and "Grace Hopper" in feed
        await b.screenshot(shots / "console-history-call.png")

        # The history list, filtered by outcome, lists it.
        await b.get(f"{console.url}{BASE}/history?outcome=ended_by_operator")
        listed = await b.wait_for(
            lambda: b.d.find_elements(By.CSS_SELECTOR, "#history tbody tr[data-call-id]"),
            what="the history row",
        )
        assert [r.get_attribute("data-call-id") for r in listed] == [call.call_id]
        await b.screenshot(shots / "console-history.png")

    target = os.environ.get("CALLBRIDGE_SCREENSHOTS")
    if target:
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)
