"""One call's audio file: a stereo WAV, caller left, agent right, at the phone line's 8 kHz.

Both sides of a phone call crossed the network as 8 kHz μ-law, so 8 kHz PCM16 keeps everything
there is to hear (a wideband browser call is recorded at the same 8 kHz, like every other call).
Each chunk is placed on a shared timeline by when it happened (seconds since the
call started): the caller's audio by when it arrived, the agent's by when Twilio started
playing it. A caller chunk arriving within ``GAP_TOLERANCE_S`` of where its channel ends is
appended right after it (network jitter does not cut the audio); a later one leaves silence
in between. The agent's play-out times are exact (the output's pacer), so any gap there is
real silence. Silence is also written for a channel that had nothing to say.

:class:`CallAudio` blocks (file I/O, resampling): it runs on the storage thread only.
Every :meth:`CallAudio.write` appends what is final so far and rewrites the WAV header,
so the file on disk is always a valid WAV of what was written (a crash loses at most the
last unflushed interval).
"""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from voiceagent.transports.twilio.codec import StreamResampler
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat

AUDIO_RATE = 8000
CALLER, AGENT = 0, 1
"""Channels of the recording (left, right)."""
GAP_TOLERANCE_S = 0.1
"""Caller audio arriving this much later than expected is still appended (jitter)."""
PLACE_TOLERANCE_S = 0.002


class StereoTimeline:
    """Two PCM16 mono channels placed by time, taken out interleaved once both are final."""

    def __init__(self, rate: int = AUDIO_RATE, gap_tolerance_s: float = PLACE_TOLERANCE_S) -> None:
        self.rate = rate
        self._tolerance = round(gap_tolerance_s * rate)
        self._buffers = (bytearray(), bytearray())
        self.taken = 0
        """Samples per channel already taken out."""

    def end(self, channel: int) -> int:
        """The sample position after the channel's last placed audio."""
        return self.taken + len(self._buffers[channel]) // 2

    def place(self, channel: int, at_s: float, pcm: bytes) -> None:
        """Put mono PCM16 that started at ``at_s`` seconds on ``channel``."""
        if not pcm:
            return
        buffer = self._buffers[channel]
        gap = round(at_s * self.rate) - self.end(channel)
        if gap > self._tolerance:
            buffer += bytes(2 * gap)
        buffer += pcm

    def append(self, channel: int, pcm: bytes) -> None:
        """Put mono PCM16 right after the channel's last audio."""
        self._buffers[channel].extend(pcm)

    def take(self, until_s: float | None, pad: tuple[int, ...] = (CALLER, AGENT)) -> bytes:
        """Interleaved stereo up to ``until_s``, the ``pad`` channels padded with silence to it.

        With ``until_s=None`` (the end of the call) everything is taken, the shorter channel
        padded to the longer one.
        """
        ends = (self.end(CALLER), self.end(AGENT))
        target = max(ends) if until_s is None else max(self.taken, round(until_s * self.rate))
        for channel, end in enumerate(ends):
            if end < target and (until_s is None or channel in pad):
                self._buffers[channel].extend(bytes(2 * (target - end)))
        count = min(self.end(CALLER), self.end(AGENT)) - self.taken
        if count <= 0:
            return b""
        out = np.empty(2 * count, dtype="<i2")
        for channel, buffer in enumerate(self._buffers):
            out[channel::2] = np.frombuffer(buffer, dtype="<i2", count=count)
            del buffer[: 2 * count]
        self.taken += count
        return out.tobytes()


