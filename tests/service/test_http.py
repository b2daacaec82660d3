"""The service's HTTP face: probes, metrics after real calls, and the admin API on a live call.

The service runs in the test's event loop (``Service.run``), bridging calls from the Telcoflow
emulator to the Gemini Live emulator through the unmodified SDKs, and is queried over a real
socket. The readiness rules themselves are also checked on the bare app with a fake source.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from callbridge.emulators.gemini_live import Fault, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, TelcoflowEmulator
from callbridge.emulators.telcoflow import WaitForAgentAudio as WaitAgent
from callbridge.service.http import HttpDeps, create_admin_app, create_http_app
from callbridge.service.metrics import BridgeMetrics
from callbridge.service.serve import Service
from tests.e2e.scenarios import agent, caller_pcm
from tests.kit import eventually
from tests.service.helpers import (
    ADMIN_TOKEN,
    API_KEY,
    CONNECTOR,
    poll_until,
    running_service,
    service_config,
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


# ── Readiness rules on the bare app ─────────────────────────────────────────────────────────


@dataclass
class FakeSource:
    connected: bool = False
    draining: bool = False
    active_calls: int = 0
    full: bool = False

    def has_capacity(self) -> bool:
        return not self.draining and not self.full


async def test_readyz_reasons_follow_the_source_state() -> None:
    source = FakeSource()
    deps = HttpDeps(
        source=source,
        live={},
        metrics=BridgeMetrics("t"),
        admin_token=None,
        max_concurrent_calls=2,
    )
    transport = httpx.ASGITransport(app=create_http_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        reasons = []
        changes: tuple[dict[str, bool], ...] = (
            {},
            {"connected": True},
            {"full": True},
            {"full": False},
            {"draining": True},
        )
        for change in changes:
            for key, value in change.items():
                setattr(source, key, value)
            response = await http.get("/readyz")
            reasons.append((response.status_code, response.json().get("reason")))
        # No admin route on the probes' listener.
        assert (await http.get("/calls")).status_code == 404
    admin_transport = httpx.ASGITransport(app=create_admin_app(deps))
    async with httpx.AsyncClient(transport=admin_transport, base_url="http://svc") as admin_http:
        # Admin API off without a token: 503, never open.
        assert (await admin_http.get("/calls")).status_code == 503
    assert reasons == [
        (503, "telcoflow_not_connected"),
        (200, None),
        (503, "at_capacity"),
        (200, None),
        (503, "draining"),
    ]


# ── A live service ──────────────────────────────────────────────────────────────────────────


async def test_admin_api_lists_injects_and_ends_a_live_call() -> None:
    script = Script(
        greeting=Turn([agent("agent_greeting")]), fallback=Turn([agent("agent_answer_long")])
    )
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=script, burst_speed=1.0) as gemini,
    ):
        config = service_config(telco, gemini, limits={"max_concurrent_calls": 1})
        async with running_service(config) as svc:
            probes, http, admin = svc.http, svc.admin_http, svc.admin
            assert (await probes.get("/healthz")).status_code == 200
            assert (await probes.get("/calls", headers=admin)).status_code == 404

            # Auth: missing or wrong token is 401, the right one lists (nothing yet).
            assert (await http.get("/calls")).status_code == 401
            wrong = {"Authorization": "Bearer not-the-token-at-all"}
            assert (await http.get("/calls", headers=wrong)).status_code == 401
            assert (await http.get("/calls", headers=admin)).json() == {"calls": [], "count": 0}

            call = telco.place_call(CallerScript([Pause(60)]), caller="+15550001234")

            async def poll_calls() -> list[dict[str, object]]:
                calls: list[dict[str, object]] = (await http.get("/calls", headers=admin)).json()[
                    "calls"
                ]
                return calls

            listed = await poll_until(poll_calls, lambda calls: len(calls) == 1, what="listed")
            entry = listed[0]
            assert entry["call_id"] == call.call_id
            # Masked: never the full number, only its last four digits.
            assert entry["caller"].endswith("1234")
            assert set(entry["caller"][:-4]) == {"*"}
            assert entry["outcome"] == "in_progress"

            # One call and max_concurrent_calls = 1: not ready (at capacity).
            ready = await probes.get("/readyz")
            assert (ready.status_code, ready.json()["reason"]) == (503, "at_capacity")

            url = f"/calls/{call.call_id}"
            # Once the greeting is over, an injected message is taken...
            await poll_until(poll_calls, lambda c: c[0]["agent_speaking"] is False, what="quiet")
            taken = await http.post(f"{url}/inject", json={"text": "Your order ships today."})
            assert taken.status_code == 401  # the admin gate applies to every admin route
            taken = await http.post(
                f"{url}/inject", json={"text": "Your order ships today."}, headers=admin
            )
            assert (taken.status_code, taken.json()) == (200, {"injected": True})
            # ...and while the agent answers it, the next one is refused with the code.
            await poll_until(poll_calls, lambda c: c[0]["agent_speaking"] is True, what="speaking")
            refused = await http.post(f"{url}/inject", json={"text": "And more."}, headers=admin)
            assert refused.status_code == 409
            assert refused.json() == {
                "injected": False,
                "code": "INJECT_MESSAGE_DURING_AGENT_SPEECH",
            }

            bad = await http.post(f"{url}/inject", json={"words": "x"}, headers=admin)
            assert bad.status_code == 422
            unknown = await http.post("/calls/no-such-call/end", headers=admin)
            assert unknown.status_code == 404

            ended = await http.post(f"{url}/end", headers=admin)
            assert ended.status_code == 200
            record = await call.ended(timeout=20)
            assert record.end_reason == "agent_disconnect"

            await eventually(lambda: svc.service.app.source.active_calls == 0, what="call gone")
            assert (await probes.get("/readyz")).status_code == 200
            metrics = (await probes.get("/metrics")).text
            assert sample(metrics, "callbridge_calls_total", outcome="ended_by_operator") == 1
            assert (
                sample(
                    metrics,
                    "callbridge_warnings_total",
                    code="INJECT_MESSAGE_DURING_AGENT_SPEECH",
                )
                == 1
            )


async def test_metrics_show_real_values_after_real_calls() -> None:
    long_greeting = Script(
        greeting=Turn([agent("agent_answer_long")]), fallback=Turn([agent("agent_farewell")])
    )
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=long_greeting, burst_speed=1.0) as gemini,
    ):
        # One model connect per second, no burst: of two calls at once, one waits.
        limits = {"model_connects_per_minute": 60, "model_connects_burst": 1}
        config = service_config(telco, gemini, limits=limits)
        async with running_service(config) as svc:
            barge_in = telco.place_call(
                CallerScript(
                    [
                        WaitAgent(min_s=1.0, timeout_s=15),
                        Say(caller_pcm("caller_bargein", 16000)),
                        Pause(1.0),
                        HangUp(),
                    ]
                )
            )
            short = telco.place_call(CallerScript([WaitAgent(0.3, timeout_s=15), HangUp()]))
            assert (await barge_in.ended(timeout=40)).interrupts
            await short.ended(timeout=40)

            # A third call whose model connection drops once and is resumed.
            gemini.set_script(Script(faults=[Fault.close(after_s=0.5, on_connection=0)]))
            dropped = telco.place_call(CallerScript([Pause(2.5), HangUp()]))
            await dropped.ended(timeout=40)
            await eventually(lambda: svc.service.app.source.active_calls == 0, what="calls over")

            text = (await svc.http.get("/metrics")).text
    assert sample(text, "callbridge_calls_total", outcome="caller_hangup") == 3
    assert sample(text, "callbridge_active_calls") == 0
    assert sample(text, "callbridge_first_agent_audio_seconds_count") >= 2
    assert 0 < sample(text, "callbridge_first_agent_audio_seconds_sum") < 60
    assert sample(text, "callbridge_interrupt_to_clear_seconds_count") >= 1
    assert sample(text, "callbridge_model_reconnects_total", kind="reconnected") >= 1
    assert sample(text, "callbridge_warnings_total", code="CALL_ADMISSION_DELAYED") == 1
    assert sample(text, "callbridge_warnings_total", code="MODEL_REQUEST_FAILED") >= 1
    assert sample(text, "callbridge_admission_delayed_calls_total") == 1
    assert sample(text, "callbridge_model_tokens_total", direction="response", modality="audio") > 0
    assert sample(text, "callbridge_model_tokens_total", direction="prompt", modality="audio") > 0
    assert sample(text, "callbridge_info", tenant="svc") == 1


async def test_admin_api_is_disabled_without_a_token() -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator() as gemini,
    ):
        service = Service(service_config(telco, gemini, admin=False))
        transport = httpx.ASGITransport(app=service.admin_http)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            response = await http.post("/calls/x/end", headers=headers)
    assert response.status_code == 503
    assert "CALLBRIDGE_ADMIN_TOKEN" in response.json()["error"]
