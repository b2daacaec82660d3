"""``service.workers = 2``: one ``callbridge serve`` supervising two bridge processes.

Real processes against the two emulators: calls spread over both workers (each a competing
consumer on the connector), the supervisor's one ``/metrics`` sums them, its one admin API
lists every worker's calls and routes per-call actions to the owner, a worker killed with
SIGKILL is restarted while the other's calls go on, and SIGTERM drains both and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, EmulatedCall, Pause, TelcoflowEmulator
from callbridge.service.console.auth import COOKIE_NAME
from callbridge.service.metrics_merge import parse
from callbridge.service.store import RecordStore
from callbridge.service.supervisor import FORCED_EXIT_WAIT_S
from callbridge.service.worker_link import REPORT_EVERY_S
from tests.e2e.scenarios import agent
from tests.kit import eventually
from tests.outbound.kit import REMINDER, TO, person
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
GREETING = Script(greeting=Turn([agent("agent_greeting")]))


@contextlib.asynccontextmanager
async def platform_and_model(
    script: Script | None = None,
) -> AsyncIterator[tuple[TelcoflowEmulator, GeminiLiveEmulator]]:
    """Both emulators on 127.0.0.1, the model playing ``script`` (its default one if None)."""
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script) as gemini,
    ):
        yield telco, gemini


def workers_process(
    tmp_path: Path,
    telco: TelcoflowEmulator,
    gemini: GeminiLiveEmulator,
    outbound: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    **limits: float,
) -> tuple[ServeProcess, str]:
    data = sections(gemini, limits=limits, tenant="pool")
    if outbound is not None:
        data["outbound"] = outbound
    records = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
    data["service"] = {**data["service"], "workers": 2, "records_url": records, **(service or {})}
    path = tmp_path / "pool.toml"
    path.write_text(toml_text(data), encoding="utf-8")
    return ServeProcess(path, secrets_env(telco)), records


async def admin_calls(proc: ServeProcess) -> dict[str, Any]:
    async with proc.admin_client() as admin:
        response = await admin.get("/calls", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sample_sum(text: str, name: str) -> float:
    """Sum of one series over its labels, in a Prometheus exposition."""
    return sum(
        value
        for family in parse(text).values()
        for (sample, _), value in family.samples.items()
        if sample == name
    )


def per_worker_active(text: str) -> list[float]:
    family = parse(text)["callbridge_worker_active_calls"]
    return sorted(family.samples.values())


def worker_pids(proc: ServeProcess) -> dict[int, int]:
    """The latest pid of each worker, from the supervisor's ``worker_launched`` lines."""
    return {int(line["worker"]): int(line["pid"]) for line in proc.events("worker_launched")}


def alive(pid: int) -> bool:
    """Running (a zombie left to an init that does not reap counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def login(proc: ServeProcess) -> dict[str, str]:
    """A console session through the supervisor's admin listener (its cookie, as a header)."""
    async with proc.admin_client() as admin:
        answer = await admin.post("/console/login", data={"operator": "Ada", "token": ADMIN_TOKEN})
    assert answer.status_code == 303, answer.text
    return {"Cookie": f"{COOKIE_NAME}={answer.cookies[COOKIE_NAME]}"}


async def console_live_rows(proc: ServeProcess) -> list[dict[str, Any]]:
    """The first ``calls`` event of the console's live stream, through the supervisor."""
    session = await login(proc)
    async with (
        proc.admin_client() as admin,
        admin.stream("GET", "/console/stream", headers=session) as stream,
    ):
        assert stream.status_code == 200
        async with asyncio.timeout(15):
            event = ""
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event == "calls":
                    rows: list[dict[str, Any]] = json.loads(line.removeprefix("data:"))
                    if len({r["worker"] for r in rows}) == 2:
                        return rows
    raise AssertionError("the live stream ended")


async def stored_outcome(records: str, call_id: str) -> str | None:
    async with RecordStore(records) as store:
        row = await store.get_call(call_id)
    return None if row is None else row.outcome


async def hold(calls: list[EmulatedCall]) -> None:
    await asyncio.gather(*(call.answered(timeout=60) for call in calls))


