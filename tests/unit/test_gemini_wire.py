"""The Live API's hot messages as the bridge writes and reads them (adapters/gemini_live/wire.py).

Table tests of the codec alone; the same path runs against the emulator in every e2e test.
"""

from __future__ import annotations

import base64
import json

import pytest

from callbridge.adapters.gemini_live import wire
from callbridge.bridge.events import ModelAudio, TurnComplete

PCM = bytes(range(256)) * 5  # 1280 B, every byte value, so "+" and "/" both appear


def test_audio_frame_is_the_documented_realtime_input() -> None:
    frame = json.loads(wire.audio_frame(PCM, "audio/pcm;rate=16000"))
    audio = frame["realtimeInput"]["audio"]
    assert audio["mimeType"] == "audio/pcm;rate=16000"
    assert base64.b64decode(audio["data"], validate=True) == PCM


def _audio_message(data: str) -> str:
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    return json.dumps({"serverContent": {"modelTurn": {"parts": [part]}, "turnComplete": True}})


@pytest.mark.parametrize(
    "data",
    [
        base64.b64encode(PCM).decode(),
        base64.b64encode(PCM).decode().rstrip("="),  # padding left off
        base64.urlsafe_b64encode(PCM).decode(),  # the URL-safe alphabet
        base64.urlsafe_b64encode(PCM).decode().rstrip("="),
    ],
)
def test_model_audio_is_decoded_in_every_base64_form(data: str) -> None:
    for raw in (_audio_message(data), _audio_message(data).encode()):
        message = wire.parse(raw)
        assert message.events == [ModelAudio(PCM), TurnComplete("")]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', b"\xff\xfe"])
def test_a_frame_that_is_not_a_json_object_is_a_value_error(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        wire.parse(raw)


def test_snake_case_and_unknown_fields_are_read_as_the_protocol_intends() -> None:
    raw = json.dumps(
        {
            "server_content": {"turn_complete": True, "turn_complete_reason": "X"},
            "someFutureMessage": {"a": 1},
            "session_resumption_update": {"new_handle": "h1", "resumable": True},
        }
    )
    message = wire.parse(raw)
    assert message.events == [TurnComplete("X")]
    assert message.resumption == ("h1", True)
