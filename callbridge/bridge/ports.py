"""The two seams of a bridged call: the phone side and the model side.

Adapters implement these Protocols; ``callbridge.bridge.call`` depends on nothing else. Each method
documents which of our own exceptions (``callbridge.bridge.errors``) it may raise: vendor exceptions
never cross this boundary.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from callbridge.bridge.events import ModelEvent, ToolResult
from callbridge.bridge.speech import CallerActivity

if TYPE_CHECKING:  # callbridge.bridge.tools imports this module
    from callbridge.bridge.tools import ToolContext


class CallCommand(enum.StrEnum):
    """Call commands the model (through tools) or the bridge may issue."""

    ANSWER = "answer"
    CONNECT = "connect"
    WHISPER = "whisper"
    BARGE = "barge"
    SPY = "spy"
    DISCONNECT = "disconnect"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """The result of one call command, whichever SDK style produced it.

    ``error_code`` is the server's code (``CALL_UNANSWERED``, ``TIMEOUT``, ...) when ``ok`` is
    false. ``elapsed_s`` is how long the command took, for the call record.
    """

    command: CallCommand
    ok: bool
    error_code: str | None = None
    message: str = ""
    elapsed_s: float = 0.0


class CallPort(Protocol):
    """One live phone call, already answered."""

    @property
    def call_id(self) -> str: ...

    @property
    def caller(self) -> str: ...

    @property
    def callee(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    def caller_audio(self) -> AsyncIterator[bytes]:
        """Caller PCM at :attr:`sample_rate`; ends when the call is gone."""
        ...

    @property
    def end_reason(self) -> str:
        """Why caller audio ended: ``caller_hangup`` or ``telephony_lost``."""
        ...

    def on_call_error(self, handler: Callable[[str, str], None]) -> None:
        """Call ``handler(error_code, message)`` when the platform reports a call error."""
        ...

    async def write_audio(self, pcm: bytes) -> None:
        """Queue agent audio for the caller. Raises ``PlaybackFull`` or ``CallGone``."""
        ...

    async def buffered_bytes(self) -> int:
        """Agent audio written but not yet pulled by the server. Raises ``CallGone``."""
        ...

    async def clear_audio(self) -> int:
        """Drop unplayed agent audio here and at the server; returns bytes dropped locally.

        Waits for the server's acknowledgement, so never call it on the audio path.
        Raises ``CommandFailed`` or ``CallGone``.
        """
        ...

    async def command(
        self, command: CallCommand, *, ring_time_s: int | None = None
    ) -> CommandOutcome:
        """Run a call command. Raises ``CallGone`` only when the caller is gone."""
        ...


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A tool declaration for the model (JSON-schema parameters)."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    non_blocking: bool = True


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What a model session is opened with for one call."""

    call_id: str
    tenant: str
    system_instruction: str
    functions: Sequence[FunctionSpec] = ()
    input_rate: int = 16000
    caller: str = ""
    caller_activity: CallerActivity | None = field(default=None, compare=False)
    """The call's own caller-speech tracker, fed before each frame is sent: a session that
    needs to know whether the caller speaks reads it instead of measuring the audio again."""


class ModelSession(Protocol):
    """An open conversation with the model for one call.

    ``events()`` spans the whole conversation: implementations loop over per-turn receive
    calls and hide planned reconnections, so the iterator ends only when the session is
    over for good (it raises ``ModelUnavailable`` if it ended with an error).
    """

    @property
    def input_rate(self) -> int: ...

    @property
    def output_rate(self) -> int: ...

    async def send_audio(self, pcm: bytes) -> None: ...

    async def send_text(self, text: str) -> None:
        """Give the model a user text turn (greeting nudge, injected instruction)."""
        ...

    async def send_tool_result(self, result: ToolResult) -> None: ...

    async def send_context(self, role: Literal["user", "model"], text: str) -> None:
        """Add a turn with an explicit role to the model's context *without* ending the
        user's turn (``clientContent``, ``turnComplete`` false): the model does not answer it.
        Used to correct an interrupted reply (``callbridge.bridge.heard``)."""
        ...

    def bind_call(self, ctx: ToolContext) -> None:
        """The bridged call's tool context, once the call is bridged.

        A back end that runs tools itself (ADK) gives it to them so they act on this call;
        one whose tool calls come back as :class:`~callbridge.bridge.events.ToolCall` ignores it.
        """
        ...

    def events(self) -> AsyncIterator[ModelEvent]: ...


class ModelConnector(Protocol):
    """Opens model sessions; one connector serves every call of a tenant."""

    def open(self, request: SessionRequest) -> AbstractAsyncContextManager[ModelSession]:
        """Raises ``ModelUnavailable`` on entry when no session can be had."""
        ...