async def test_calls_spread_over_two_workers_behind_one_port_and_sigterm_drains_both(
    tmp_path: Path,
) -> None:
    """Six calls held open against 2 workers capped at 3 each (the total of 6 split): capacity
    forces both workers to take calls. One ``GET /calls`` lists all six with their worker, one
    ``/metrics`` counts six finished calls, and SIGTERM stops the pod with status 0."""
    total = 6
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, _ = workers_process(tmp_path, telco, gemini, max_concurrent_calls=total)
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            ready = (await http.get("/readyz")).json()
            assert [w["max_concurrent_calls"] for w in ready["workers"]] == [3, 3]
            await eventually(lambda: len(telco.sm_connection_ids) == 2, what="both SM-WS")
            calls = [
                telco.place_call(CallerScript([Pause(120)]), caller=f"+1555000{i:04d}")
                for i in range(total)
            ]
            await hold(calls)
            listed = await poll_until(
                lambda: admin_calls(proc), lambda body: body["count"] == total, timeout=20
            )
            by_worker = {str(c["call_id"]): int(c["worker"]) for c in listed["calls"]}
            assert set(by_worker) == {c.call_id for c in calls}
            assert sorted(by_worker.values()) == [0, 0, 0, 1, 1, 1], by_worker
            # The emulator agrees: two connections (one per worker) claimed three calls each.
            claimed = [call.claimed_by for call in calls]
            assert len(set(claimed)) == 2 and all(claimed.count(c) == 3 for c in set(claimed))
            # The per-worker gauge is the supervisor's view (it polls each worker's /readyz).
            scraped = await poll_until(
                lambda: http.get("/metrics"),
                lambda r: per_worker_active(r.text) == [3, 3],
                what="three active calls on each worker in /metrics",
            )
            metrics = scraped.text
            assert sample_sum(metrics, "callbridge_active_calls") == total
            assert sample_sum(metrics, "callbridge_max_concurrent_calls") == total
            assert sample_sum(metrics, "callbridge_workers_running") == 2
            # One console: its live table's stream lists both workers' calls, and a call's
            # page comes from the worker that owns it (another would redirect to history).
            rows = await console_live_rows(proc)
            assert {r["call_id"]: r["worker"] for r in rows} == by_worker
            on_1 = next(cid for cid, worker in by_worker.items() if worker == 1)
            async with proc.admin_client() as admin:
                page = await admin.get(f"/console/calls/{on_1}", headers=await login(proc))
            assert page.status_code == 200 and on_1 in page.text
            # A per-call action reaches the worker that owns the call.
            victim = calls[0]
            async with proc.admin_client() as admin:
                ended = await admin.post(f"/calls/{victim.call_id}/end", headers=ADMIN)
                unknown = await admin.post("/calls/no-such-call/end", headers=ADMIN)
                denied = await admin.get("/calls")
            assert ended.status_code == 200 and ended.json()["ending"] is True
            assert unknown.status_code == 404
            assert denied.status_code == 401
            assert (await victim.ended(timeout=20)).end_reason == "agent_disconnect"
            await asyncio.gather(*(call.hang_up() for call in calls[1:]))
            finished = await poll_until(
                lambda: http.get("/metrics"),
                lambda r: sample_sum(r.text, "callbridge_calls_total") == total,
                timeout=20,
                what="six finished calls in the merged /metrics",
            )
            assert sample_sum(finished.text, "callbridge_active_calls") == 0
            assert sample_sum(finished.text, "callbridge_ready") == 1
            proc.signal(signal.SIGTERM)
            await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
            status = await proc.wait(timeout=60)
    assert status == 0
    stopped = proc.events("worker_stopped")
    assert sorted((s["worker"], s["status"]) for s in stopped) == [(0, 0), (1, 0)]
    assert len(proc.events("service_stopped")) == 3  # each worker's, then the supervisor's
    errors = [line for line in proc.lines if line.get("level") == "error"]
    assert not errors, errors


