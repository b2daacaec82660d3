"""Recording files: one stereo FLAC (or WAV) per call, written as the call goes, and a purge.

:class:`CallRecorder` owns one call's :class:`~callbridge.bridge.recording.RecordingTap` and its
writer
task. The writer takes queued audio in batches, lays it out with a
:class:`~callbridge.bridge.recording.StereoTimeline` and appends it to the file with ``soundfile``
(libsndfile) in a worker thread, so the disk never blocks the event loop and memory stays
flat however long the call lasts. The file is written as ``<name>.part`` and renamed when
the call ends, so a crash leaves a partial file that is visibly partial (and still purged).

:func:`purge_expired` deletes recordings older than the retention; :func:`purge_forever`
runs it on an interval in the app's TaskGroup.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import structlog

from callbridge.bridge.config import RecordingSettings
from callbridge.bridge.recording import RecordingTap, StereoTimeline

log = structlog.get_logger("callbridge.recording")

BATCH_EVENTS = 100
"""Queued chunks taken per write (about two seconds of caller audio)."""
SUFFIXES = (".flac", ".wav", ".part")


def recording_path(settings: RecordingSettings, tenant: str, call_id: str, when: float) -> Path:
    day = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)
    return settings.directory / tenant / day / f"{safe}.{settings.format}"


class CallRecorder:
    """One call's recording: ``tap`` goes into the call port, :meth:`run` writes the file."""

    def __init__(
        self, settings: RecordingSettings, *, tenant: str, call_id: str, sample_rate: int
    ) -> None:
        self.settings = settings
        self.rate = sample_rate
        frames_per_s = 50  # the platform's 20 ms frames; agent writes are fewer, larger
        self.tap = RecordingTap(max_items=int(settings.queue_s * frames_per_s))
        self.path = recording_path(settings, tenant, call_id, time.time())
        self._timeline = StereoTimeline(sample_rate)
        self.frames = 0
        self.saved: dict[str, Any] | None = None
        """What the record links to, once the file is complete."""
        self.failed: str | None = None

    async def run(self) -> None:
        """Write until the tap is closed and drained, then finish the file.

        A recording that cannot be written (no space, no permission) never ends the call: the
        error is logged and kept in ``failed``, the tap stops queueing, and the call goes on.
        """
        try:
            await self._record()
        except (OSError, RuntimeError, soundfile.SoundFileError) as error:
            self.failed = f"{type(error).__name__}: {error}"
            self.tap.close()
            log.error("recording_failed", path=str(self.path), error=self.failed)

    async def _record(self) -> None:
        part = self.path.with_suffix(self.path.suffix + ".part")
        out = await asyncio.to_thread(self._open, part)
        try:
            while True:
                await self.tap.ready.wait()
                batch = self.tap.take(BATCH_EVENTS)
                if not batch and self.tap.closed:
                    break
                pcm = b"".join(self._timeline.apply(event) for event in batch)
                if pcm:
                    await asyncio.to_thread(self._write, out, pcm)
            await asyncio.to_thread(self._write, out, self._timeline.finish())
        finally:
            # Cancelled or not, the file is closed (a short, bounded flush of the encoder).
            out.close()
        await asyncio.to_thread(part.rename, self.path)
        self.saved = {
            "uri": self.path.resolve().as_uri(),
            "format": self.settings.format,
            "seconds": round(self.frames / self.rate, 2),
            "dropped_bytes": self.tap.dropped_bytes,
        }
        if self.tap.dropped_bytes:
            log.warning(
                "recording_audio_dropped", path=str(self.path), bytes=self.tap.dropped_bytes
            )

    def _open(self, part: Path) -> soundfile.SoundFile:
        part.parent.mkdir(parents=True, exist_ok=True)
        return soundfile.SoundFile(
            part,
            mode="w",
            samplerate=self.rate,
            channels=2,
            subtype="PCM_16",
            format=self.settings.format.upper(),
        )

    def _write(self, out: soundfile.SoundFile, pcm: bytes) -> None:
        if not pcm:
            return
        stereo = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2)
        out.write(stereo)
        self.frames += len(stereo)


def purge_expired(directory: Path, retention_days: float, now: float | None = None) -> list[Path]:
    """Delete recordings last written more than ``retention_days`` ago; returns them."""
    if not directory.exists():
        return []
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    removed = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    for folder in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


async def purge_forever(settings: RecordingSettings) -> None:
    """Purge now and then every ``purge_interval_s`` (owned by the app's TaskGroup)."""
    while True:
        try:
            removed = await asyncio.to_thread(
                purge_expired, settings.directory, settings.retention_days
            )
        except OSError as error:
            log.error("recording_purge_failed", error=repr(error))
        else:
            if removed:
                log.info(
                    "recordings_purged", count=len(removed), retention_days=settings.retention_days
                )
        await asyncio.sleep(settings.purge_interval_s)


__all__ = ["CallRecorder", "purge_expired", "purge_forever", "recording_path"]
