"""What the emulated model says and does: scripts, turns, steps and injected faults.

A script is data, not code, so a test reads as a conversation: one `Turn` per user turn, each a
list of steps the emulated model performs in order. Faults live on the script because they are
part of the scenario under test ("the server sends goAway 5 s into every connection").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from callbridge.emulators.voices import Phrase

__all__ = [
    "OUTPUT_RATE",
    "CallTool",
    "Fault",
    "FaultKind",
    "Pause",
    "Script",
    "Speak",
    "Step",
    "Turn",
]

OUTPUT_RATE = 24000
"""Gemini Live output audio is always PCM16 mono at 24 kHz."""


@dataclass(frozen=True, slots=True)
class Speak:
    """Model speech: 24 kHz s16le mono PCM plus the words it says (for outputTranscription)."""

    pcm: bytes
    text: str

    def __post_init__(self) -> None:
        if len(self.pcm) % 2:
            raise ValueError("Speak.pcm must be whole 16-bit samples (even length)")

    @property
    def duration_s(self) -> float:
        """Playback length at 24 kHz."""
        return len(self.pcm) / (2 * OUTPUT_RATE)

    @classmethod
    def phrase(cls, phrase: Phrase) -> Speak:
        """Build from a committed asset; agent assets are already 24 kHz."""
        if phrase.rate != OUTPUT_RATE:
            raise ValueError(f"model speech must be {OUTPUT_RATE} Hz, phrase is {phrase.rate} Hz")
        return cls(pcm=phrase.pcm, text=phrase.text)


@dataclass(frozen=True, slots=True)
class CallTool:
    """A function call; the turn waits for the matching toolResponse before going on."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    """Model silence inside a turn (nothing is sent), e.g. thinking time before a tool call."""

    seconds: float

    def __post_init__(self) -> None:
        if not (self.seconds >= 0 and math.isfinite(self.seconds)):
            raise ValueError("Pause.seconds must be a finite number >= 0")


Step = Speak | CallTool | Pause


@dataclass(frozen=True, slots=True)
class Turn:
    """One model turn, played in response to one user turn.

    `input_transcript` is what the server "heard" the caller say (sent as
    `serverContent.inputTranscription` before the model's reply); None sends none.
    """

    steps: Sequence[Step] = ()
    input_transcript: str | None = None


FaultKind = Literal[
    "go_away",
    "close",
    "reject_resume",
    "turn_without_audio",
    "stop_pongs",
    "raw_frame",
    "oversized",
    "slow_setup",
    # Silent failures seen on phone lines (peers-2026.md), each on one script turn:
    "response_rejected",
    "quiet_audio",
    "phantom_interrupt",
    "cut_mid_sentence",
    "tone",
]


@dataclass(frozen=True, slots=True)
class Fault:
    """A server misbehaviour to inject; build them with the class methods.

    Timed faults count `after_s` from the moment the connection's setup was accepted. By default
    they fire on every connection of the conversation (as a real ~10 min connection cap would);
    `on_connection=k` limits one to the k-th connection (0 = the first, 1 = the first resume...).
    """

    kind: FaultKind
    after_s: float = 0.0
    time_left_s: float = 2.0
    code: int = 1011
    reason: str = ""
    turn_index: int = -1
    on_connection: int | None = None
    times: int = 1
    payload: str = ""
    size_bytes: int = 0
    delay_s: float = 0.0
    amount: float = 0.0

    @classmethod
    def go_away(
        cls, after_s: float, time_left_s: float = 2.0, *, on_connection: int | None = None
    ) -> Fault:
        """Send `goAway{timeLeft}`; close 1011 "Deadline expired..." if the client stays on."""
        return cls("go_away", after_s=after_s, time_left_s=time_left_s, on_connection=on_connection)

    @classmethod
    def close(
        cls,
        after_s: float,
        code: int = 1011,
        reason: str = "Internal error encountered.",
        *,
        on_connection: int | None = None,
    ) -> Fault:
        """Close the socket with `code`/`reason` (1006 drops TCP without a close frame)."""
        return cls("close", after_s=after_s, code=code, reason=reason, on_connection=on_connection)

    @classmethod
    def reject_resume(cls, times: int = 1) -> Fault:
        """The next `times` resume attempts of the conversation fail with close 1007."""
        return cls("reject_resume", times=times)

    @classmethod
    def turn_without_audio(cls, turn_index: int) -> Fault:
        """Script turn `turn_index` (0-based) yields generationComplete+turnComplete, no audio."""
        return cls("turn_without_audio", turn_index=turn_index)

    @classmethod
    def stop_pongs(cls, after_s: float = 0.0, *, on_connection: int | None = None) -> Fault:
        """Stop answering WebSocket pings, so the client's keepalive times out."""
        return cls("stop_pongs", after_s=after_s, on_connection=on_connection)

    @classmethod
    def raw_frame(
        cls, after_s: float, payload: str = "{not json", *, on_connection: int | None = None
    ) -> Fault:
        """Send `payload` verbatim as one frame: malformed JSON, a non-object, an unknown key.

        The real service has never been seen doing this; it models a corrupting proxy or a
        protocol change the client does not know yet (google-genai raises on such frames).
        """
        return cls("raw_frame", after_s=after_s, payload=payload, on_connection=on_connection)

    @classmethod
    def oversized(
        cls, after_s: float, size_bytes: int, *, on_connection: int | None = None
    ) -> Fault:
        """Send one valid `serverContent` frame of about `size_bytes` (an outputTranscription).

        websockets clients refuse frames over their `max_size` (1 MiB by default) and fail
        the connection with 1009.
        """
        if size_bytes < 64:
            raise ValueError("Fault.oversized needs size_bytes >= 64")
        return cls("oversized", after_s=after_s, size_bytes=size_bytes, on_connection=on_connection)

    @classmethod
    def slow_setup(cls, delay_s: float, *, on_connection: int | None = None) -> Fault:
        """Hold `setupComplete` for `delay_s` (a slow or overloaded backend while reconnecting)."""
        if delay_s < 0:
            raise ValueError("Fault.slow_setup needs delay_s >= 0")
        return cls("slow_setup", delay_s=delay_s, on_connection=on_connection)

    # ── Silent failures (played by ``symptoms.py``); each applies to script turn ``turn_index``.

    @classmethod
    def response_rejected(cls, turn_index: int) -> Fault:
        """The turn sends no audio and ends with turnComplete reason RESPONSE_REJECTED."""
        return cls("response_rejected", turn_index=turn_index)

    @classmethod
    def quiet_audio(cls, turn_index: int, gain: float = 0.001) -> Fault:
        """The turn's audio is scaled by ``gain`` (near-zero amplitude); transcripts unchanged."""
        return cls("quiet_audio", turn_index=turn_index, amount=gain)

    @classmethod
    def phantom_interrupt(cls, turn_index: int, after_s: float = 1.0) -> Fault:
        """``after_s`` into the turn's speech the server sends ``interrupted`` though nobody
        spoke, then stays silent until the next user turn."""
        return cls("phantom_interrupt", turn_index=turn_index, amount=after_s)

    @classmethod
    def cut_mid_sentence(cls, turn_index: int, fraction: float = 0.5) -> Fault:
        """The turn's speech stops at ``fraction`` (audio and words) and ``turnComplete``
        follows without ``generationComplete``."""
        return cls("cut_mid_sentence", turn_index=turn_index, amount=fraction)

    @classmethod
    def tone(cls, turn_index: int, seconds: float = 4.0) -> Fault:
        """The turn's speech is replaced by ``seconds`` of a steady 1 kHz tone, no transcript."""
        return cls("tone", turn_index=turn_index, amount=seconds)


@dataclass(frozen=True, slots=True)
class Script:
    """A conversation: turns consumed in order, one per user turn end.

    `greeting` plays for the first text / client_content (the bridge's nudge) or, with
    `greet_on_connect`, right after setupComplete; once any scripted turn has run it is skipped.
    Once the turns run out, `fallback` plays for every further user turn; with no fallback the
    model answers with an empty turn (generationComplete + turnComplete, no audio), which keeps
    the protocol moving silently.
    """

    turns: Sequence[Turn] = ()
    greeting: Turn | None = None
    greet_on_connect: bool = False
    faults: Sequence[Fault] = ()
    fallback: Turn | None = None

    def faults_of(self, kind: FaultKind) -> list[Fault]:
        """The faults of one kind, in script order."""
        return [f for f in self.faults if f.kind == kind]
