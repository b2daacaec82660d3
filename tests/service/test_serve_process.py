"""``callbridge serve`` as real processes against the two emulators running in the test.

Each process gets its secrets from the environment and everything else from a TOML file, as
in production, and logs JSON (stderr is a pipe); the test reads its port from the
``service_started`` line. Signals are sent to the process the test started, by its pid.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import (
    CallEndedError,
    CallerScript,
    EmulatedCall,
    HangUp,
    Pause,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from tests.e2e.scenarios import agent
from tests.kit import eventually
from tests.service.helpers import (
    ADMIN_TOKEN,
    API_KEY,
    CONNECTOR,
    ServeProcess,
    poll_until,
    secrets_env,
    sections,
    serve_processes,
    toml_text,
    wait_ready,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def serve_process(
    tmp_path: Path,
    name: str,
    telco: TelcoflowEmulator,
    gemini: GeminiLiveEmulator,
    **limits: float,
) -> ServeProcess:
    path = tmp_path / f"{name}.toml"
    path.write_text(toml_text(sections(gemini, limits=limits, tenant=name)), encoding="utf-8")
    return ServeProcess(path, secrets_env(telco))


async def live_call_ids(proc: ServeProcess) -> set[str]:
    async with proc.admin_client() as admin:
        body = (await admin.get("/calls", headers=ADMIN)).json()
    return {str(c["call_id"]) for c in body["calls"]}


async def test_sigterm_drains_live_calls_then_hangs_up_the_rest_and_exits_0(
    tmp_path: Path,
) -> None:
    grace = 3.0
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
    ):
        proc = serve_process(tmp_path, "drain", telco, gemini, drain_grace_s=grace)
        async with serve_processes(proc):
            async with await proc.wait_started() as http:
                await wait_ready(http)
                stays = telco.place_call(CallerScript([Pause(120)]))
                leaves = telco.place_call(
                    CallerScript([WaitForAgentAudio(0.3, timeout_s=20), Pause(1.0), HangUp()])
                )
                wanted = {stays.call_id, leaves.call_id}
                await poll_until(lambda: live_call_ids(proc), lambda ids: ids == wanted)

                proc.signal(signal.SIGTERM)
                sigterm_at = time.monotonic()
                # Unready at once (the first answer after the signal is handled), still alive.
                ready = await poll_until(
                    lambda: http.get("/readyz"), lambda r: r.status_code == 503, timeout=5
                )
                assert ready.json()["reason"] == "draining"
                assert (await http.get("/healthz")).status_code == 200
                # A call arriving now is left for another replica.
                late = telco.place_call(CallerScript([Pause(30)]))

                status = await proc.wait(timeout=grace + 30)
            assert status == 0
            left = await leaves.ended(timeout=10)
            hung_up = await stays.ended(timeout=10)
    assert left.end_reason == "caller_hangup"  # finished by itself during the drain
    assert hung_up.end_reason == "agent_disconnect"  # hung up when the grace ran out
    assert hung_up.ended_at is not None
    assert hung_up.ended_at - sigterm_at >= grace - 0.5
    assert late.notifies_sent >= 1  # offered to the draining process...
    assert late.record.answered_at is None  # ...which did not take it
    [over] = proc.events("drain_grace_over")
    assert over["hanging_up"] == 1
    # JSON logs (stderr is not a terminal), every line bound to the tenant.
    assert proc.events("service_stopped") and proc.events("call_ended")
    assert {line.get("tenant") for line in proc.lines} == {"drain"}


async def test_refused_telcoflow_credentials_stop_serve_with_one_clear_line(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator() as gemini,
    ):
        proc = serve_process(tmp_path, "badkey", telco, gemini)
        proc.env["TELCOFLOW_API_KEY"] = "not-the-key"
        async with serve_processes(proc):
            status = await proc.wait(timeout=60)
    assert status == 1
    [failed] = proc.events("service_failed")
    assert "TELCOFLOW_API_KEY" in failed["error"]
    assert not any("Traceback" in line for line in proc.raw)


async def test_second_sigint_exits_at_once(tmp_path: Path) -> None:
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
    ):
        proc = serve_process(tmp_path, "sigint", telco, gemini, drain_grace_s=600)
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http)
            call = telco.place_call(CallerScript([Pause(120)]))
            await poll_until(lambda: live_call_ids(proc), lambda ids: ids == {call.call_id})
            proc.signal(signal.SIGINT)
            await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
            proc.signal(signal.SIGINT)
            # Far sooner than the 600 s grace: the second Ctrl-C does not wait.
            status = await proc.wait(timeout=30)
    assert status == 130
    assert proc.events("forced_exit")


async def test_two_processes_share_one_connector_each_call_claimed_once(
    tmp_path: Path,
) -> None:
    """Twenty calls held open at once against two replicas capped at twelve each.

    No call ends until every call is answered, so capacity, not speed, decides the split:
    whichever replica is faster fills up and the other must take the rest (a slow replica
    still gets them through the platform's re-offers). The test hangs the calls up itself.
    """
    per_process, total = 12, 20
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
    ):
        procs = [
            serve_process(tmp_path, name, telco, gemini, max_concurrent_calls=per_process)
            for name in ("replica-1", "replica-2")
        ]
        async with serve_processes(*procs):
            clients = [await p.wait_started() for p in procs]
            try:
                for http in clients:
                    await wait_ready(http)
                await eventually(lambda: len(telco.sm_connection_ids) == 2, what="both SM-WS")
                calls = [
                    telco.place_call(CallerScript(), caller=f"+1555000{i:04d}")
                    for i in range(total)
                ]
                async with asyncio.TaskGroup() as watching:
                    watch = watching.create_task(_watch_owners(calls))
                    all_answered = await _all_answered(calls, timeout=60)
                    await asyncio.gather(*(call.hang_up() for call in calls))
                owners, peak = watch.result()
                records = [await c.ended(timeout=30) for c in calls]

                async def scrape() -> list[int]:
                    return [_calls_total((await http.get("/metrics")).text) for http in clients]

                # The bridge finishes its side a moment after the emulator sees the hang-up.
                finished = await poll_until(scrape, lambda counts: sum(counts) == len(owners))
                for proc in procs:
                    proc.signal(signal.SIGTERM)
                statuses = [await proc.wait(timeout=30) for proc in procs]
            finally:
                for http in clients:
                    await http.aclose()
    # What each replica did with the offers, for any failure below.
    claims = {p.config_file.stem: p.events("telcoflow_stopped") for p in procs}
    assert all_answered, f"not every call was answered while all were held open: {claims}"
    errors = [line for p in procs for line in p.lines if line.get("level") == "error"]
    assert not errors, errors  # e.g. a claim that raised instead of losing the race cleanly
    assert statuses == [0, 0]
    assert all(r.end_reason == "caller_hangup" for r in records)
    # Exactly once: one owner per call, one answer per call, never re-offered to the other.
    assert all(len(r.commands_named("call.answer")) == 1 for r in records)
    assert len(owners) == total
    per_owner = Counter(owners.values())
    assert sum(per_owner.values()) == total
    # Both replicas served, neither above its cap: 20 held at once cannot fit in one.
    assert len(per_owner) == 2 and max(per_owner.values()) <= per_process, claims
    # Never above the cap at any moment (the watch samples every 20 ms).
    assert max(peak.values()) <= per_process
    assert sorted(finished) == sorted(per_owner.values())


async def _all_answered(calls: list[EmulatedCall], timeout: float) -> bool:
    """True once every call is answered; False if one ends first or time runs out."""
    try:
        await asyncio.gather(*(call.answered(timeout=timeout) for call in calls))
    except (TimeoutError, CallEndedError):
        return False
    return True


async def _watch_owners(
    calls: list[EmulatedCall],
) -> tuple[dict[str, str], Counter[str]]:
    """Until every call ended: who claimed each call, and each SM-WS's most calls at once."""
    owners: dict[str, str] = {}
    peak: Counter[str] = Counter()
    async with asyncio.timeout(90):
        while not all(c.is_ended for c in calls):
            now: Counter[str] = Counter()
            for call in calls:
                owner = call.claimed_by
                if owner is None or call.is_ended:
                    continue
                assert owners.setdefault(call.call_id, owner) == owner, "claimed twice"
                now[owner] += 1
            for owner, count in now.items():
                peak[owner] = max(peak[owner], count)
            await asyncio.sleep(0.02)
    return owners, peak


def _calls_total(text: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("callbridge_calls_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