class CallAudio:
    """The stereo WAV of one call, appended as the call goes."""

    def __init__(self, path: Path) -> None:
        """Create the file (and its folder).

        Raises:
            OSError: the file cannot be created.
        """
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(AUDIO_RATE)
        self._timeline = StereoTimeline()
        self._caller_resampler: StreamResampler | None = None
        self._caller_end_s = 0.0
        self._agent_resampler: StreamResampler | None = None
        self._agent_end_s = 0.0
        self._agent_run_at: float | None = None
        self.frames_written = 0

    @property
    def seconds(self) -> float:
        """Seconds of audio in the file."""
        return self.frames_written / AUDIO_RATE

    def add_caller(self, at_s: float, pcm: bytes, sample_rate: int, channels: int) -> None:
        """Caller PCM16 (any rate; the first channel if several) that started at ``at_s``.

        The caller's channel is kept in the resampler's input time: gaps (and silence up to
        a flush) go through the resampler too, whose output comes in bursts, so it stays in
        order and in time.
        """
        if channels > 1:
            samples = np.frombuffer(pcm[: len(pcm) // (2 * channels) * 2 * channels], "<i2")
            pcm = samples[::channels].tobytes()
        elif len(pcm) & 1:
            pcm = pcm[:-1]
        resampler = self._caller_resampler
        if resampler is None or resampler.in_rate != sample_rate:
            resampler = self._caller_resampler = StreamResampler(sample_rate, AUDIO_RATE)
        if at_s - self._caller_end_s > GAP_TOLERANCE_S:
            self._caller_silence_until(at_s)
        self._caller_end_s += len(pcm) / (2 * sample_rate)
        self._timeline.append(CALLER, resampler.resample(pcm))

    def _caller_silence_until(self, at_s: float) -> None:
        gap_s = at_s - self._caller_end_s
        if gap_s <= 0.0:
            return
        self._caller_end_s = at_s
        resampler = self._caller_resampler
        if resampler is None:
            self._timeline.append(CALLER, bytes(2 * round(gap_s * AUDIO_RATE)))
        else:
            silence = bytes(2 * round(gap_s * resampler.in_rate))
            self._timeline.append(CALLER, resampler.resample(silence))

    def add_agent(self, at_s: float, audio: bytes, line_format: LineFormat = MULAW_8K) -> None:
        """Agent audio (as sent on the stream, in its line format) that started playing at ``at_s``.

        Line audio at another rate than the file's (wideband) is resampled; the frames of one
        run (each starting where the previous one ended) go through one resampler stream, so
        the filter leaves no clicks at frame edges, and the run is placed by its start.
        """
        pcm = line_format.to_pcm16(audio)
        rate = line_format.rate
        if rate == AUDIO_RATE:
            self._timeline.place(AGENT, at_s, pcm)
            return
        resampler = self._agent_resampler
        if (
            resampler is None
            or resampler.in_rate != rate
            or abs(at_s - self._agent_end_s) > PLACE_TOLERANCE_S
        ):
            self._end_agent_run()
            resampler = self._agent_resampler = StreamResampler(rate, AUDIO_RATE)
            self._agent_run_at = at_s
        self._agent_end_s = at_s + len(pcm) / (2 * rate)
        self._agent_out(resampler.resample(pcm))

    def _agent_out(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self._agent_run_at is not None:
            self._timeline.place(AGENT, self._agent_run_at, pcm)
            self._agent_run_at = None
        else:
            self._timeline.append(AGENT, pcm)

    def _end_agent_run(self) -> None:
        """The agent's resampled run is over: its held-back tail goes right after it."""
        if self._agent_resampler is not None:
            self._agent_out(self._agent_resampler.flush())
            self._agent_resampler = None
            self._agent_run_at = None

    def write(self, until_s: float) -> None:
        """Append everything final up to ``until_s`` and fix the header."""
        if self._file is None:
            return
        self._caller_silence_until(until_s)
        self._append(self._timeline.take(until_s, pad=(AGENT,)))
        self._file.flush()

    def close(self, end_s: float) -> None:
        """Write the rest (silence up to ``end_s`` at least), fix the header, sync to disk."""
        if self._file is None:
            return
        self._caller_silence_until(end_s)
        if self._caller_resampler is not None:
            self._timeline.append(CALLER, self._caller_resampler.flush())
        self._end_agent_run()
        file = self._file
        try:
            self._append(self._timeline.take(None))
            self._wav.close()  # patches the header; leaves our file open
            file.flush()
            os.fsync(file.fileno())
        finally:
            self._file = None
            file.close()

    def _append(self, frames: bytes) -> None:
        if frames:
            self._wav.writeframes(frames)  # rewrites the header's sizes after each write
            self.frames_written += len(frames) // 4

    def abandon(self) -> None:
        """After a write error: close the file without writing more (best effort)."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            self._wav.close()
        except Exception:  # noqa: BLE001 (the disk already failed; the error was reported)
            pass
        finally:
            file.close()


def caller_runs(
    caller: list[tuple[float, bytes, int, int]], t0: float
) -> list[tuple[float, bytes, int, int]]:
    """The caller's 20 ms chunks joined into runs of back-to-back audio (start, PCM, format).

    ``CallAudio.add_caller`` places a chunk right after the previous one unless the gap is over
    its tolerance, so a run is placed exactly as its chunks one by one would be: one resampler
    call per run instead of fifty a second (the storage thread shares the interpreter with the
    calls).
    """
    runs: list[tuple[float, bytearray, int, int]] = []
    end_s = float("-inf")
    for arrived, pcm, rate, channels in caller:
        seconds = len(pcm) / (2 * channels * rate) if rate and channels else 0.0
        start_s = arrived - seconds - t0
        gap = start_s - end_s > GAP_TOLERANCE_S
        end_s = (start_s if gap else end_s) + seconds
        if runs and not gap and runs[-1][2:] == (rate, channels):
            runs[-1][1].extend(pcm)
        else:
            runs.append((start_s, bytearray(pcm), rate, channels))
    return [(start, bytes(pcm), rate, channels) for start, pcm, rate, channels in runs]
