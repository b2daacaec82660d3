"""Truthful barge-in: what the caller actually heard of an interrupted answer.

Gemini keeps the conversation on its side. When the caller cuts in, the model's context still
holds the whole answer it generated, so it goes on as if the caller had heard all of it ("as I
said, your refund is approved..."). Gemini has no ``conversation.item.truncate``; the bridge,
though, knows how much of the turn's agent audio the platform pulled before the clear was
acknowledged, and the output transcription of the turn. This module maps the one onto the
other and says how to tell the model:

- families that accept content with explicit roles for the whole session (the model table's
  ``role_content_mid_session``, gemini-3.8-live: ``clientContent`` with role ``model``,
  without ``turnComplete`` the server waits) get the truncated reply itself, as the model's
  own turn;
- other families get a short user-role note without ``turnComplete`` (opt-in:
  ``model.truthful_barge_in = "on"``).

Transcript pieces are placed on the turn's audio timeline by the audio received before each
piece arrived (the Live API sends a chunk's words with or just after the chunk). A piece is
heard when its position is within the audio the caller was played. Pure; table-tested in
``tests/unit/test_heard.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["user", "model"]
TruthfulMode = Literal["auto", "on", "off"]
Telling = Literal["model_role", "note", "off"]

MAX_PIECES: Final = 2000
"""Transcript pieces kept per turn (a bound; a spoken turn has a few hundred at most)."""


def telling(mode: TruthfulMode, role_content_mid_session: bool) -> Telling:
    """How an interrupted reply is corrected on the model's side, for this tenant and model.

    ``role_content_mid_session`` is the model table's field of that name
    (:mod:`callbridge.bridge.models`: gemini-3.8-live accepts ``clientContent`` with explicit
    roles for the whole session).
    """
    if mode == "off":
        return "off"
    if role_content_mid_session:
        return "model_role"
    return "note" if mode == "on" else "off"


@dataclass(frozen=True, slots=True)
class Spoken:
    """One turn's transcript pieces on its audio timeline, and all the audio generated."""

    pieces: tuple[tuple[float, str], ...]
    generated_s: float

    @property
    def generated(self) -> str:
        return "".join(text for _, text in self.pieces).strip()


class TurnText:
    """Collects the current agent turn's audio length and transcript pieces."""

    __slots__ = ("_audio_s", "_pieces")

    def __init__(self) -> None:
        self._audio_s = 0.0
        self._pieces: list[tuple[float, str]] = []

    def audio(self, seconds: float) -> None:
        self._audio_s += seconds

    def text(self, piece: str) -> None:
        if len(self._pieces) < MAX_PIECES:
            self._pieces.append((self._audio_s, piece))

    def take(self) -> Spoken:
        """The turn so far, and start a new one."""
        spoken = Spoken(tuple(self._pieces), self._audio_s)
        self._audio_s = 0.0
        self._pieces = []
        return spoken


@dataclass(frozen=True, slots=True)
class HeardTurn:
    heard: str
    generated: str
    heard_s: float
    generated_s: float


def heard_seconds(written_bytes: int, cleared_bytes: int | None, bytes_per_s: int) -> float:
    """How much of an interrupted turn the caller heard: the turn's audio written to the call
    before the barge-in, less what the clear dropped unplayed (``None``: the clear failed, so
    all of it may have played)."""
    played = written_bytes if cleared_bytes is None else max(0, written_bytes - cleared_bytes)
    return played / bytes_per_s


def heard(spoken: Spoken, heard_s: float) -> HeardTurn:
    """The words of ``spoken`` within the first ``heard_s`` seconds of its audio."""
    heard_s = max(0.0, min(heard_s, spoken.generated_s))
    words = "".join(text for at, text in spoken.pieces if at <= heard_s + 1e-6).strip()
    return HeardTurn(words, spoken.generated, heard_s, spoken.generated_s)


def correction(how: Telling, turn: HeardTurn) -> tuple[Role, str] | None:
    """What to add to the model's context (role, text), or ``None`` when nothing is owed."""
    if how == "off" or turn.heard == turn.generated:
        return None
    if how == "model_role":
        # The model's own turn, as the caller heard it; "..." marks where the caller cut in.
        return "model", (turn.heard + "...") if turn.heard else "..."
    rest = turn.generated[len(turn.heard) :].strip()
    return "user", (
        f'(The caller interrupted you. They heard only: "{turn.heard}". '
        f'They did not hear: "{rest}".)'
    )