async def test_calls_below_capacity_go_to_the_less_loaded_worker(tmp_path: Path) -> None:
    """Four calls one after another, against two workers with room for four each: with
    ``limits.claim_spread_ms`` the busier worker claims later, so each ends up with two (before
    it, whichever worker was quicker took all four in most runs)."""
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, _ = workers_process(
            tmp_path, telco, gemini, max_concurrent_calls=8, claim_spread_ms=400
        )
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            await eventually(lambda: len(telco.sm_connection_ids) == 2, what="both SM-WS")
            calls = []
            for i in range(4):
                calls.append(
                    telco.place_call(CallerScript([Pause(120)]), caller=f"+1555001{i:04d}")
                )
                await hold(calls[-1:])
            claimed = [call.claimed_by for call in calls]
            assert sorted(claimed.count(c) for c in set(claimed)) == [2, 2], claimed
            listed = await poll_until(
                lambda: admin_calls(proc), lambda body: body["count"] == 4, timeout=20
            )
            assert sorted(int(c["worker"]) for c in listed["calls"]) == [0, 0, 1, 1]


async def test_a_killed_worker_is_restarted_its_call_ends_and_the_other_goes_on(
    tmp_path: Path,
) -> None:
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, records = workers_process(tmp_path, telco, gemini, max_concurrent_calls=2)
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            await eventually(lambda: len(telco.sm_connection_ids) == 2, what="both SM-WS")
            calls = [telco.place_call(CallerScript([Pause(120)])) for _ in range(2)]
            await hold(calls)
            listed = await poll_until(
                lambda: admin_calls(proc), lambda body: body["count"] == 2, timeout=20
            )
            owner = {str(c["call_id"]): int(c["worker"]) for c in listed["calls"]}
            assert sorted(owner.values()) == [0, 1]
            lost, kept = sorted(calls, key=lambda c: owner[c.call_id])
            # Kill only once the call's row is written and its worker has reported it (both
            # lag a call's start by a fraction of a second: see the supervisor's docstring).
            await poll_until(
                lambda: stored_outcome(records, lost.call_id),
                lambda outcome: outcome == "in_progress",
                what="the call's row in the store",
            )
            await asyncio.sleep(REPORT_EVERY_S * 2)
            before = worker_pids(proc)
            os.kill(before[0], signal.SIGKILL)

            # The phone call of the dead worker ends (its voice WebSocket closed with it)...
            assert (await lost.ended(timeout=20)).end_reason == "voice_dropped"
            # ...the worker comes back, and the pod is ready again...
            await poll_until(
                lambda: asyncio.sleep(0, worker_pids(proc)),
                lambda pids: pids.get(0, before[0]) != before[0],
                timeout=30,
                what="worker 0 restarted",
            )
            await wait_ready(http, timeout=60)
            # ...while the other worker's call went on throughout.
            assert not kept.is_ended
            after = await admin_calls(proc)
            assert [(c["call_id"], c["worker"]) for c in after["calls"]] == [(kept.call_id, 1)]
            metrics = (await http.get("/metrics")).text
            assert sample_sum(metrics, "callbridge_worker_restarts_total") == 1
            assert sample_sum(metrics, "callbridge_worker_calls_lost_total") == 1
            # Last, the supervisor itself is killed: its workers notice (end of file on their
            # link) and drain on their own, so the kept call is hung up at the grace's end.
            pids = worker_pids(proc)
            proc.signal(signal.SIGKILL)
            try:
                gone = await poll_until(
                    lambda: asyncio.sleep(0, proc.events("supervisor_gone")),
                    lambda lines: len(lines) == 2,
                    timeout=30,
                    what="both workers noticing the supervisor is gone",
                )
                await poll_until(
                    lambda: asyncio.sleep(0, [p for p in pids.values() if alive(p)]),
                    lambda left: not left,
                    timeout=60,
                    what="both workers exiting on their own",
                )
            finally:
                for pid in pids.values():
                    if alive(pid):
                        os.kill(pid, signal.SIGKILL)
            kept_end = await kept.ended(timeout=30)
    assert sorted(line["worker"] for line in gone) == [0, 1]
    assert kept_end.end_reason == "agent_disconnect"  # hung up by its draining worker
    [exited] = proc.events("worker_exited")
    assert exited["worker"] == 0 and exited["status"] == -signal.SIGKILL
    assert exited["calls_lost"] == 1
    assert await stored_outcome(records, lost.call_id) == "worker_lost"
    assert await stored_outcome(records, kept.call_id) not in (None, "in_progress", "worker_lost")


