"""Outbound calls, the pure parts: what a dial request may say and what its result means.

Everything here is a decision without I/O, so it is table-tested (``tests/unit/test_outbound.py``):

- :func:`check_number`: E.164 or a :class:`~callbridge.bridge.errors.ConfigError` naming the field;
- :func:`fill_template`: per-call variables into the tenant's instruction template, refusing a
  missing or an unknown variable by name;
- :func:`outcome_for_code`: a platform error code (from ``session.create``, from the answer of
  our own leg, or from a ``call.error`` event) to one of the explicit :class:`DialOutcome`\\ s.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from callbridge.bridge.errors import ConfigError

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
"""ITU-T E.164: a plus, a country code that does not start with 0, at most 15 digits."""


class DialOutcome(enum.StrEnum):
    """How an outbound call ended, as the business system sees it."""

    ANSWERED = "answered"
    VOICEMAIL_LEFT = "voicemail_left"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    FAILED = "failed"


RETRYABLE = frozenset({DialOutcome.NO_ANSWER, DialOutcome.BUSY})
"""Outcomes a campaign dials again (after a back-off)."""

# Codes the platform may use for the callee's side. Telcoflow documents none of them except
# CALL_UNANSWERED (for ``connect``); the others are the emulator's choices and the usual SIP
# meanings (486 Busy Here, 603 Decline), accepted in their common spellings.
_BY_CODE: Mapping[str, DialOutcome] = {
    "CALL_UNANSWERED": DialOutcome.NO_ANSWER,
    "NO_ANSWER": DialOutcome.NO_ANSWER,
    "TIMEOUT": DialOutcome.NO_ANSWER,
    "BUSY": DialOutcome.BUSY,
    "CALL_BUSY": DialOutcome.BUSY,
    "USER_BUSY": DialOutcome.BUSY,
    "REJECTED": DialOutcome.REJECTED,
    "CALL_REJECTED": DialOutcome.REJECTED,
    "DECLINED": DialOutcome.REJECTED,
    "CALL_DECLINED": DialOutcome.REJECTED,
}

NOT_PLACED = frozenset({"AT_CAPACITY", "OUTBOUND_AT_CAPACITY", "NOT_CONNECTED"})
"""Refusals of our own bridge (full, or not connected): the call never reached the platform,
so a campaign row is put back without counting an attempt."""
RETRY_LATER = frozenset({"OUTBOUND_OVERFLOW"})
"""Platform refusals that are about load, not the row: a campaign retries them (an attempt)."""

REFUSALS = frozenset(
    {"QUOTA_EXCEEDED", "CHANNEL_NOT_CONFIGURED", "OUTBOUND_OVERFLOW", "FORBIDDEN", "UNAUTHORIZED"}
)
"""``session.create`` refusals: the platform would not place the call (a coded warning)."""


def outcome_for_code(code: str | None) -> DialOutcome:
    """The outcome a platform error code stands for; anything unknown is ``failed``."""
    return _BY_CODE.get((code or "").upper(), DialOutcome.FAILED)


def check_number(value: str, field_name: str = "to") -> str:
    """Return ``value`` if it is an E.164 number, else raise naming ``field_name``."""
    if not isinstance(value, str) or not E164.match(value):
        raise ConfigError(
            f"{field_name}: {value!r} is not an E.164 phone number (a '+', the country code "
            "and the number, digits only, e.g. +15551234567)"
        )
    return value


def template_fields(template: str) -> frozenset[str]:
    """The ``{name}`` placeholders of a ``str.format`` template."""
    names: set[str] = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(f"instruction template: placeholder {{{name}}} is not a plain name")
        names.add(name)
    return frozenset(names)


def fill_template(
    template: str, variables: Mapping[str, str], field_name: str = "variables"
) -> str:
    """Fill ``template``; a missing or unknown variable is refused with its name."""
    wanted = template_fields(template)
    missing = sorted(wanted - variables.keys())
    unknown = sorted(variables.keys() - wanted)
    problems = [
        f"{field_name}.{name}: missing (the instruction uses {{{name}}})" for name in missing
    ]
    problems += [
        f"{field_name}.{name}: unknown (the instruction has no {{{name}}})" for name in unknown
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    return template.format_map({k: str(v) for k, v in variables.items()})


@dataclass(frozen=True, slots=True)
class DialRequest:
    """One call to place. ``idempotency_key`` ties it to a campaign row (if any)."""

    to: str
    variables: Mapping[str, str] = field(default_factory=dict)
    instruction: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class DialResult:
    """What became of a :class:`DialRequest`."""

    to: str
    outcome: DialOutcome
    error_code: str | None = None
    call_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "to": self.to,
            "outcome": self.outcome.value,
            "error_code": self.error_code,
            "call_id": self.call_id,
            "detail": self.detail,
        }
