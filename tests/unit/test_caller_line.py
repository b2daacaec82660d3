"""The caller's side of the line, without sockets: what reaches the model, and what the turn
machine hears about the caller, chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from callbridge.bridge import turns as t
from callbridge.bridge.caller_line import CallerLine, guarded_opening
from callbridge.bridge.config import AudioSettings
from callbridge.bridge.errors import CallGone
from callbridge.bridge.opening import OpeningSettings
from callbridge.bridge.outbound_line import LinePolicy, OutboundLine
from callbridge.bridge.playout import CallStats
from callbridge.bridge.record import CallRecord
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.warnings import CallWarner, WarningCode
from tests.kit import ManualClock, WarningList

RATE = 16000
FRAME = 640  # 20 ms at 16 kHz
LOUD = b"\x00\x40" * (FRAME // 2)  # int16 16384: voiced
QUIET = bytes(FRAME)


@dataclass
class Harness:
    """A CallerLine over in-memory ends: what it sends, what it feeds, what it warns."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(100.0))
    sink: WarningList = field(default_factory=WarningList)
    blocking: bool = False
    sent: list[bytes] = field(default_factory=list)
    fed: list[tuple[t.TurnEvent, float | None]] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)

    def line(
        self,
        *,
        opening: OpeningSettings | None = None,
        outbound: OutboundLine | None = None,
        call_rate: int = RATE,
        model_rate: int = RATE,
        frame_ms: int = 20,
    ) -> CallerLine:
        async def send(pcm: bytes) -> None:
            self.sent.append(pcm)

        warner = CallWarner(call_id="c", tenant="t", sink=self.sink, min_interval_s=0)
        return CallerLine(
            call_rate,
            send,
            model_rate=model_rate,
            audio=AudioSettings(call_rate=call_rate, frame_ms=frame_ms),
            stats=self.stats,
            warner=warner,
            activity=CallerActivity(call_rate, clock=self.clock),
            opening=opening or OpeningSettings(0.0),
            line=outbound,
            blocking=lambda: self.blocking,
            clock=self.clock,
            feed=lambda event, at: self.fed.append((event, at)),
        )

    def events(self) -> list[str]:
        return [type(event).__name__ for event, _ in self.fed]


@pytest.mark.parametrize(
    ("opening", "greeting", "outbound", "protect_s"),
    [
        (OpeningSettings(2.0), True, False, 2.0),  # inbound greeting: protected
        (OpeningSettings(2.0), False, False, 0.0),  # the caller speaks first: a "hi" must pass
        (OpeningSettings(2.0), True, True, 0.0),  # outbound: the outbound line's opening
        (None, True, False, 0.0),  # no guard configured
    ],
)
def test_only_an_inbound_greeting_is_protected(
    opening: OpeningSettings | None, greeting: bool, outbound: bool, protect_s: float
) -> None:
    assert guarded_opening(opening, greeting=greeting, outbound=outbound).protect_s == protect_s


@pytest.mark.parametrize(
    ("blocking", "sent"),
    [
        ("....", ["a", "b", "c", "d"]),
        (".BB.", ["a", "", "", "bcd"]),  # held while blocked, then released in order first
        ("BBBB", ["", "", "", ""]),  # nothing reaches the model while a BLOCKING call waits
        ("B.B.", ["", "ab", "", "cd"]),
    ],
)
def test_frames_are_held_while_a_blocking_tool_call_is_pending(
    blocking: str, sent: list[str]
) -> None:
    h = Harness()
    line = h.line()
    out = []
    for frame, state in zip("abcd", blocking, strict=True):
        h.blocking = state == "B"
        out.append(b"".join(line.gate(frame.encode())).decode())
    assert out == sent
    assert h.stats.caller_bytes_to_model == sum(map(len, sent))
    assert h.sink.warnings == []


