"""Regenerate the speech assets in this folder (run once by hand, never at test time).

The emulators need short, real speech so that energy VAD, barge-in and resampling are exercised
with realistic signals rather than tones. Caller phrases are 16 kHz (what a bridge sends to
Gemini), agent phrases 24 kHz (what Gemini Live sends back). Caller and agent use different
espeak-ng voices so a listener (and a test) can tell the legs apart.

Requires the `espeak-ng` binary (`apt-get install -y espeak-ng`). Usage::

    .venv/bin/python emulators/assets/make_assets.py [NAME ...]
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import soxr

HERE = Path(__file__).resolve().parent
CALLER_VOICE = "en-us+m3"
AGENT_VOICE = "en-gb+f3"
CALLER_RATE = 16000
AGENT_RATE = 24000
SILENCE_RMS = 200.0  # int16 RMS below which a 10 ms window counts as silence
KEEP_S = 0.04  # silence kept at each end (the brief allows at most 50 ms)

PHRASES: dict[str, tuple[str, int, str]] = {
    "caller_greeting": (CALLER_VOICE, CALLER_RATE, "Hello, I'd like to check on my order."),
    "caller_question": (CALLER_VOICE, CALLER_RATE, "Can you tell me when it will arrive?"),
    "caller_bargein": (
        CALLER_VOICE,
        CALLER_RATE,
        "Wait, sorry, actually I need to talk to a person.",
    ),
    "caller_bye": (CALLER_VOICE, CALLER_RATE, "Thank you, goodbye."),
    "agent_greeting": (
        AGENT_VOICE,
        AGENT_RATE,
        "Hello, thanks for calling Acme. How can I help you today?",
    ),
    "agent_answer_long": (
        AGENT_VOICE,
        AGENT_RATE,
        "Your order shipped yesterday with express delivery, and it should arrive on "
        "Thursday before noon. You will get a tracking link by email.",
    ),
    "agent_transfer": (AGENT_VOICE, AGENT_RATE, "Let me connect you to a colleague."),
    "agent_unanswered": (
        AGENT_VOICE,
        AGENT_RATE,
        "I'm sorry, nobody is available right now. Let me try again.",
    ),
    "agent_farewell": (AGENT_VOICE, AGENT_RATE, "Thank you for calling, goodbye."),
    # Outbound calls: the callee, a mailbox greeting (its own voice) and the calling agent.
    "callee_hello": (CALLER_VOICE, CALLER_RATE, "Hello?"),
    "callee_confirm": (CALLER_VOICE, CALLER_RATE, "Yes, that's fine, I'll be there."),
    "voicemail_greeting": (
        "en-us+f2",
        CALLER_RATE,
        "Hi, you have reached the voicemail of Ada Lovelace. I can not take your call right "
        "now. Please leave your name and number after the tone.",
    ),
    "agent_reminder": (
        AGENT_VOICE,
        AGENT_RATE,
        "Hi, this is Acme Dental calling to remind you of your appointment tomorrow at ten. "
        "Can you still make it?",
    ),
    "agent_voicemail": (
        AGENT_VOICE,
        AGENT_RATE,
        "Hello, this is Acme Dental with a reminder of your appointment tomorrow at ten. "
        "Please call us back if you need to reschedule. Goodbye.",
    ),
    "agent_confirmed": (AGENT_VOICE, AGENT_RATE, "Great, you're all set. Goodbye."),
}


def synthesize(voice: str, text: str) -> tuple[np.ndarray, int]:
    """Run espeak-ng and return (int16 samples, sample rate)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "165", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2"), rate


def trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading/trailing silence down to KEEP_S so VAD timing in tests is predictable."""
    win = rate // 100
    n = len(samples) // win
    frames = samples[: n * win].astype(np.float32).reshape(n, win)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    voiced = np.flatnonzero(rms > SILENCE_RMS)
    keep = int(KEEP_S * rate)
    start = max(0, int(voiced[0]) * win - keep)
    end = min(len(samples), (int(voiced[-1]) + 1) * win + keep)
    return samples[start:end]


def main(only: list[str]) -> None:
    """Regenerate every phrase, or only the ones named (the others stay byte-identical)."""
    manifest: dict[str, dict[str, object]] = (
        json.loads((HERE / "manifest.json").read_text()) if only else {}
    )
    for name, (voice, rate, text) in PHRASES.items():
        if only and name not in only:
            continue
        samples, src_rate = synthesize(voice, text)
        resampled = soxr.resample(samples.astype(np.float32), src_rate, rate)
        pcm = np.clip(np.round(resampled), -32768, 32767).astype("<i2")
        pcm = trim(pcm, rate)
        (HERE / f"{name}.pcm").write_bytes(pcm.tobytes())
        manifest[name] = {"rate": rate, "text": text}
        print(f"{name}: {len(pcm) / rate:.2f} s")
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
