"""The emulators' per-frame helpers: the fast paths give exactly what the plain ones gave."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

from callbridge.emulators.energy import slice_mean_squares
from callbridge.emulators.gemini_live.protocol import (
    ProtocolError,
    decode_b64,
    parse_pcm_mime,
    snake_keys,
)
from callbridge.emulators.telcoflow.pcm import nonsilent_seconds


@pytest.mark.parametrize("samples", [0, 1, 319, 320, 321, 640, 960, 3200])
def test_slice_mean_squares_matches_the_plain_formula(samples: int) -> None:
    rng = np.random.default_rng(samples)
    pcm = rng.integers(-32768, 32767, samples, dtype=np.int16)
    got = slice_mean_squares(pcm, 320)
    whole = samples // 320
    want = [
        float(np.mean(pcm[i * 320 : (i + 1) * 320].astype(np.float64) ** 2)) for i in range(whole)
    ]
    assert got == pytest.approx(want, rel=1e-5)


def test_nonsilent_seconds_counts_voiced_slices_and_a_voiced_tail() -> None:
    loud = (np.ones(320) * 1000).astype("<i2").tobytes()  # RMS 1000 > 200
    quiet = (np.ones(320) * 100).astype("<i2").tobytes()  # RMS 100
    assert nonsilent_seconds(loud + quiet + loud, 16000) == pytest.approx(0.04)
    assert nonsilent_seconds(loud + loud[:160], 16000) == pytest.approx(0.02 + 80 / 16000)
    assert nonsilent_seconds(quiet + quiet[:160], 16000) == 0.0
    assert nonsilent_seconds(b"\x01", 16000) == 0.0


PCM = os.urandom(642)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(PCM).decode(),
        base64.urlsafe_b64encode(PCM).decode(),
        base64.b64encode(PCM).decode().rstrip("="),
        base64.urlsafe_b64encode(PCM).decode().rstrip("="),
        base64.b64encode(PCM).decode().encode(),  # bytes in
    ],
    ids=["standard", "urlsafe", "standard-unpadded", "urlsafe-unpadded", "bytes"],
)
def test_decode_b64_takes_either_alphabet_with_or_without_padding(text: str | bytes) -> None:
    assert decode_b64(text) == PCM


def test_decode_b64_takes_a_mix_of_alphabets_as_the_real_service_does() -> None:
    mixed = base64.b64encode(b"\xfb\xff\xbf" * 4).decode()  # "+/+/" ...
    as_urlsafe = mixed[:8].replace("+", "-").replace("/", "_") + mixed[8:]
    assert decode_b64(as_urlsafe) == b"\xfb\xff\xbf" * 4


@pytest.mark.parametrize("bad", ["abcde", "ab!d", "a===", "YWJj\x00"])
def test_decode_b64_refuses_what_is_not_base64_with_1007(bad: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_b64(bad)
    assert caught.value.code == 1007


@pytest.mark.parametrize(
    ("mime", "rate"),
    [
        ("audio/pcm;rate=16000", 16000),
        ("audio/pcm", 16000),
        ("AUDIO/PCM; Rate=8000", 8000),
        ("image/jpeg", None),
    ],
)
def test_parse_pcm_mime(mime: str, rate: int | None) -> None:
    assert parse_pcm_mime(mime) == rate
    assert parse_pcm_mime(mime) == rate  # the cached answer is the same


@pytest.mark.parametrize(
    "mime", [None, "", ["audio/pcm"], {"a": 1}, "audio/wav", "audio/pcm;rate=x"]
)
def test_parse_pcm_mime_refuses_bad_values_with_1007(mime: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_pcm_mime(mime)
    assert caught.value.code == 1007


def test_snake_keys_renames_one_level_only() -> None:
    body = {"mimeType": "audio/pcm", "data": "AA==", "audioStreamEnd": {"innerKey": 1}}
    assert snake_keys(body) == {
        "mime_type": "audio/pcm",
        "data": "AA==",
        "audio_stream_end": {"innerKey": 1},
    }
