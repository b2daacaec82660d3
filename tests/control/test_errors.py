"""The SDK error contract, translated in one place (``callbridge.adapters.telcoflow.errors``).

Unit tests with the SDK's own exception and result classes: both command-failure styles
(the documented family raises ``WSSCallCommandError``; telcoflow 1.0.0 returns a falsy
``CommandResult``) must give the same ``CommandOutcome``, and a gone caller must always be
``CallGone``, never an SDK exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import telcoflow

from callbridge.adapters.telcoflow import errors
from callbridge.bridge.errors import CallGone, CommandFailed, PlaybackFull
from callbridge.bridge.ports import CallCommand

CONNECT = CallCommand.CONNECT


async def returning(value: Any) -> Any:
    return value


async def raising(exc: BaseException) -> Any:
    raise exc


@pytest.mark.parametrize(
    ("code", "message"), [("CALL_UNANSWERED", "no answer after 30 s"), ("INTERNAL_ERROR", "boom")]
)
async def test_both_failure_styles_give_the_same_outcome(code: str, message: str) -> None:
    returned = await errors.run_command(
        CONNECT, returning(telcoflow.CommandResult(False, code, message))
    )
    raised = await errors.run_command(
        CONNECT,
        raising(
            telcoflow.WSSCallCommandError("connect failed", error_code=code, error_message=message)
        ),
    )
    for outcome in (returned, raised):
        assert (outcome.command, outcome.ok, outcome.error_code, outcome.message) == (
            CONNECT,
            False,
            code,
            message,
        )
        assert outcome.elapsed_s >= 0


async def test_timeouts_in_both_styles_are_timeout() -> None:
    returned = await errors.run_command(
        CONNECT, returning(telcoflow.CommandResult(False, "TIMEOUT", "No response received"))
    )
    raised = await errors.run_command(
        CONNECT, raising(telcoflow.WSSCallCommandTimeoutError("connect timed out"))
    )
    assert (returned.ok, returned.error_code) == (False, "TIMEOUT")
    assert (raised.ok, raised.error_code, raised.message) == (False, "TIMEOUT", "connect timed out")


async def test_a_failure_without_a_code_still_has_one() -> None:
    returned = await errors.run_command(CONNECT, returning(telcoflow.CommandResult(False)))
    raised = await errors.run_command(CONNECT, raising(telcoflow.WSSCallCommandError("refused")))
    assert returned.error_code == raised.error_code == "COMMAND_FAILED"
    assert raised.message == "refused"


@pytest.mark.parametrize("result", [telcoflow.CommandResult(True, payload={"x": 1}), None])
async def test_success_is_ok(result: Any) -> None:
    outcome = await errors.run_command(CallCommand.WHISPER, returning(result))
    assert (outcome.ok, outcome.error_code, outcome.message) == (True, None, "")


@pytest.mark.parametrize(
    "exc",
    [
        telcoflow.WSSCallClosedError(),
        telcoflow.WSSSessionError("Voice session is closed (call terminated)"),
        telcoflow.BufferClosedError("closed"),
        telcoflow.WSSCallError("Failed to open voice session"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_gone_caller_is_call_gone_for_every_command(exc: Exception) -> None:
    with pytest.raises(CallGone):
        await errors.run_command(CallCommand.DISCONNECT, raising(exc))


async def test_a_command_failing_because_the_call_ended_is_call_gone() -> None:
    # Pending commands are answered with a failure at hang-up (e.g. a ringing connect).
    with pytest.raises(CallGone):
        await errors.run_command(
            CONNECT, returning(telcoflow.CommandResult(False, "CALL_TERMINATED", "ended"))
        )
    with pytest.raises(CallGone):
        await errors.run_command(
            CONNECT,
            raising(telcoflow.WSSCallCommandError("x", error_code="CALL_TERMINATED")),
        )
    # Whatever the code, a failure on a call the SDK already marked TERMINATED.
    with pytest.raises(CallGone):
        await errors.run_command(
            CONNECT, returning(telcoflow.CommandResult(False, "OTHER")), ended=lambda: True
        )
    # A success is a success even if the call ended right after (disconnect does that).
    ok = await errors.run_command(
        CallCommand.DISCONNECT, returning(telcoflow.CommandResult(True)), ended=lambda: True
    )
    assert ok.ok


async def test_clear_failures_raise_command_failed_and_a_gone_caller_call_gone() -> None:
    assert await errors.clear_buffer(returning(25600)) == 25600
    with pytest.raises(CommandFailed) as failed:
        await errors.clear_buffer(
            raising(telcoflow.WSSCallCommandError("x", error_code="INTERNAL_ERROR"))
        )
    assert (failed.value.command, failed.value.error_code) == ("agent.interrupt", "INTERNAL_ERROR")
    with pytest.raises(CommandFailed) as timed_out:
        await errors.clear_buffer(raising(telcoflow.WSSCallCommandTimeoutError("late")))
    assert timed_out.value.error_code == "TIMEOUT"
    with pytest.raises(CallGone):
        await errors.clear_buffer(raising(telcoflow.WSSCallClosedError()))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (telcoflow.BufferFullError("full"), PlaybackFull),
        (telcoflow.BufferClosedError("closed"), CallGone),
        (telcoflow.WSSCallError("Failed to queue audio"), CallGone),
        (telcoflow.WSSCallClosedError(), CallGone),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else type(v).__name__,
)
async def test_send_audio_errors(exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected):
        await errors.write(raising(exc))


async def test_buffer_size_on_a_closed_call_is_call_gone() -> None:
    assert await errors.query(returning(640)) == 640
    with pytest.raises(CallGone):
        await errors.query(raising(telcoflow.WSSCallClosedError()))


def test_no_sdk_exception_class_is_left_untranslated() -> None:
    """Every ``WSSError`` a call operation can raise is caught by one of our clauses."""
    caught: list[Callable[[type[BaseException]], bool]] = [
        lambda cls: issubclass(cls, errors.GONE_ERRORS),
        lambda cls: issubclass(cls, telcoflow.WSSCallError),
        lambda cls: issubclass(cls, telcoflow.BufferFullError),
    ]
    for name in (
        "WSSCallClosedError",
        "WSSCallCommandError",
        "WSSCallCommandTimeoutError",
        "WSSSessionError",
        "BufferFullError",
        "BufferClosedError",
        "WSSCallError",
    ):
        cls = getattr(telcoflow, name)
        assert any(check(cls) for check in caught), name
