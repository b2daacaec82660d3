"""Caller privacy: transcript redaction, and the key that finds one caller's calls to erase.

Redaction runs in :meth:`callbridge.bridge.record.CallRecord.transcript`, before a line reaches any
listener, so the database, traces, the console and exports only ever see the redacted text.
It works on the text the model's transcription produced: digits it wrote as digits. A card
number the transcription spelled out in words ("four one one one ...") is not recognised.

* card numbers: 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn
  check (so order numbers and the like are left alone) -> ``[card]``;
* phone numbers: 7 to 15 digits with an optional ``+`` and the usual separators -> ``[phone]``;
* e-mail addresses -> ``[email]``.

Phone numbers are stored masked (last four digits) unless a tenant keeps them in full, so
erasure cannot search by the number itself. Each call row carries ``caller_key``: an
HMAC-SHA256 of the caller's digits under ``CALLBRIDGE_CALLER_KEY_SECRET`` (set it, and keep
it, for a key that cannot be reversed by trying every number; without it the digest is
unkeyed and only pseudonymous).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

SECRET_ENV = "CALLBRIDGE_CALLER_KEY_SECRET"

_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{5,}\d(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces what the tenant chose to keep out of stored and exported transcripts."""

    cards: bool = True
    phones: bool = False
    emails: bool = False

    @property
    def active(self) -> bool:
        return self.cards or self.phones or self.emails

    def __call__(self, text: str) -> str:
        if self.emails:
            text = _EMAIL.sub("[email]", text)
        if self.cards:
            text = _CARD.sub(_card, text)
        if self.phones:
            text = _PHONE.sub(_phone, text)
        return text


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[phone]" if 7 <= len(digits) <= 15 else match.group(0)


def caller_key(number: str, secret: str | None = None) -> str:
    """The erasure lookup key of a phone number (its digits; ``+`` and separators ignored)."""
    return _key(number, secret if secret is not None else os.environ.get(SECRET_ENV, ""))


@functools.lru_cache(maxsize=4096)
def _key(number: str, secret: str) -> str:
    # Cached: the store computes it for every entry it queues, on the call's loop.
    digits = re.sub(r"\D", "", number).encode()
    if secret:
        return hmac.new(secret.encode(), digits, hashlib.sha256).hexdigest()
    return hashlib.sha256(b"callbridge-caller:" + digits).hexdigest()


__all__ = ["SECRET_ENV", "Redactor", "caller_key", "luhn_ok"]