async def test_a_worker_that_never_becomes_ready_stops_the_supervisor_with_its_status(
    tmp_path: Path,
) -> None:
    """Refused credentials: restarting would not help, so the pod exits 1 as one process
    would, with the worker's one clear line, and the other worker is stopped."""
    async with platform_and_model() as (telco, gemini):
        proc, _ = workers_process(tmp_path, telco, gemini)
        proc.env["TELCOFLOW_API_KEY"] = "not-the-key"
        async with serve_processes(proc):
            status = await proc.wait(timeout=90)
    assert status == 1
    assert any("TELCOFLOW_API_KEY" in line["error"] for line in proc.events("service_failed"))
    assert not proc.events("worker_restarting")
    assert not any("Traceback" in line for line in proc.raw)


async def test_a_second_signal_exits_at_once_with_every_worker(tmp_path: Path) -> None:
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, _ = workers_process(tmp_path, telco, gemini, drain_grace_s=600)
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            call = telco.place_call(CallerScript([Pause(120)]))
            await call.answered(timeout=30)
            pids = worker_pids(proc)
            proc.signal(signal.SIGINT)
            await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
            proc.signal(signal.SIGINT)
            # Far sooner than the 600 s grace.
            status = await proc.wait(timeout=30)
            await poll_until(
                lambda: asyncio.sleep(0, [p for p in pids.values() if alive(p)]),
                lambda left: not left,
                timeout=30,
                what="both workers gone",
            )
    assert status == 130
    assert len(proc.events("forced_exit")) == 3  # the supervisor's and each worker's


async def one_call_on_a_stopped_worker(
    proc: ServeProcess, http: Any, telco: TelcoflowEmulator
) -> tuple[int, int]:
    """One call held by one worker, which is then stopped (SIGSTOP): its index and pid.

    A stopped process is what a loaded machine makes of a runnable one for a while: it does
    not run, and signals sent to it wait, pending, until it does."""
    await wait_ready(http, timeout=60)
    call = telco.place_call(CallerScript([Pause(120)]))
    await call.answered(timeout=30)
    listed = await poll_until(lambda: admin_calls(proc), lambda body: body["count"] == 1)
    [owner] = [int(c["worker"]) for c in listed["calls"]]
    pid = worker_pids(proc)[owner]
    os.kill(pid, signal.SIGSTOP)
    return owner, pid


async def test_a_second_signal_reaches_a_worker_that_did_not_run_between_the_two(
    tmp_path: Path,
) -> None:
    """The worker holding a call does not run between the supervisor's two signals (on a
    loaded machine the scheduler does this; here SIGSTOP). The kernel keeps one pending
    instance of each signal number, so two SIGTERMs would reach it as one and it would drain
    for the whole 600 s grace: the second signal it is passed is another one, and when it
    runs again it exits at once by itself."""
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, _ = workers_process(tmp_path, telco, gemini, drain_grace_s=600)
        async with serve_processes(proc), await proc.wait_started() as http:
            owner, pid = await one_call_on_a_stopped_worker(proc, http, telco)
            try:
                proc.signal(signal.SIGINT)
                await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
                proc.signal(signal.SIGINT)
                await poll_until(
                    lambda: asyncio.sleep(0, proc.events("forced_exit")),
                    lambda lines: any("worker" not in line for line in lines),
                    what="the supervisor's forced exit",
                )
                os.kill(pid, signal.SIGCONT)
                status = await proc.wait(timeout=30)
            finally:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert status == 130
    assert owner in {line.get("worker") for line in proc.events("forced_exit")}
    assert not proc.events("workers_killed_at_exit")


