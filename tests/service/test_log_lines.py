"""Each log line leaves the process in one ``write``.

With ``service.workers`` > 1 the supervisor and every worker share one stderr (a pipe to the
container runtime), and the image sets ``PYTHONUNBUFFERED=1``, which makes ``sys.stderr``
write through on every call. ``print()`` writes the text and then the newline, two calls: two
processes logging at the same instant (both workers seeing their supervisor go, say) then
produce ``{...}{...}`` and an empty line, which no log collector can parse. One ``write`` per
line is atomic on a pipe up to ``PIPE_BUF`` (4096 bytes).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from callbridge.service.logs import configure_logging


class WriteRecorder(io.RawIOBase):
    """A raw stream that keeps each ``write`` call (as the kernel would see them)."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.calls.append(bytes(data))
        return len(data)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The logging configuration as it was before the test."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_every_log_line_is_one_write_even_when_stderr_is_unbuffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.stderr as PYTHONUNBUFFERED=1 makes it: write-through, no buffer. (Set here, not in
    # a fixture: pytest puts its own capture back on sys.stderr when the test body starts.)
    recorder = WriteRecorder()
    stream = io.TextIOWrapper(recorder, encoding="utf-8", write_through=True)  # type: ignore[type-var]
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("json")
    log = structlog.get_logger("callbridge.test")
    log.warning("supervisor_gone", worker=1)
    logging.getLogger("some.sdk").warning("from the standard library")

    calls = recorder.calls
    assert len(calls) == 2, calls
    assert all(call.endswith(b"\n") and call.count(b"\n") == 1 for call in calls), calls
    assert json.loads(calls[0])["event"] == "supervisor_gone"
    assert json.loads(calls[1])["event"] == "from the standard library"
