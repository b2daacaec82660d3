"""DNS fails in the middle of a call: the model connection drops and its host no longer
resolves. The bridge's reconnect attempts fail with a resolver error (a real ``gaierror`` from
the resolver boundary, ``socket.getaddrinfo``), and the call must end cleanly: hung up by the
bridge, with a warning saying why, the record finished, no task left behind. When DNS comes
back within the reconnect attempts, the call goes on.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause
from tests.faults.kit import agent_says, fault_stack, notices


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Resolver:
    """``socket.getaddrinfo`` that fails for ``localhost`` while ``broken`` is set."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.broken = False
        self.refused = 0

    def __call__(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if self.broken and host == "localhost":
            self.refused += 1
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)


def dropping_script() -> Script:
    return Script(
        greeting=Turn([agent_says(0.5, "Hello.")]),
        faults=[Fault.close(after_s=2.0, code=1011, on_connection=0)],
    )


async def test_dns_failure_mid_call_ends_the_call_cleanly_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    port = free_port()
    script = dropping_script()
    overrides = {"model": {"base_url": f"https://localhost:{port}", "max_reconnect_attempts": 3}}
    gemini = GeminiLiveEmulator(script, port=port)
    async with fault_stack(script, overrides, gemini=gemini) as fs:
        call = fs.stack.place_call(CallerScript([Pause(30)]))
        await call.answered(timeout=15)
        resolver.broken = True  # from now on the model's host does not resolve
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
        await asyncio.sleep(0)
        assert fs.idle()
    assert resolver.refused >= 1, "the reconnect really hit the resolver"
    assert emu.end_reason == "agent_disconnect", "the bridge hung up; the caller was not left"
    assert record.outcome not in ("in_progress", "caller_hangup")
    assert fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert len(gemini.sessions) == 1, "no connection was made while DNS was down"


async def test_dns_back_within_the_reconnect_attempts_keeps_the_call_going(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    port = free_port()
    script = dropping_script()
    overrides = {"model": {"base_url": f"https://localhost:{port}", "max_reconnect_attempts": 6}}
    gemini = GeminiLiveEmulator(script, port=port)
    async with fault_stack(script, overrides, gemini=gemini) as fs:
        call = fs.stack.place_call(CallerScript([Pause(6), HangUp()]))
        await call.answered(timeout=15)
        resolver.broken = True
        await asyncio.sleep(2.6)  # the drop happens at 2 s; the first attempts fail
        resolver.broken = False
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    assert resolver.refused >= 1
    assert "reconnected" in notices(record)
    assert emu.end_reason == "caller_hangup" and record.outcome == "caller_hangup"
