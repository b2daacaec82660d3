"""Issue 16's seven observed failures, each reproduced against a real service (or the code
path `serve` runs) on the emulators: HTTP held open, a pod that cannot reach the model, a
stranded call, a store outage blocking shutdown, webhook credentials in logs, check-config
passing what serve refuses, and the supply chain. Each fails on d0ca293 and passes here.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from callbridge.bridge.config import load_config, token_weakness, webhook_url_problem
from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, EmulatedCall, Pause, TelcoflowEmulator
from callbridge.service.config_cli import main as check_config
from callbridge.service.logs import redact, register_secrets
from callbridge.service.serve import Service
from callbridge.service.store import RecordStore
from callbridge.service.webhook import WebhookDelivery
from tests.e2e.scenarios import agent
from tests.kit import eventually
from tests.service.helpers import (
    ADMIN_TOKEN,
    API_KEY,
    CONNECTOR,
    ServeProcess,
    poll_until,
    running_service,
    secrets_env,
    sections,
    serve_processes,
    service_config,
    toml_text,
)

GOOD_ENV = {"TELCOFLOW_API_KEY": "k", "TELCOFLOW_CONNECTOR_UUID": "c", "GEMINI_API_KEY": "g"}
GREETING = Script(greeting=Turn([agent("agent_greeting")]))


def answered(call: EmulatedCall) -> bool:
    return call.record.answered_at is not None


# ── 1. The HTTP port cannot be held open ───────────────────────────────────────────────────


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(1024) == b"" or True
    except TimeoutError:
        return False


async def test_slow_loris_connections_are_closed_and_probes_keep_answering() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
        running_service(service_config(telco, gemini)) as svc,
    ):
        port = svc.service.port
        opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(30):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                opened.append((reader, writer))
            started = time.monotonic()
            # The default read deadline is 5 s: every partial request is cut off.
            closed = await asyncio.gather(*(_eof_within(r, 12) for r, _ in opened))
            assert all(closed), f"{closed.count(False)} slow connections still open"
            assert time.monotonic() - started < 12
            assert (await svc.http.get("/healthz")).status_code == 200
        finally:
            for _, writer in opened:
                writer.close()
    metrics = svc.service.guards["http"]
    assert metrics.read_timeouts >= 30


async def test_connections_beyond_the_cap_are_closed_before_anything_is_read() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        config = load_config(
            overrides={
                **sections(gemini),
                "service": {
                    "http_host": "127.0.0.1",
                    "http_port": 0,
                    "admin_port": 0,
                    "http_max_connections": 8,
                    "http_read_timeout_s": 30,
                },
            },
            env=secrets_env(telco),
            service=True,
        )
        async with running_service(config) as svc:
            held = [await asyncio.open_connection("127.0.0.1", svc.service.port) for _ in range(8)]
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", svc.service.port)
                assert await _eof_within(reader, 5), "a connection over the cap was kept"
                writer.close()
            finally:
                for _, w in held:
                    w.close()
            await eventually(lambda: svc.service.guards["http"].refused_connections >= 1)


async def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
        running_service(service_config(telco, gemini)) as svc,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.service.admin_port)
        writer.write(
            b"POST /calls/x/inject HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(5):  # no body byte was sent: refused unread
            head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 413")


async def test_admin_api_is_on_its_own_loopback_listener() -> None:
    config = load_config(overrides={"tenant": "t"}, env={**GOOD_ENV}, service=True)
    assert (config.service.admin_host, config.service.admin_port) == ("127.0.0.1", 8081)
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
        running_service(service_config(telco, gemini)) as svc,
    ):
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert svc.service.admin_port != svc.service.port
        assert (await svc.http.get("/calls", headers=auth)).status_code == 404
        assert (await svc.admin_http.get("/calls", headers=auth)).status_code == 200
        assert (await svc.admin_http.get("/metrics")).status_code == 404


async def test_failed_admin_auth_is_logged_with_the_peer_and_throttled() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
        running_service(service_config(telco, gemini)) as svc,
    ):
        wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
        with capture_logs() as logs:
            statuses = [
                (await svc.admin_http.get("/calls", headers=wrong)).status_code for _ in range(30)
            ]
            good = await svc.admin_http.get(
                "/calls", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
    failed = [e for e in logs if e["event"] == "admin_auth_failed"]
    assert failed and failed[0]["peer"] == "127.0.0.1" and failed[0]["why"] == "wrong token"
    assert len(failed) <= 2, "1,000 failures must not be 1,000 lines"
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429
    assert good.status_code == 429  # the throttled peer waits out the window, token or not
    audited = [e for e in logs if e["event"] == "admin_audit"]
    assert audited == []


async def test_every_admin_action_is_audited_with_who_and_from_where() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
        running_service(service_config(telco, gemini)) as svc,
    ):
        with capture_logs() as logs:
            await svc.admin_http.get("/calls", headers=svc.admin)
            await svc.admin_http.post("/calls/nope/end", headers=svc.admin)
    audited = [e for e in logs if e["event"] == "admin_audit"]
    assert [(e["action"], e["result"]) for e in audited] == [
        ("list_calls", "ok"),
        ("end", "unknown_call"),
    ]
    assert all(e["actor"].startswith("token:") and ADMIN_TOKEN not in e["actor"] for e in audited)
    assert all(e["peer"].startswith("127.0.0.1:") for e in audited)


@pytest.mark.parametrize(
    "token", [" " * 16, "a" * 32, "abababababababab", "0123456789abcde", "long token with spaces!"]
)
def test_weak_admin_tokens_fail_check_config(
    token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**GOOD_ENV, "CALLBRIDGE_ADMIN_TOKEN": token}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.toml"
    path.write_text('tenant = "t"\n', encoding="utf-8")
    assert token_weakness(token) is not None
    assert check_config([str(path)]) == 2


def test_check_config_shows_where_each_listener_binds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**GOOD_ENV, "CALLBRIDGE_ADMIN_TOKEN": "Xk3-p9Qz_r7Lw2Vb8Nc4"}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.toml"
    path.write_text('tenant = "t"\n', encoding="utf-8")
    assert check_config([str(path)]) == 0
    out = capsys.readouterr().out
    assert "probes+metrics 0.0.0.0:8080" in out and "admin API on 127.0.0.1:8081" in out


# ── 2. A replica that cannot reach the model stops claiming calls, and recovers ───────────


async def test_unreachable_model_turns_readiness_off_and_it_comes_back_by_itself() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        data = sections(gemini, limits={"model_failures_unready": 2, "model_retry_after_s": 3})
        data["model"] = {**data["model"], "base_url": "https://127.0.0.1:9"}  # nothing listens
        config = load_config(overrides=data, env=secrets_env(telco), service=True)
        async with running_service(config) as svc:
            first = [telco.place_call(CallerScript([Pause(30)])) for _ in range(2)]
            ready = await poll_until(
                lambda: svc.http.get("/readyz"), lambda r: r.status_code == 503, timeout=20
            )
            assert ready.json()["reason"] == "model_unavailable"
            assert all(answered(c) for c in first)
            # While unready, a new call is left for another replica: never claimed here.
            waiting = telco.place_call(CallerScript([Pause(30)]))
            await asyncio.sleep(1.0)
            assert not answered(waiting) and waiting.owner is None
            metrics = (await svc.http.get("/metrics")).text
            assert "callbridge_model_available 0.0" in metrics
            # No operator: after model_retry_after_s the replica is ready again and tries.
            await poll_until(
                lambda: svc.http.get("/readyz"), lambda r: r.status_code == 200, timeout=10
            )
            await eventually(lambda: waiting.owner is not None, timeout=10, what="retry claim")


# ── 3. No stranded call: a local failure is released, its RESUME taken over ──────────────


async def test_descriptor_exhaustion_at_answer_is_bridge_error_and_the_call_is_taken_over() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        finished: list[str] = []
        config = service_config(telco, gemini)
        service = Service(config)
        service.app._on_call_finished = lambda record, _: finished.append(record.outcome)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(service.run())
            await service.started.wait()
            await eventually(lambda: service.app.source.connected, timeout=20)
            hogs: list[int] = []
            try:
                in_use = len(os.listdir("/proc/self/fd"))
                resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 64, hard))
                try:
                    while True:
                        hogs.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    pass
                call = telco.place_call(CallerScript([Pause(30)]))
                await eventually(lambda: bool(finished), timeout=20, what="the failed answer")
            finally:
                for fd in hogs:
                    os.close(fd)
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            # The caller did not hang up: it is our failure, and the call is given up.
            assert finished == ["bridge_error"]
            assert not answered(call)
            # The platform re-offers it (here after an SM-WS drop) and it is served.
            await telco.drop_session_manager()
            await eventually(lambda: answered(call), timeout=30, what="the call taken over")
            assert service.app.source.stats.resumes_taken_over == 1
            service.request_drain("test over")
        assert task.result() == 0


# ── 4. A store outage cannot block shutdown ────────────────────────────────────────────────


async def test_store_outage_during_shutdown_exits_within_the_flush_deadline(
    tmp_path: Path,
) -> None:
    db = tmp_path / "records.sqlite"
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        data = sections(gemini, limits={"drain_grace_s": 1.0})
        data["service"] = {**data["service"], "records_flush_timeout_s": 2.0}
        config = load_config(overrides=data, env=secrets_env(telco), service=True)
        async with RecordStore(f"sqlite+aiosqlite:///{db}") as store:
            service = Service(config, store=store)
            async with asyncio.TaskGroup() as group:
                task = group.create_task(service.run())
                await service.started.wait()
                call = telco.place_call(CallerScript([Pause(60)]))
                await eventually(lambda: answered(call), timeout=20)
                # Waits (off the loop) for a transaction of the writer in flight to end, then
                # holds the lock: the database is unavailable from now.
                blocker = sqlite3.connect(
                    db, timeout=10, isolation_level=None, check_same_thread=False
                )
                await asyncio.to_thread(blocker.execute, "BEGIN EXCLUSIVE")
                try:
                    await asyncio.sleep(0.5)
                    started = time.monotonic()
                    service.request_drain("SIGTERM")
                    with capture_logs() as logs:
                        async with asyncio.timeout(30):
                            status = await asyncio.shield(task)
                        lost = await store.close_within(2.0)
                    took = time.monotonic() - started
                finally:
                    blocker.rollback()
                    blocker.close()
    assert status == 0
    assert took < 1.0 + 2.0 + 2.0 + 6.0  # grace + writer deadline + final flush + busy timeout
    assert lost > 0 and store.lost >= lost
    assert any(e["event"] == "record_entries_lost_at_shutdown" for e in logs)


async def test_stale_in_progress_rows_are_abandoned_at_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite'}"
    async with RecordStore(url) as store:
        from callbridge.bridge.record import CallRecord

        old = CallRecord("killed", "acme", "+15550001", "+15559999", listeners=[store.listener()])
        old.note("answered")
        other = CallRecord("other", "beta", "+1", "+2", listeners=[store.listener()])
        other.note("x")
        await store.flush()
        async with store.engine.begin() as conn:
            from callbridge.service.store import calls

            await conn.execute(calls.update().values(updated_at=time.time() - 3600))
    async with RecordStore(url) as store:
        assert await store.abandon_stale("acme", older_than_s=600) == 1
        row = await store.get_call("killed")
        assert row is not None and row.outcome == "abandoned" and row.ended_at is not None
        untouched = await store.get_call("other")
        assert untouched is not None and untouched.outcome == "in_progress"


async def test_sqlite_records_file_is_created_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    async with RecordStore(f"sqlite+aiosqlite:///{db}"):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


# ── 5. No secret in any log line ───────────────────────────────────────────────────────────


def test_webhook_credentials_never_reach_a_log_line() -> None:
    hook = WebhookDelivery("http://user:PASSWORD@hooks.example.test/hook", "whsec")
    assert "PASSWORD" not in repr(hook) and "user" not in repr(hook)
    event = redact(None, "", {"event": "x", "error": "POST http://u:PASSWORD@h/x failed"})
    assert "PASSWORD" not in str(event)


def test_configured_secret_values_are_redacted_whatever_key_carries_them() -> None:
    register_secrets(["gm-key-9f8e7d6c5b", None, "abc"])
    try:
        event = redact(None, "", {"event": "x", "detail": "bad key gm-key-9f8e7d6c5b", "n": 3})
        assert event["detail"] == "bad key ***" and event["n"] == 3
        structlog.get_logger().info("shown", text="abc")  # too short to redact: no crash
    finally:
        register_secrets([])


# ── 6. check-config = serve ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ('[warnings]\nwebhook_url = "file:///etc/passwd"\n', {"S": "1"}, "http(s)"),
        ('[warnings]\nwebhook_url = "https://hooks.example.com/x"\n', {}, "webhook_secret"),
        ('[warnings]\nwebhook_url = "http://169.254.169.254/latest"\n', {"S": "1"}, "link-local"),
        ('[warnings]\nwebhook_url = "http://10.0.0.7/hook"\n', {"S": "1"}, "private"),
        ('[model]\nbackend = "adk"\nadk_agent = "no_such_module_xyz:agent"\n', {}, "adk_agent"),
        ('[tools.custom]\nlookup = "no_such_module_xyz:lookup"\n', {}, "tools.custom.lookup"),
    ],
)
def test_check_config_refuses_what_serve_refuses(
    toml: str,
    env: dict[str, str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    if env:
        monkeypatch.setenv("CALLBRIDGE_WEBHOOK_SECRET", "whsec-0123456789")
    path = tmp_path / "t.toml"
    path.write_text('tenant = "t"\n' + toml, encoding="utf-8")
    assert check_config([str(path)]) == 2
    assert needle in capsys.readouterr().err


def test_private_webhook_targets_need_an_explicit_allowance() -> None:
    assert webhook_url_problem("http://127.0.0.1:9/h", allow_private=False)
    assert webhook_url_problem("http://localhost/h", allow_private=False)
    assert webhook_url_problem("http://127.0.0.1:9/h", allow_private=True) is None
    assert webhook_url_problem("https://hooks.example.com/h", allow_private=False) is None
    assert webhook_url_problem("ftp://hooks.example.com/h", allow_private=True)


# ── 7. Supply chain and deploy ─────────────────────────────────────────────────────────────

REPO = Path(__file__).resolve().parents[2]


def test_lock_is_hashed_and_installs_require_the_hashes() -> None:
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    pins = [line for line in lock.splitlines() if "==" in line and not line.startswith("#")]
    assert pins and all("--hash=sha256:" in lock.split(pin, 1)[1].split("==")[0] for pin in pins)
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes" in dockerfile and "--no-deps" in dockerfile
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes" in makefile


def test_base_image_is_pinned_by_digest() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    bases = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert bases and all("@sha256:" in base for base in bases), bases


def test_deploy_has_a_network_policy_and_wires_the_webhook_secret() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "deploy").rglob("*.yaml"))
    assert "kind: NetworkPolicy" in text
    assert "CALLBRIDGE_WEBHOOK_SECRET" in text


# ── Shutdown and start-up as a real `callbridge serve` process ───────────────────────────


def _serve_file(tmp_path: Path, name: str, gemini: GeminiLiveEmulator, **service: object) -> Path:
    data = sections(gemini, limits={"drain_grace_s": 600}, tenant=name)
    data["service"] = {**data["service"], **service}
    path = tmp_path / f"{name}.toml"
    path.write_text(toml_text(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["two-sigterms", "sigterm-then-sigint"],
)
async def test_a_second_signal_during_drain_exits_at_once(
    signals: tuple[signal.Signals, signal.Signals], tmp_path: Path
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        proc = ServeProcess(_serve_file(tmp_path, "twice", gemini), secrets_env(telco))
        async with serve_processes(proc), await proc.wait_started() as http:
            await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 200)
            call = telco.place_call(CallerScript([Pause(120)]))
            await eventually(lambda: answered(call), timeout=20)
            proc.signal(signals[0])
            await poll_until(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
            proc.signal(signals[1])
            status = await proc.wait(timeout=30)  # far below the 600 s grace
    assert status == 130
    [forced] = proc.events("forced_exit")
    assert forced["signal"] == signals[1].name
    # Lifecycle: the call's start was logged, and the Telcoflow connection.
    assert proc.events("call_started") and proc.events("telcoflow_connected")


async def test_an_unreachable_records_database_at_start_is_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        url = "postgresql+asyncpg://bridge:hunter2-db-pass@127.0.0.1:9/records"
        path = _serve_file(tmp_path, "nodb", gemini, records_url=url)
        proc = ServeProcess(path, secrets_env(telco))
        async with serve_processes(proc):
            status = await proc.wait(timeout=60)
    assert status == 2
    text = "\n".join(proc.raw)
    assert "Traceback" not in text and "hunter2-db-pass" not in text
    problems = [line for line in proc.raw if "service.records_url" in line]
    assert len(problems) == 1 and len(proc.raw) <= 3, proc.raw


async def test_webhook_password_and_secret_never_reach_serve_logs(tmp_path: Path) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=GREETING) as gemini,
    ):
        data = sections(gemini, tenant="hook")
        data["model"] = {**data["model"], "base_url": "https://127.0.0.1:9"}  # warns each call
        data["warnings"] = {
            "min_interval_s": 0.0,
            "webhook_url": "http://user:PASSWORD-in-url@127.0.0.1:9/hook",
            "webhook_allow_private": True,
            "webhook_timeout_s": 0.5,
        }
        path = tmp_path / "hook.toml"
        path.write_text(toml_text(data), encoding="utf-8")
        env = {**secrets_env(telco), "CALLBRIDGE_WEBHOOK_SECRET": "whsec-VALUE-123456"}
        proc = ServeProcess(path, env)
        async with serve_processes(proc), await proc.wait_started():
            telco.place_call(CallerScript([Pause(10)]))
            await eventually(lambda: bool(proc.events("warning_webhook_failed")), timeout=60)
            proc.signal(signal.SIGTERM)
            await proc.wait(timeout=60)
    text = "\n".join(proc.raw)
    assert "PASSWORD-in-url" not in text and "whsec-VALUE-123456" not in text
    assert "127.0.0.1:9/hook" in proc.events("warning_webhook_failed")[0]["url"]