async def test_a_worker_that_never_runs_again_is_killed_by_the_forced_exit(
    tmp_path: Path,
) -> None:
    """The stopped worker stays stopped: the supervisor does not exit leaving it behind to
    drain for 600 s once it runs again, it kills it (after FORCED_EXIT_WAIT_S) and says so."""
    async with platform_and_model(GREETING) as (telco, gemini):
        proc, _ = workers_process(tmp_path, telco, gemini, drain_grace_s=600)
        async with serve_processes(proc), await proc.wait_started() as http:
            owner, pid = await one_call_on_a_stopped_worker(proc, http, telco)
            try:
                proc.signal(signal.SIGTERM)
                await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
                proc.signal(signal.SIGTERM)
                status = await proc.wait(timeout=FORCED_EXIT_WAIT_S + 20)
                gone = not alive(pid)
            finally:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert status == 130
    assert gone
    [killed] = proc.events("workers_killed_at_exit")
    assert killed["workers"] == [owner]


async def test_an_outbound_call_goes_to_the_worker_with_room(tmp_path: Path) -> None:
    """One inbound call fills worker X (capacity 2 split 1/1); ``POST /calls`` on the one
    admin port is placed by the other worker, and ``GET /dials/{id}`` finds it there."""
    async with platform_and_model(REMINDER) as (telco, gemini):
        proc, _ = workers_process(
            tmp_path,
            telco,
            gemini,
            max_concurrent_calls=2,
            outbound={
                "enabled": True,
                "instruction_template": "You call {name} to remind them of their appointment.",
            },
        )
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            await eventually(lambda: len(telco.sm_connection_ids) == 2, what="both SM-WS")
            inbound = telco.place_call(CallerScript([Pause(120)]))
            await inbound.answered(timeout=30)
            listed = await poll_until(lambda: admin_calls(proc), lambda b: b["count"] == 1)
            [busy] = [int(c["worker"]) for c in listed["calls"]]
            await poll_until(
                lambda: http.get("/readyz"),
                lambda r: sorted(w["active_calls"] for w in r.json()["workers"]) == [0, 1],
                what="the supervisor seeing the inbound call",
            )
            telco.expect_callee(TO, person())
            async with proc.admin_client() as admin:
                placed = await admin.post(
                    "/calls", json={"to": TO, "variables": {"name": "Ada"}}, headers=ADMIN
                )
                assert placed.status_code == 202, placed.text
                dialler = int(placed.headers["x-callbridge-worker"])
                dial_id = placed.json()["dial_id"]
                status = await poll_until(
                    lambda: admin.get(f"/dials/{dial_id}", headers=ADMIN),
                    lambda r: r.json().get("status") == "done",
                    timeout=40,
                    what="the dial's outcome",
                )
            assert status.json()["outcome"] == "answered"
            assert int(status.headers["x-callbridge-worker"]) == dialler
            await inbound.hang_up()
            proc.signal(signal.SIGTERM)
            assert await proc.wait(timeout=60) == 0
    assert dialler != busy
    assert telco.dialled == [TO]


async def test_a_worker_stuck_in_its_drain_is_killed_and_the_pod_still_exits(
    tmp_path: Path,
) -> None:
    """A worker that cannot finish its drain (stopped here with SIGSTOP) is killed once its
    drain should be over (grace 1 s + record flush 1 s + trace flush 5 s + 2 s), so the pod
    exits (status 1, naming the worker) instead of hanging until something kills it."""
    async with platform_and_model() as (telco, gemini):
        proc, _ = workers_process(
            tmp_path, telco, gemini, service={"records_flush_timeout_s": 1.0}, drain_grace_s=1
        )
        async with serve_processes(proc), await proc.wait_started() as http:
            await wait_ready(http, timeout=60)
            stuck = worker_pids(proc)[1]
            os.kill(stuck, signal.SIGSTOP)
            try:
                proc.signal(signal.SIGTERM)
                status = await proc.wait(timeout=60)
            finally:
                if alive(stuck):
                    os.kill(stuck, signal.SIGKILL)
    assert status == 1
    [killed] = proc.events("workers_killed_after_drain")
    assert killed["workers"] == [1]
    stopped = {line["worker"]: line["status"] for line in proc.events("worker_stopped")}
    assert stopped == {0: 0, 1: -signal.SIGKILL}