def test_held_audio_is_bounded_oldest_first_with_a_warning() -> None:
    h = Harness(blocking=True)
    line = h.line()  # max_gated_caller_audio_s = 20 s: 1000 frames of 20 ms
    frames = [i.to_bytes(2, "little") * (FRAME // 2) for i in range(1002)]
    for frame in frames:
        assert line.gate(frame) == []
    assert [w.code for w in h.sink.warnings] == [WarningCode.CALLER_AUDIO_DROPPED] * 2
    assert line.held.dropped_bytes == 2 * FRAME
    h.blocking = False
    released = line.gate(b"next")
    assert released == [*frames[2:], b"next"], "the newest speech is kept, in order"


def test_speech_start_voice_and_stop_reach_the_machine_with_their_times() -> None:
    h = Harness()
    line = h.line()
    for _ in range(5):  # 100 ms voiced: speech starts at the fifth frame (min_voiced_s 0.1)
        line.take(LOUD)
        h.clock.now += 0.02
    assert h.events() == ["CallerVoiced"] * 4 + ["CallerStarted", "CallerVoiced"]
    voiced_at = [at for event, at in h.fed if isinstance(event, t.CallerVoiced)]
    assert voiced_at == pytest.approx([100.0, 100.02, 100.04, 100.06, 100.08])
    h.fed.clear()
    for _ in range(30):  # quiet past the 0.5 s hangover: one stop, at the activity's own time
        line.take(QUIET)
        h.clock.now += 0.02
    assert h.events() == ["CallerStopped"]
    stopped, at = h.fed[0]
    assert isinstance(stopped, t.CallerStopped) and at is not None and at >= 100.08 + 0.5
    assert h.stats.caller_frames == 35


def test_the_protected_opening_holds_a_short_hello_until_the_agent_has_spoken() -> None:
    h = Harness()
    line = h.line(opening=OpeningSettings(protect_s=2.0))
    line.perform(t.TurnStarted())
    assert line.take(LOUD) == [], "voiced audio is held during the opening"
    for _ in range(20):  # the run ends: the model gets the silence it stood for
        line.take(QUIET)
    line.perform(t.TurnEnded())
    assert line.opening.state == "open" and line.opening.muted_runs == 1
    assert line.take(LOUD) == [LOUD], "after the opening turn caller audio passes untouched"


def test_an_outbound_call_sends_nothing_while_the_line_is_being_classified() -> None:
    h = Harness()
    record = CallRecord("c", "t", "", "")
    line = h.line(outbound=OutboundLine(RATE, LinePolicy(opening_prompt="Hi."), record))
    assert [line.take(LOUD) for _ in range(10)] == [[]] * 10
    assert "CallerStarted" in h.events(), "the callee's speech is still tracked for the machine"


@pytest.mark.parametrize(
    ("call_rate", "model_rate", "frame_ms", "sizes"),
    [
        (16000, 16000, 20, {640}),  # the call's own rate and frames: passed through
        (16000, 16000, 40, {1280}),  # bigger model frames: two call frames each
    ],
)
def test_caller_audio_is_cut_into_the_model_frames(
    call_rate: int, model_rate: int, frame_ms: int, sizes: set[int]
) -> None:
    h = Harness()
    line = h.line(call_rate=call_rate, model_rate=model_rate, frame_ms=frame_ms)
    frames = [f for _ in range(10) for f in line.take(QUIET)]
    assert {len(f) for f in frames} == sizes
    assert sum(map(len, frames)) == 10 * FRAME


async def test_the_pump_sends_until_the_call_is_gone() -> None:
    h = Harness()
    line = h.line()

    async def chunks() -> AsyncIterator[bytes]:
        yield QUIET
        h.blocking = True
        yield LOUD
        h.blocking = False
        yield QUIET
        raise CallGone("hung up")

    await line.pump(chunks())
    assert h.sent == [QUIET, LOUD, QUIET]
    assert h.stats.caller_bytes_to_model == 3 * FRAME
