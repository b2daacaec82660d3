"""Dial requests: numbers, instruction templates, and what a platform code means."""

from __future__ import annotations

import pytest

from callbridge.bridge.errors import ConfigError
from callbridge.bridge.outbound import DialOutcome, check_number, fill_template, outcome_for_code


@pytest.mark.parametrize("number", ["+15551234567", "+442071838750", "+4915112345678"])
def test_e164_accepted(number: str) -> None:
    assert check_number(number) == number


@pytest.mark.parametrize(
    "number", ["15551234567", "+0155512345", "+1 555 123 4567", "+1555", "", "+1555123456789012"]
)
def test_not_e164_is_refused_naming_the_field(number: str) -> None:
    with pytest.raises(ConfigError, match=r"^rows\[3\]\.number: .* is not an E\.164"):
        check_number(number, "rows[3].number")


def test_template_filled() -> None:
    text = fill_template("Call {name} about {day}.", {"name": "Ada", "day": "Friday"})
    assert text == "Call Ada about Friday."


def test_missing_and_unknown_variables_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        fill_template("Call {name} about {day}.", {"name": "Ada", "time": "10:00"})
    message = str(info.value)
    assert "variables.day: missing" in message
    assert "variables.time: unknown" in message


def test_template_placeholders_must_be_plain_names() -> None:
    with pytest.raises(ConfigError, match="not a plain name"):
        fill_template("Call {0}.", {})


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("CALL_UNANSWERED", DialOutcome.NO_ANSWER),
        ("TIMEOUT", DialOutcome.NO_ANSWER),
        ("BUSY", DialOutcome.BUSY),
        ("busy", DialOutcome.BUSY),
        ("CALL_REJECTED", DialOutcome.REJECTED),
        ("DECLINED", DialOutcome.REJECTED),
        ("QUOTA_EXCEEDED", DialOutcome.FAILED),
        ("CHANNEL_NOT_CONFIGURED", DialOutcome.FAILED),
        ("OUTBOUND_OVERFLOW", DialOutcome.FAILED),
        (None, DialOutcome.FAILED),
        ("SOMETHING_NEW", DialOutcome.FAILED),
    ],
)
def test_outcome_for_code(code: str | None, outcome: DialOutcome) -> None:
    assert outcome_for_code(code) is outcome
