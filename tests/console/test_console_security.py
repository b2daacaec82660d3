"""The console's gate, on a live service: nothing without a session, no action without CSRF,
no full number unless the tenant shows full numbers; every action audited with its operator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.routing import Mount, Route

from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, TelcoflowEmulator
from callbridge.service.console import auth
from tests.console.kit import BASE, Console, console_service, sse_events
from tests.e2e.scenarios import agent
from tests.kit import eventually
from tests.service.helpers import API_KEY, CONNECTOR, poll_until

CALLER = "+15550001234"


def quiet_script() -> Script:
    return Script(
        greeting=Turn([agent("agent_greeting")]), fallback=Turn([agent("agent_farewell")])
    )


def console_routes(console: Console) -> list[tuple[str, str]]:
    """(method, path) of every route mounted under /console."""
    mount = next(
        r for r in console.service.admin_http.routes if isinstance(r, Mount) and r.path == BASE
    )
    found: list[tuple[str, str]] = []
    for route in mount.routes:
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, BASE + route.path))
    return found


async def live_call_id(console: Console, headers: dict[str, str]) -> str:
    async def ids() -> list[str]:
        return list(console.service.app.runner.live)

    found = await poll_until(ids, lambda ids: len(ids) == 1, what="a live call")
    return found[0]


async def test_every_route_and_stream_refuses_a_request_without_a_session(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=quiet_script()) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        telco.place_call(CallerScript([Pause(30)]), caller=CALLER)
        call_id = await live_call_id(console, {})
        routes = console_routes(console)
        assert len(routes) >= 14
        forged_cookie, _ = auth.new_session("not-the-admin-token-at-all", "Mallory")
        expired, _ = auth.new_session(
            "test-admin-token-0123456789", "Old", now=1.0
        )  # signed right, long expired
        bad_sessions: list[dict[str, str]] = [
            {},
            {"Cookie": f"{auth.COOKIE_NAME}={forged_cookie}"},
            {"Cookie": f"{auth.COOKIE_NAME}={expired}"},
            {"Authorization": "Bearer test-admin-token-0123456789"},  # the API's way, not ours
        ]
        checked = 0
        for method, path in routes:
            url = path.replace("{call_id}", call_id).replace("{name}", "console.js")
            if url in (f"{BASE}/login", f"{BASE}/static/console.css"):
                continue  # the login form and its stylesheet: no call data in them
            for headers in bad_sessions:
                response = await console.http.request(method, url, headers=headers)
                if method == "GET" and not url.endswith(("/stream", ".js")):
                    assert response.status_code == 303, (url, response.status_code)
                    assert response.headers["location"] == f"{BASE}/login"
                else:
                    assert response.status_code == 401, (method, url, response.status_code)
                assert call_id not in response.text and "1234" not in response.text
                checked += 1
        assert checked >= 11 * len(bad_sessions)
        # Nothing happened to the call: no action got through.
        assert call_id in console.service.app.runner.live
        entries = console.service.app.runner.live[call_id].record.entries
        assert not [e for e in entries if e.data.get("event") == "operator_action"]


async def test_login_sets_a_secure_httponly_samesite_cookie_and_refuses_a_wrong_token(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=quiet_script()) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        wrong = await console.http.post(
            f"{BASE}/login", data={"operator": "Eve", "token": "guess-guess-guess-guess"}
        )
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert "token: not this bridge" in wrong.text
        cross = await console.http.post(
            f"{BASE}/login",
            data={"operator": "Eve", "token": "test-admin-token-0123456789"},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        good = await console.http.post(
            f"{BASE}/login", data={"operator": "Ada", "token": "test-admin-token-0123456789"}
        )
        assert good.status_code == 303
        flags = {part.strip().lower() for part in good.headers["set-cookie"].split(";")}
        assert {"secure", "httponly", "samesite=strict", f"path={BASE}"} <= flags
        page = await console.http.get(f"{BASE}/", headers=(await console.login()))
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


async def test_the_console_is_served_on_the_admin_listener_only(tmp_path: Path) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=quiet_script()) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        assert console.service.config.service.admin_host == "127.0.0.1"  # the default
        assert console.url == f"http://127.0.0.1:{console.service.admin_port}"
        assert console.service.admin_port != console.service.port
        assert (await console.http.get(f"{BASE}/login")).status_code == 200
        headers = await console.login()
        assert (await console.http.get(f"{BASE}/", headers=headers)).status_code == 200
        # The probes and metrics listener (0.0.0.0 in production) knows nothing of it, not
        # even with a valid session.
        for method, path in console_routes(console):
            url = path.replace("{call_id}", "any").replace("{name}", "console.js")
            response = await console.probes.request(method, url, headers=headers)
            assert response.status_code == 404, (method, url, response.status_code)
        assert not [
            r for r in console.service.http.routes if isinstance(r, Mount) and r.path == BASE
        ]
        assert (await console.probes.get("/readyz")).status_code == 200


async def test_wrong_tokens_at_the_login_form_are_throttled_with_the_admin_api(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=quiet_script()) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        throttle = console.service.gate.throttle
        for _ in range(throttle.max_failures):
            wrong = await console.http.post(
                f"{BASE}/login", data={"operator": "Eve", "token": "guess-guess-guess-guess"}
            )
            assert wrong.status_code == 401
        assert throttle.failures == throttle.max_failures
        # The peer is now refused before its token is looked at, the right one included,
        # at the form and at the admin API alike (one throttle for the listener).
        right = await console.http.post(
            f"{BASE}/login", data={"operator": "Eve", "token": "test-admin-token-0123456789"}
        )
        assert right.status_code == 429 and "set-cookie" not in right.headers
        api = await console.http.get(
            "/calls", headers={"Authorization": "Bearer test-admin-token-0123456789"}
        )
        assert api.status_code == 429


async def test_actions_need_the_sessions_csrf_token_and_are_audited_with_the_operator(
    tmp_path: Path,
) -> None:
    async with (
        TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
        GeminiLiveEmulator(script=quiet_script(), burst_speed=1.0) as gemini,
        console_service(telco, gemini, tmp_path) as console,
    ):
        telco.place_call(CallerScript([Pause(30)]), caller=CALLER)
        ada = await console.login("Ada")
        bob = await console.login("Bob")
        call_id = await live_call_id(console, ada)
        bridged = console.service.app.runner.live[call_id]
        ada_csrf, bob_csrf = await console.csrf(ada), await console.csrf(bob)
        assert ada_csrf != bob_csrf
        end = f"{BASE}/calls/{call_id}/end"
        inject = f"{BASE}/calls/{call_id}/inject"
        refused = [
            await console.http.post(end, headers=ada),  # no token
            await console.http.post(end, headers={**ada, "X-CSRF-Token": "x" * 43}),
            await console.http.post(end, headers={**ada, "X-CSRF-Token": bob_csrf}),
            await console.http.post(end, headers=ada, data={"csrf": bob_csrf}),
            await console.http.post(  # right token, but sent by another site's page
                end, headers={**ada, "X-CSRF-Token": ada_csrf, "Origin": "https://evil.example"}
            ),
            await console.http.post(f"{BASE}/logout", headers=ada),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert bridged.outcome == "in_progress"
        assert not [e for e in bridged.record.entries if e.data.get("event") == "operator_action"]

        # With the token: the greeting over, an injected message is taken, and audited.
        await eventually(
            lambda: not bridged.agent_speaking and bridged.stats.first_agent_audio_s is not None,
            what="greeting over",
        )
        await eventually(lambda: not bridged.agent_speaking, what="quiet")
        taken = await console.http.post(
            inject, headers=ada, data={"csrf": ada_csrf, "text": "Your parcel ships today."}
        )
        assert taken.status_code == 200, taken.text
        # Right away again: the agent is speaking the message, so it is refused as such.
        again = await console.http.post(
            inject, headers={**ada, "X-CSRF-Token": ada_csrf}, data={"text": "And one more."}
        )
        assert (again.status_code, again.json()["code"]) == (
            409,
            "INJECT_MESSAGE_DURING_AGENT_SPEECH",
        )
        ended = await console.http.post(end, headers={**bob, "X-CSRF-Token": bob_csrf})
        assert ended.status_code == 200
        await eventually(lambda: call_id not in console.service.app.runner.live, what="ended")
        audits = [
            e.data for e in bridged.record.entries if e.data.get("event") == "operator_action"
        ]
        assert [(a["action"], a["by"], a["result"]) for a in audits] == [
            ("inject", "Ada", "taken"),
            ("inject", "Ada", "refused"),
            ("end", "Bob", "ending"),
        ]
        assert audits[1]["code"] == "INJECT_MESSAGE_DURING_AGENT_SPEECH"
        assert all(a["client"] == "127.0.0.1" for a in audits)
        assert bridged.record.outcome == "ended_by_operator"
        # The audit reached the shared store with the rest of the record.
        stored = await poll_until(
            lambda: console.store.get_call(call_id),
            lambda c: c is not None and c.ended_at is not None,
            what="the stored record",
        )
        assert stored is not None
        assert [
            e.data["by"] for e in stored.entries if e.data.get("event") == "operator_action"
        ] == [
            "Ada",
            "Ada",
            "Bob",
        ]


async def _number_views(console: Console, headers: dict[str, str], call_id: str) -> list[str]:
    """Every place the console shows a caller: live table, live stream, call page, history."""
    live = (await console.http.get(f"{BASE}/", headers=headers)).text
    stream = await sse_events(
        console.http, f"{BASE}/stream", headers, until=lambda ev: any(e[1] for e in ev)
    )
    page = await console.http.get(f"{BASE}/calls/{call_id}", headers=headers)
    assert page.status_code == 200
    return [live, str(stream), page.text]


def _gone(console: Console, call_id: str) -> Callable[[], bool]:
    return lambda: call_id not in console.service.app.runner.live


async def _history_views(console: Console, headers: dict[str, str], call_id: str) -> list[str]:
    async def listing_page() -> str:
        return (await console.http.get(f"{BASE}/history", headers=headers)).text

    # The store's writer commits within ~200 ms of the call's end.
    listing = await poll_until(listing_page, lambda text: call_id in text, what="history row")
    one = (await console.http.get(f"{BASE}/history/{call_id}", headers=headers)).text
    assert call_id in listing and call_id in one
    return [listing, one]


async def test_numbers_are_masked_everywhere_unless_the_tenant_shows_full_numbers(
    tmp_path: Path,
) -> None:
    for full in (False, True):
        async with (
            TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR) as telco,
            GeminiLiveEmulator(script=quiet_script()) as gemini,
            console_service(telco, gemini, tmp_path / str(full), full_numbers=full) as console,
        ):
            call = telco.place_call(CallerScript([Pause(60), HangUp()]), caller=CALLER)
            headers = await console.login()
            call_id = await live_call_id(console, headers)
            views = await _number_views(console, headers, call_id)
            csrf = {"X-CSRF-Token": await console.csrf(headers)}
            end = await console.http.post(
                f"{BASE}/calls/{call_id}/end", headers={**headers, **csrf}
            )
            assert end.status_code == 200
            await call.ended(timeout=30)
            await eventually(_gone(console, call_id), what="call over")
            views += await _history_views(console, headers, call_id)
            for view in views:
                assert (CALLER in view) is full, (full, view[:200])
                assert "1234" in view  # the last four digits are always shown
