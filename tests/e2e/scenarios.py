"""Conversation building blocks shared by the end-to-end tests, the demo and the benchmark."""

from __future__ import annotations

from callbridge.emulators.gemini_live import Speak
from callbridge.emulators.telcoflow import resample_pcm
from callbridge.emulators.voices import load_phrase


def caller_pcm(name: str, rate: int) -> bytes:
    """A committed caller phrase at the call's sample rate."""
    phrase = load_phrase(name)
    return resample_pcm(phrase.pcm, phrase.rate, rate)


def agent(name: str) -> Speak:
    return Speak.phrase(load_phrase(name))
