"""A cloud-shaped streaming TTS with deterministic latency, for benchmarks.

``FakeCloudTTS`` is a pipecat ``TTSService``: for each chunk of text it waits ``first_audio_s``
(the provider's time to first byte), then streams speech-like audio — a voiced buzz with a
syllable envelope, not silence, so anything that looks at the signal sees speech — of
``ms_per_char`` per character, in ``chunk_ms`` chunks, ``speed`` times faster than real time
(the transport paces playback). Frames in and out are those of any pipecat TTS service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode, TTSService

from voiceagent.settings import PIPELINE_SAMPLE_RATE


def speech_like(duration_s: float, sample_rate: int = PIPELINE_SAMPLE_RATE) -> bytes:
    """PCM16 of a voiced buzz (pitch 120-160 Hz + harmonics) under a ~4 Hz syllable envelope."""
    n = max(1, round(duration_s * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    pitch = 140.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = np.abs(np.sin(np.pi * 4.0 * t)) ** 0.6
    noise = np.random.default_rng(n).standard_normal(n) * 0.05
    signal = (0.25 * voiced * (0.2 + 0.8 * syllables) + noise * syllables) * 0.8
    return (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@dataclass
class TTSRequest:
    """One synthesis as the fake served it (monotonic seconds)."""

    text: str
    requested_at: float
    first_audio_at: float | None = None
    audio_s: float = 0.0


@dataclass
class TTSStats:
    """Every synthesis of one call."""

    requests: list[TTSRequest] = field(default_factory=list)


class FakeCloudTTS(TTSService):
    """Deterministic streaming TTS: ``first_audio_s`` to first audio, then ~``ms_per_char``."""

    def __init__(
        self,
        *,
        first_audio_s: float = 0.15,
        ms_per_char: float = 60.0,
        chunk_ms: int = 40,
        speed: float = 4.0,
        **kwargs: Any,
    ) -> None:
        """Create the service.

        Args:
            first_audio_s: Delay from a text chunk to its first audio.
            ms_per_char: Audio duration per character of text.
            chunk_ms: Size of each audio chunk.
            speed: How much faster than real time audio is streamed after the first chunk.
            **kwargs: ``TTSService`` arguments.
        """
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs.setdefault("text_aggregation_mode", TextAggregationMode.SENTENCE)
        kwargs.setdefault("sample_rate", PIPELINE_SAMPLE_RATE)
        kwargs.setdefault("settings", TTSSettings(model=None, voice="fake-cloud", language=None))
        super().__init__(**kwargs)
        self._first_audio_s = first_audio_s
        self._s_per_char = ms_per_char / 1000.0
        self._chunk_s = chunk_ms / 1000.0
        self._speed = max(speed, 1.0)
        self.stats = TTSStats()

    def can_generate_metrics(self) -> bool:
        """TTFB metrics like a cloud service."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Stream the chunk's audio after the first-audio delay."""
        request = TTSRequest(text=text, requested_at=time.monotonic())
        self.stats.requests.append(request)
        async for frame in self._stream_audio_frames_from_iterator(
            self._audio(request), in_sample_rate=self.sample_rate, context_id=context_id
        ):
            await self.stop_ttfb_metrics()
            yield frame

    async def _audio(self, request: TTSRequest) -> AsyncIterator[bytes]:
        duration = max(self._chunk_s, len(request.text.strip()) * self._s_per_char)
        pcm = speech_like(duration, self.sample_rate)
        step = round(self._chunk_s * self.sample_rate) * 2
        due = request.requested_at + self._first_audio_s
        for offset in range(0, len(pcm), step):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if request.first_audio_at is None:
                request.first_audio_at = time.monotonic()
            chunk = pcm[offset : offset + step]
            request.audio_s += len(chunk) / 2 / self.sample_rate
            yield chunk
            due += self._chunk_s / self._speed
