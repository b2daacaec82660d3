"""The telcoflow SDK's error contract, translated in one place.

Two SDK generations exist: telcoflow 1.0.0 returns a falsy ``CommandResult`` (with
``error_code``) from commands, while the family's documented API (``agentao_sdk``) raises
``WSSCallCommandError`` / ``WSSCallCommandTimeoutError``. Both become a
:class:`~callbridge.bridge.ports.CommandOutcome`. Exceptions that mean "the caller is gone" become
:class:`~callbridge.bridge.errors.CallGone`; a full send buffer becomes
:class:`~callbridge.bridge.errors.PlaybackFull`. A command that *fails because the call is over*
(the
caller hung up while it was pending, e.g. during a ringing ``connect``) is not a command
failure either: it becomes ``CallGone`` too, so nobody warns about it or answers the model
for a call that no longer exists. Nothing else from the SDK leaks into the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import telcoflow
import websockets

from callbridge.bridge.errors import CallGone, CommandFailed, PlaybackFull
from callbridge.bridge.ports import CallCommand, CommandOutcome

GONE_ERRORS: tuple[type[BaseException], ...] = (
    telcoflow.WSSCallClosedError,
    telcoflow.BufferClosedError,
    telcoflow.WSSSessionError,
    # The SDK lets the socket's own close escape from a command in flight when the caller
    # hangs up (seen from clear_send_audio_buffer under load).
    websockets.ConnectionClosed,
    # Any other call error: the voice socket could not be opened or was lost. Its command
    # failures (WSSCallCommandError and its timeout) are subclasses, caught before this.
    telcoflow.WSSCallError,
)
"""Exceptions after which the caller is unreachable (see the SDK's state table)."""


CALL_ENDED_CODES = frozenset({"CALL_TERMINATED"})
"""Command error codes that mean the call itself has ended. The platform answers commands
still pending at a hang-up with a failure; its code is not documented (the emulator uses
``CALL_TERMINATED``), so :func:`run_command` also asks the SDK whether the call is over."""


def _never() -> bool:
    return False


async def run_command(
    command: CallCommand, pending: Awaitable[Any], *, ended: Callable[[], bool] = _never
) -> CommandOutcome:
    """Await an SDK command and express its result, in either SDK style, as an outcome.

    ``ended`` tells whether the call is over (the SDK's TERMINATED state): a command that
    failed on an ended call raises ``CallGone`` instead of returning a failed outcome.
    """
    outcome = await _outcome(command, pending)
    if not outcome.ok and (outcome.error_code in CALL_ENDED_CODES or ended()):
        raise CallGone(f"{command.value}: the call ended ({outcome.error_code})")
    return outcome


async def _outcome(command: CallCommand, pending: Awaitable[Any]) -> CommandOutcome:
    started = time.monotonic()
    try:
        result = await pending
    except telcoflow.WSSCallCommandTimeoutError as exc:
        return CommandOutcome(command, False, "TIMEOUT", str(exc), time.monotonic() - started)
    except telcoflow.WSSCallCommandError as exc:
        return CommandOutcome(
            command,
            False,
            getattr(exc, "error_code", None) or "COMMAND_FAILED",
            getattr(exc, "error_message", None) or str(exc),
            time.monotonic() - started,
        )
    except GONE_ERRORS as exc:
        raise CallGone(f"{command.value}: {type(exc).__name__}: {exc}") from exc
    elapsed = time.monotonic() - started
    if result is None or bool(result):
        return CommandOutcome(command, True, None, "", elapsed)
    return CommandOutcome(
        command,
        False,
        getattr(result, "error_code", None) or "COMMAND_FAILED",
        getattr(result, "error_message", None) or "",
        elapsed,
    )


async def clear_buffer(pending: Awaitable[Any]) -> int:
    """``clear_send_audio_buffer()``: raises on failure in 1.0.0; becomes CommandFailed."""
    try:
        cleared = await pending
    except telcoflow.WSSCallCommandTimeoutError as exc:
        raise CommandFailed("agent.interrupt", "TIMEOUT", str(exc)) from exc
    except telcoflow.WSSCallCommandError as exc:
        raise CommandFailed(
            "agent.interrupt",
            getattr(exc, "error_code", None),
            getattr(exc, "error_message", None) or str(exc),
        ) from exc
    except GONE_ERRORS as exc:
        raise CallGone(f"agent.interrupt: {exc}") from exc
    return int(cleared) if isinstance(cleared, int) else 0


@contextmanager
def write_errors() -> Iterator[None]:
    """``send_audio()``'s exceptions (full buffer, gone caller) as ours."""
    try:
        yield
    except telcoflow.BufferFullError as exc:
        raise PlaybackFull(str(exc)) from exc
    except GONE_ERRORS as exc:
        raise CallGone(f"send_audio: {exc}") from exc


async def write(pending: Awaitable[None]) -> None:
    """``send_audio()``: full buffer and gone caller, as our exceptions."""
    with write_errors():
        await pending


async def query(pending: Awaitable[int]) -> int:
    """``get_send_audio_buffer_size()``: a gone caller as CallGone."""
    try:
        return await pending
    except GONE_ERRORS as exc:
        raise CallGone(f"buffer size: {exc}") from exc
