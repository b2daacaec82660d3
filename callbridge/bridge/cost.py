"""What a call cost: its token usage by modality times the model's price.

The record sums every usage message the model sent (``CallRecord.usage``). Gemini Live
reports the tokens of each turn, the context re-read included, and bills that sum: users
who reconciled their bills found "sum every per-turn snapshot" matched within ~3 %
(discuss.ai.google.dev t/173248; Google's Live API best-practices page says the context is
billed again on every turn). So the price applies to the summed counts as they are.

Usage keys are ``tokens_<direction>_<modality>`` (``tokens_prompt_audio``,
``tokens_response_text``...). A usage message without modality details only has
``prompt_tokens``/``response_tokens``; the part not covered by details is priced at the
audio rate, the higher one, so an estimate errs on the side of cost.

Thinking tokens (``tokens_response_thoughts``, Gemini 3.8's ``thoughtsTokenCount``) are
output the caller never hears, reported beside the response count rather than inside it; the
Gemini pricing page prices output "including thinking tokens", and thinking is text, so they
are charged at the output text rate and never count as covering the response total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callbridge.bridge.config import ModelPrice

THOUGHTS = "thoughts"
"""The modality name of thinking tokens in the record's usage keys."""

PER_TOKEN = 1e-6
"""Prices are per million tokens."""


@dataclass(frozen=True, slots=True)
class CallCost:
    usd: float
    by_part: dict[str, float]
    """Dollars by ``<direction>_<modality>`` (e.g. ``prompt_audio``)."""


def _rate(price: ModelPrice, direction: str, modality: str) -> float:
    if direction == "prompt":
        special = {"image": price.input_image, "video": price.input_video}.get(modality)
        if special is not None:
            return special
        return price.input_text if modality == "text" else price.input_audio
    return price.output_text if modality in ("text", THOUGHTS) else price.output_audio


def call_cost(usage: Mapping[str, int], price: ModelPrice) -> CallCost:
    """Dollars for ``usage`` (the record's summed counts) at ``price``."""
    by_part: dict[str, float] = {}
    detailed = {"prompt": 0, "response": 0}
    for key, tokens in usage.items():
        if not key.startswith("tokens_") or not isinstance(tokens, int):
            continue
        direction, _, modality = key.removeprefix("tokens_").partition("_")
        if direction not in detailed:
            continue  # e.g. cache or tool-use details, already inside the prompt count
        if modality != THOUGHTS:
            detailed[direction] += tokens
        part = f"{direction}_{modality or 'unknown'}"
        by_part[part] = by_part.get(part, 0.0) + tokens * _rate(price, direction, modality)
    for direction, total_key in (("prompt", "prompt_tokens"), ("response", "response_tokens")):
        rest = int(usage.get(total_key, 0)) - detailed[direction]
        if rest > 0:
            part = f"{direction}_unspecified"
            by_part[part] = rest * _rate(price, direction, "audio")
    dollars = {part: value * PER_TOKEN for part, value in by_part.items()}
    return CallCost(round(sum(dollars.values()), 8), {k: round(v, 8) for k, v in dollars.items()})


__all__ = ["CallCost", "call_cost"]
