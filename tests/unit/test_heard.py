"""What the caller heard of an interrupted turn, and how the model is told (table-tested)."""

from __future__ import annotations

import pytest

from callbridge.bridge.heard import (
    HeardTurn,
    Spoken,
    TurnText,
    correction,
    heard,
    telling,
)
from callbridge.bridge.models import capabilities


def _spoken() -> Spoken:
    """Four 0.5 s chunks, each followed by its words (the Live API's order)."""
    turn = TurnText()
    for words in ("Your order", " shipped", " yesterday and", " arrives Thursday."):
        turn.audio(0.5)
        turn.text(words)
    return turn.take()


@pytest.mark.parametrize(
    ("heard_s", "expected"),
    [
        (0.0, ""),
        (0.49, ""),  # the first words come with the end of the first chunk
        (0.5, "Your order"),
        (1.2, "Your order shipped"),
        (2.0, "Your order shipped yesterday and arrives Thursday."),
        (9.0, "Your order shipped yesterday and arrives Thursday."),  # capped at generated
    ],
)
def test_heard_words(heard_s: float, expected: str) -> None:
    turn = heard(_spoken(), heard_s)
    assert turn.heard == expected
    assert turn.generated == "Your order shipped yesterday and arrives Thursday."
    assert turn.generated_s == 2.0 and turn.heard_s == min(heard_s, 2.0)


def test_take_starts_a_new_turn() -> None:
    turn = TurnText()
    turn.audio(1.0)
    turn.text("Hi.")
    assert turn.take().generated == "Hi."
    assert turn.take() == Spoken((), 0.0)


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        ("gemini-3.8-live", True),
        ("models/gemini-3.8-live", True),
        ("gemini-3.8-live-extended-thinking", True),
        ("gemini-3.1-flash-live-preview", False),
        ("gemini-2.5-flash-native-audio-preview-12-2025", False),
        ("gemini-live-2.5-flash-native-audio", False),
    ],
)
def test_family_rule(model: str, accepts: bool) -> None:
    """The rule is the model table's (``callbridge.bridge.models``), on both providers."""
    assert capabilities(model).role_content_mid_session is accepts
    assert capabilities(model, "vertex").role_content_mid_session is accepts


@pytest.mark.parametrize(
    ("mode", "model", "expected"),
    [
        ("auto", "gemini-3.8-live", "model_role"),
        ("auto", "gemini-2.5-flash-native-audio-preview-12-2025", "off"),
        ("on", "gemini-2.5-flash-native-audio-preview-12-2025", "note"),
        ("on", "gemini-3.8-live", "model_role"),
        ("off", "gemini-3.8-live", "off"),
    ],
)
def test_telling(mode: str, model: str, expected: str) -> None:
    role_content = capabilities(model).role_content_mid_session
    assert telling(mode, role_content) == expected  # type: ignore[arg-type]


CUT = HeardTurn("Your order shipped", "Your order shipped yesterday.", 1.0, 2.0)


@pytest.mark.parametrize(
    ("how", "turn", "expected"),
    [
        ("model_role", CUT, ("model", "Your order shipped...")),
        ("model_role", HeardTurn("", "Your order shipped.", 0.0, 1.0), ("model", "...")),
        (
            "note",
            CUT,
            (
                "user",
                '(The caller interrupted you. They heard only: "Your order shipped". '
                'They did not hear: "yesterday.".)',
            ),
        ),
        ("off", CUT, None),
        ("model_role", HeardTurn("All of it.", "All of it.", 1.0, 1.0), None),  # all heard
    ],
)
def test_correction(how: str, turn: HeardTurn, expected: tuple[str, str] | None) -> None:
    assert correction(how, turn) == expected  # type: ignore[arg-type]
